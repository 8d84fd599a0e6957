"""Arena limits that a client cannot sidestep by choosing its session: the battle limit counts per
client address too (held only as a salted hash), a vote counts only from the session that ran the
battle, and uploads leave Gradio's cache on a schedule. Real models (cascade-mini, diva-mini)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from arena_helpers import free_port, spoken_question
from demo.arena import Arena, ArenaError, BattleState, Side
from demo.config import ArenaConfig, Limits, ModelSpec
from demo.store import VoteStore
from demo.ui import launch

ADDRESS, OTHER_ADDRESS = "198.51.100.7", "203.0.113.9"  # documentation ranges, sent as X-Forwarded-For


@pytest.fixture(scope="module")
def arena_app(prepared_assets, tmp_path_factory):
    root = tmp_path_factory.mktemp("arena-limits")
    config = ArenaConfig(models=(ModelSpec("cascade-mini"), ModelSpec("diva-mini")), db=f"sqlite:///{root}/arena.db",
                         audio_dir=str(root / "audio"), max_new_tokens=4,
                         limits=Limits(battles_per_minute=1, keep_uploads_s=2), processes=False)
    arena = Arena(config, seed=0).prepare()
    app = launch(arena, port=free_port(), prevent_thread_lock=True, quiet=True)
    yield arena, app
    app.close()


@pytest.fixture(scope="module")
def question(tmp_path_factory) -> Path:
    return spoken_question(tmp_path_factory.mktemp("audio") / "question.wav")


def client(url: str, address: str):
    """A fresh browser session from `address` (uvicorn takes X-Forwarded-For from a loopback proxy)."""
    from gradio_client import Client
    return Client(url, headers={"X-Forwarded-For": address}, verbose=False)


def test_fresh_sessions_from_one_address_share_the_battle_limit(arena_app, question):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError
    arena, app = arena_app
    first = client(app.local_url, ADDRESS)
    assert "Both answered" in first.predict(handle_file(str(question)), "", api_name="/battle")[6]
    fresh = client(app.local_url, ADDRESS)
    assert fresh.session_hash != first.session_hash
    with pytest.raises(AppError, match="Too many battles: up to 1 a minute"):
        fresh.predict(handle_file(str(question)), "", api_name="/battle")
    elsewhere = client(app.local_url, OTHER_ADDRESS)  # another address has its own limit
    assert "Both answered" in elsewhere.predict(handle_file(str(question)), "", api_name="/battle")[6]
    counted = {key: len(events) for key, events in arena.limiter._events.items()}
    assert counted[f"voter:{arena.store.pseudonym(ADDRESS)}"] == 1 and not counted.get(f"session:{fresh.session_hash}")
    assert not any(ADDRESS in key or OTHER_ADDRESS in key for key in counted)  # never kept in the clear


def test_uploads_leave_the_cache_on_schedule(arena_app, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError
    arena, app = arena_app
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("this is not audio")
    with pytest.raises(AppError, match="cannot be used"):
        client(app.local_url, OTHER_ADDRESS).predict(handle_file(str(not_audio)), "", api_name="/battle")
    uploaded = [Path(f) for f in app.upload_file_set]
    assert any(p.read_bytes() == b"this is not audio" for p in uploaded if p.exists())
    deadline = time.monotonic() + 30
    while any(p.exists() for p in uploaded) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not any(p.exists() for p in uploaded), "uploads older than keep_uploads_s are still cached"


def test_only_the_session_that_ran_a_battle_can_vote_on_it(tmp_path):
    config = ArenaConfig(models=(), db=f"sqlite:///{tmp_path}/votes.db")
    arena = Arena(config, store=VoteStore(config.db))
    sides = [Side("alpha", "Paris.", 0.1, 0.5), Side("beta", "Lyon.", 0.2, 0.6)]
    clip = (0.1 * np.sin(np.arange(16_000) / 8)).astype(np.float32)
    state = BattleState(battle_id=arena.record("session-a", clip, None, sides), sides=sides, session="session-a")
    with pytest.raises(ArenaError, match="started in another session"):
        arena.vote(state, "model_a", None, voter=ADDRESS, session="session-b")
    assert arena.store.count() == (1, 0) and not state.voted
    arena.vote(state, "model_b", None, voter=ADDRESS, session="session-a")
    assert arena.store.battle(state.battle_id)["outcome"] == "model_b"
