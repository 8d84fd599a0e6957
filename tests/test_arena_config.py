"""The arena config file: local and remote models, pair weights, and how pairs are drawn."""
from __future__ import annotations

import collections

import pytest

from demo.arena import Arena
from demo.config import DEFAULT_CONFIG, ArenaConfig, ModelSpec, config_from_dict, load_config
from demo.store import VoteStore

TOML = """
db = "sqlite:///votes.db"
store_audio = false
max_new_tokens = 32
fallbacks = ["diva-mini-whisper"]
[limits]
max_upload_mb = 5
battles_per_minute = 3
[[models]]
name = "local-1"
[[models]]
name = "qwen2-audio"
kind = "remote"
base_url = "http://127.0.0.1:9/v1"
model = "Qwen/Qwen2-Audio-7B-Instruct"
api_key_env = "ARENA_TEST_KEY"
weight = 2.0
[[models]]
name = "local-2"
[pair_weights]
"local-1 vs local-2" = 0
"""


def test_default_config_parses():
    config = load_config(DEFAULT_CONFIG)
    assert [m.name for m in config.models] == ["cascade-mini", "diva-mini", "diva-mini-whisper-beam"]
    assert config.db.startswith("sqlite:///") and config.limits.battles_per_minute > 0


def test_toml_with_a_remote_model(tmp_path, monkeypatch):
    path = tmp_path / "arena.toml"
    path.write_text(TOML)
    config = load_config(path)
    remote = config.models[1]
    assert (remote.kind, remote.model, remote.weight) == ("remote", "Qwen/Qwen2-Audio-7B-Instruct", 2.0)
    monkeypatch.setenv("ARENA_TEST_KEY", "sk-test")
    assert remote.api_key == "sk-test"
    assert (config.store_audio, config.max_new_tokens, config.limits.max_upload_mb) == (False, 32, 5)
    assert config.pair_weights == {("local-1", "local-2"): 0.0}
    resolved = config.resolved(tmp_path)
    assert resolved.db == f"sqlite:///{tmp_path}/votes.db" and resolved.audio_dir.startswith(str(tmp_path))


@pytest.mark.parametrize("bad, message", [
    ({"models": [{"name": "x", "kind": "cloud"}]}, "kind"),
    ({"models": [{"name": "x", "kind": "remote"}]}, "base_url"),
    ({"models": [{"name": "x"}, {"name": "x"}]}, "unique"),
    ({"models": [{"name": "x"}], "pair_weights": {"x vs y": 1}}, "unknown model"),
    ({"models": [{"name": "x"}], "pair_weights": {"x and y": 1}}, "a vs b"),
])
def test_bad_configs_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        config_from_dict(bad)


def test_pairs_follow_the_weights_and_sides_are_shuffled(tmp_path):
    config = config_from_dict({"models": [{"name": "a"}, {"name": "b", "weight": 3.0}, {"name": "c"}],
                               "pair_weights": {"a vs c": 0}})
    arena = Arena(config, store=VoteStore(f"sqlite:///{tmp_path}/x.db"), seed=1)
    arena.contestants = {m.name: m for m in config.models}  # as prepare() leaves it, without loading models
    draws = collections.Counter(arena.draw_pair() for _ in range(4000))
    pairs = collections.Counter(tuple(sorted(p)) for p in draws.elements())
    assert pairs[("a", "c")] == 0  # weight 0: never drawn
    assert pairs[("a", "b")] == pytest.approx(2000, rel=0.1) and pairs[("b", "c")] == pytest.approx(2000, rel=0.1)
    assert draws[("a", "b")] == pytest.approx(draws[("b", "a")], rel=0.15)  # left/right shuffled


def test_prepare_uses_fallbacks_and_needs_two_models(tmp_path):
    config = ArenaConfig(models=(ModelSpec("no-such-assistant"), ModelSpec("remote-x", kind="remote",
                                                                           base_url="http://127.0.0.1:9/v1")),
                         db=f"sqlite:///{tmp_path}/x.db", fallbacks=("also-missing",))
    with pytest.raises(RuntimeError, match="needs two models"):
        Arena(config).prepare()
    arena = Arena(config)
    with pytest.raises(RuntimeError):
        arena.prepare()
    assert set(arena.unavailable) == {"no-such-assistant", "also-missing"}
    assert list(arena.contestants) == ["remote-x"]  # remote backends are built, not contacted
