"""Corpus builder and training loop on tiny random models (offline, a few minutes on 2 cores)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from diva import voices as V

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["What is the capital of France?", "The cat sat on the mat.", "How do you bake bread?",
         "Rivers flow into the sea.", "Tell me about the moon.", "Why is the sky blue?",
         "She plays the violin.", "Name three colours.", "What does a pilot do?", "Snow is cold.",
         "Bees make honey.", "Where do penguins live?"]
ESPEAK = {"train": ["espeak:en-us", "espeak:en-gb+f3", "espeak:en-029+m2"],
          "valid": ["espeak:en-gb-scotland+m3"]}

pytestmark = pytest.mark.skipif(not V.get_voice("espeak:en-us").available, reason="espeak-ng not installed")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from train.data import build
    root = tmp_path_factory.mktemp("corpus")
    settings = dict(name="t", root=str(root), n_train=8, n_valid=2, seed=0, texts=TEXTS, voices=ESPEAK,
                    speed_range=[0.9, 1.1], pitch_range=[0.9, 1.1], noise_prob=0.5, snr_db=[15, 30],
                    shard_size=4, workers=1, exclude=[], text_weights={})
    return build(settings), settings


def test_corpus_is_decodable_16k_audio_with_transcripts(corpus):
    from train.data import audio_array, load_corpus
    folder, _ = corpus
    train = load_corpus(folder, "train", decode=True)
    assert len(train) == 8 and set(train["transcript"]) <= set(TEXTS)
    assert set(train["voice"]) <= set(ESPEAK["train"])
    for item in train:
        samples = item["audio"].get_all_samples()          # datasets' own decoder (torchcodec)
        assert samples.sample_rate == 16_000
        seconds = samples.data.shape[-1] / 16_000
        assert 0.5 < seconds < 6 and abs(seconds - item["duration_s"]) < 0.01
    raw = load_corpus(folder, "train")[0]["audio"]
    assert audio_array(raw).dtype == np.float32
    valid = load_corpus(folder, "valid")
    assert len(valid) == 2 and set(valid["voice"]) <= set(ESPEAK["valid"])
    assert not set(valid["transcript"]) & set(train["transcript"])    # held-out texts too
    assert "WordNet" in (folder / "DATACARD.md").read_text()


def test_corpus_rerun_skips_done_shards_and_grows(corpus):
    from train.data import build, load_corpus
    folder, settings = corpus
    before = {p.name: p.stat().st_mtime for p in (folder / "shards").iterdir()}
    build(settings)
    assert {p.name: p.stat().st_mtime for p in (folder / "shards").iterdir()} == before
    first = load_corpus(folder, "train")["transcript"]
    build({**settings, "n_train": 9, "name": "t"})           # grows by a shard, old ones untouched
    after = {p.name: p.stat().st_mtime for p in (folder / "shards").iterdir()}
    assert all(after[n] == t for n, t in before.items()) and len(after) == len(before) + 1
    assert load_corpus(folder, "train")["transcript"][:8] == first


def test_corpus_builds_and_trains_on_new_clips_only(corpus, tmp_path):
    """`train_from`: a grown corpus' new clips are built and trained on without the old ones."""
    import shutil
    from train.data import build, load_corpus
    from train.distill import open_split
    folder, settings = corpus
    full = load_corpus(folder, "train")["transcript"][:8]
    (tmp_path / "t").mkdir()
    shutil.copy(folder / "texts.jsonl", tmp_path / "t" / "texts.jsonl")  # the same plan, no audio yet
    new = {**settings, "root": str(tmp_path), "n_train": 8, "train_from": 4}
    build(new)
    assert sorted(p.name for p in (tmp_path / "t" / "shards").iterdir()) == [
        "train-0000004-0000008", "valid-0000000-0000002"]
    assert load_corpus(tmp_path / "t", "train", start=4)["transcript"] == full[4:]
    with pytest.raises(FileNotFoundError, match="utterances 0-4 are not built"):
        load_corpus(tmp_path / "t", "train")
    assert load_corpus(folder, "train", start=6)["transcript"][:2] == full[6:]   # from inside a shard
    assert open_split({"corpus": new}, "train")["transcript"] == full[4:]
    assert len(open_split({"corpus": new}, "valid")) == 2


def test_corpus_packs_texts_from_an_index_on(tmp_path):
    """Dense clips: from `pack_from` on, a training utterance joins texts up to `pack_chars`."""
    from train.data import build, load_corpus
    settings = dict(name="p", root=str(tmp_path), n_train=5, n_valid=1, seed=0, texts=TEXTS, voices=ESPEAK,
                    speed_range=[1.0, 1.0], pitch_range=[1.0, 1.0], noise_prob=0.0, snr_db=[15, 30],
                    shard_size=5, workers=1, exclude=[], text_weights={}, pack_chars=60, pack_from=3)
    train = load_corpus(build(settings), "train")
    single, dense = train["transcript"][:3], train["transcript"][3:]
    assert all(t in TEXTS for t in single)
    assert all(t not in TEXTS and len(t) <= 60 for t in dense)
    words = " ".join(dense)
    assert sum(t in words for t in TEXTS) >= 4               # each dense clip holds >= 2 texts
    assert len(set(" ".join(train["transcript"]).split(". "))) > 1
    assert max(train["duration_s"][3:]) > max(train["duration_s"][:3]) * 0.9
    assert load_corpus(tmp_path / "p", "valid")["transcript"][0] in TEXTS


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """The tiny random Whisper and Llama as model folders, named in configs like any model."""
    from diva.testing import save_tiny_models
    return save_tiny_models(tmp_path_factory.mktemp("models"))


def _cfg(tmp_path, corpus_settings, models, **train):
    base = dict(steps=4, batch_size=4, lr=3e-3, warmup=0.0, eval_every=1000, eval_examples=2,
                save_every=2, log_every=1, cache_dir=str(tmp_path / "cache"), run_dir=str(tmp_path / "run"),
                precision="fp32")
    return {"corpus": corpus_settings, "model": {"encoder": models[0], "llm": models[1], "n_queries": 8},
            "train": {**base, **train}}


def _trainee(loss="distill", tmp=None):
    from diva.testing import tiny_diva
    from train.config import TRAIN_DEFAULTS
    from train.objectives import Trainee
    loss, *extras = loss.split("+")  # "align+whisper", "+ctc", "+bridge": the vocabulary-bridge recipe
    cfg = {**TRAIN_DEFAULTS, "loss": loss, "cache": False, "precision": "fp32",
           "align_whisper_weight": 1.0 if "whisper" in extras else 0.0, "align_whisper_blank": True,
           "align_whisper_ctc": "ctc" in extras}
    projection = "whisper-vocab" if "bridge" in extras else "linear"
    return Trainee(tiny_diva(n_queries=8, projection=projection), cfg).train()


def _clips(n=4):
    rng = np.random.default_rng(0)
    return [(0.1 * rng.standard_normal(16_000 + 800 * i)).astype(np.float32) for i in range(n)]


@pytest.mark.parametrize("loss", ["distill", "sft", "align", "align+whisper", "align+whisper+ctc", "distill+whisper",
                                  "distill+whisper+bridge"])
def test_gradients_reach_only_trainable_parts(loss):
    trainee = _trainee(loss)
    out = trainee(_clips(2), ["a", "b"], TEXTS[:2])
    out["loss"].backward()
    diva = trainee.diva
    trainable = {id(p) for p in diva.trainable_parameters()}
    for name, p in diva.named_parameters():
        if name == "connector.embed_tokens.weight":
            continue  # part of the decoder copy, but the query tokens replace token embeddings
        if id(p) in trainable:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name
    assert sum(1 for _ in diva.llm.parameters() if _.requires_grad) == 0


def _train_steps(trainee, opt, n: int = 12) -> list[float]:
    """n optimiser steps on the same 4 clips; the loss before each step."""
    clips, keys, texts = _clips(4), list("abcd"), TEXTS[:4]
    losses = []
    for _ in range(n):
        out = trainee(clips, keys, texts)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    return losses


@pytest.mark.parametrize("loss", ["distill", "sft", "align+whisper", "align+whisper+ctc"])
def test_a_few_steps_lower_the_loss(loss):
    torch.manual_seed(0)
    trainee = _trainee(loss)
    opt = torch.optim.AdamW(trainee.diva.trainable_parameters(), lr=3e-3)
    losses = _train_steps(trainee, opt)
    if loss == "sft":  # a frozen random LLM has near-uniform logits: CE can only move a little
        assert losses[-1] < losses[0] - 0.05 and losses[-1] <= min(losses[:6]), losses
    elif "ctc" in loss:  # CTC over the tiny vocabulary: steady but slower
        assert losses[-1] < 0.9 * losses[0] and losses[-1] <= min(losses[:6]), losses
    else:
        assert losses[-1] < 0.8 * losses[0], losses


def test_frozen_cache_hits_give_the_same_values(tmp_path):
    from train.frozen_cache import FrozenCache
    cache = FrozenCache(tmp_path, "encoder", "m")
    calls = []
    value = torch.randn(2, 5, 3)
    first = cache.get_or_compute(["k1", "k2"], lambda idx: (calls.append(list(idx)), value[idx])[1])
    second = cache.get_or_compute(["k2", "k1"], lambda idx: pytest.fail("recomputed"))
    assert calls == [[0, 1]] and cache.hits == 2
    torch.testing.assert_close(second[0], first[1])


def _run(cfg_path, run_dir, *extra):
    cmd = [sys.executable, "-m", "train.distill", "--config", str(cfg_path), f"train.run_dir={run_dir}", *extra]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_kill_9_and_resume_equals_uninterrupted_run(tmp_path, corpus, tiny_models):
    from safetensors.torch import load_file
    _, settings = corpus
    cfg = _cfg(tmp_path, settings, tiny_models, steps=8, save_every=2, batch_size=3)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))

    straight = _run(path, tmp_path / "straight")
    assert straight.wait(timeout=600) == 0, straight.stderr.read().decode()[-2000:]

    victim = _run(path, tmp_path / "killed")
    ckpt = tmp_path / "killed" / "ckpt"
    deadline = time.time() + 600
    while not (ckpt / "step-0000004").exists():
        assert victim.poll() is None, victim.stderr.read().decode()[-2000:]
        assert time.time() < deadline
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "killed" / "final").exists()       # it really died mid-run
    resumed = _run(path, tmp_path / "killed")
    assert resumed.wait(timeout=600) == 0
    assert b"resumed from" in resumed.stdout.read()

    a = load_file(str(tmp_path / "straight" / "ckpt" / "step-0000008" / "connector.safetensors"))
    b = load_file(str(tmp_path / "killed" / "ckpt" / "step-0000008" / "connector.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    sa = torch.load(tmp_path / "straight" / "ckpt" / "step-0000008" / "state.pt", weights_only=False)
    sb = torch.load(tmp_path / "killed" / "ckpt" / "step-0000008" / "state.pt", weights_only=False)
    assert sa["position"] == sb["position"] and sa["scheduler"] == sb["scheduler"]
    assert (tmp_path / "killed" / "metrics.csv").exists() and (tmp_path / "killed" / "loss_curve.png").exists()


def test_config_stages_overrides_and_batch_order():
    from train.config import load_config, stages
    from train.distill import batch_indices, lr_lambda
    recipe = stages(load_config(ROOT / "train/configs/diva-mini.yaml"), ["train.steps=10", "model.n_queries=64"])
    assert [s["name"] for s in recipe] == ["align", "distill"]
    align, distill = recipe
    assert all(s["train"]["steps"] == 10 and s["model"]["n_queries"] == 64 for s in recipe)  # overrides win
    assert (align["train"]["loss"], align["train"]["lr"], distill["train"]["lr"]) == ("align", 1e-3, 3e-4)
    assert distill["train"]["init_from"] == align["train"]["run_dir"] + "/final"     # each stage from the last
    assert distill["train"]["export_dir"] == "checkpoints/diva-mini"
    # the stream of shuffled epochs is a pure function of the position
    assert batch_indices(5, 0, 3, 4) == batch_indices(5, 0, 0, 7)[3:]
    assert sorted(batch_indices(5, 0, 0, 5)) == list(range(5))
    f = lr_lambda({"steps": 100, "warmup": 0.1, "schedule": "cosine"})
    assert f(0) == pytest.approx(0.1) and f(10) == pytest.approx(1.0) and f(100) == pytest.approx(0.0)


def test_every_shipped_checkpoint_has_the_config_that_rebuilds_it():
    from train.config import load_config, stages
    configs = sorted((ROOT / "train/configs").glob("*.yaml"))
    assert len(configs) <= 8
    exported = {}
    for path in configs:
        for stage in stages(load_config(path)):
            if stage["train"].get("export_dir"):
                exported[stage["train"]["export_dir"]] = path.name
    shipped = {f"checkpoints/{p.name}" for p in (ROOT / "checkpoints").iterdir() if (p / "config.json").exists()}
    assert shipped <= set(exported), shipped - set(exported)


@pytest.mark.parametrize("text, message", [
    ("train: [1, 2", "not readable YAML"),
    ("- a\n- b\n", "holds a YAML list"),
    ("base: nowhere.yaml\n", "does not exist"),
    ("train: {stpes: 10}\n", "unknown key train.'stpes'; did you mean steps"),
    ("model: {n_querys: 64}\n", "did you mean n_queries"),
    ("trian: {steps: 1}\n", "unknown key 'trian'; did you mean train"),
])
def test_broken_configs_get_one_clear_line(tmp_path, text, message):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "train.distill", "--config", str(path)], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    override = subprocess.run([sys.executable, "-m", "train.distill", "--config", "train/configs/diva-mini.yaml",
                               "train.stpes=10"], cwd=ROOT, capture_output=True, text=True)
    assert override.returncode == 2 and "did you mean steps" in override.stderr


def test_align_stage_then_init_from_it(tmp_path, corpus, tiny_models):
    """The cheap `align` stage trains without running the LLM; a later run starts from its connector."""
    from diva.checkpoint import CheckpointError, read_checkpoint
    from diva.testing import tiny_diva
    from train.checkpoints import init_connector
    from train.distill import train
    from train.export import stage_summary  # what the next stage's model card says about this one
    _, settings = corpus
    run = train(_cfg(tmp_path, settings, tiny_models, loss="align", steps=3, eval_every=3))
    rows = (run / "metrics.csv").read_text()
    assert "valid" in rows and (run / "final" / "model.safetensors").exists()
    _, saved, _ = read_checkpoint(run / "final")
    assert "align loss, 3 steps, batch 4" in stage_summary(run / "final")
    second = train(_cfg(tmp_path, settings, tiny_models, loss="distill", steps=2, eval_every=2,
                        init_from=str(run / "final"), run_dir=str(tmp_path / "run-2")))
    assert "itself initialised from" in stage_summary(second / "final")

    from diva.model import DiVA, DivaConfig
    fresh = DiVA.from_config(DivaConfig(encoder=tiny_models[0], llm=tiny_models[1], n_queries=8))
    assert not torch.equal(fresh.query_tokens.detach().cpu(), saved["query_tokens"])
    init_connector(fresh, str(run / "final"))
    for key, value in fresh.connector_state_dict().items():
        torch.testing.assert_close(value.cpu(), saved[key], rtol=0, atol=0, msg=key)
    with pytest.raises(CheckpointError, match="encoder"):
        init_connector(tiny_diva(n_queries=8), str(run / "final"))


def test_keep_update_interpolates_between_start_and_trained_weights(tmp_path, corpus, tiny_models):
    """train.keep_update 0.5: the stage's final connector lies half-way between the connector it
    started from and the one it trained (its last checkpoint); the card says so; bad values fail early."""
    from safetensors.torch import load_file
    from diva.checkpoint import read_checkpoint
    from train.config import ConfigError
    from train.distill import train
    from train.export import stage_summary
    _, settings = corpus
    start = train(_cfg(tmp_path, settings, tiny_models, loss="align", steps=2, run_dir=str(tmp_path / "a")))
    run = train(_cfg(tmp_path, settings, tiny_models, loss="align", steps=2, init_from=str(start / "final"),
                     keep_update=0.5, run_dir=str(tmp_path / "b")))
    _, before, _ = read_checkpoint(start / "final")
    _, final, raw = read_checkpoint(run / "final")
    trained = load_file(str(run / "ckpt" / "step-0000002" / "connector.safetensors"))
    assert raw["keep_update"] == 0.5 and "0.5 of its update kept" in stage_summary(run / "final")
    moved = [k for k in final if not torch.equal(before[k], trained[k])]
    assert "query_tokens" in moved
    for key in moved:
        torch.testing.assert_close(final[key], (before[key] + trained[key]) / 2, rtol=0, atol=1e-6, msg=key)
    for bad, init in ((0.0, str(start / "final")), (1.5, str(start / "final")), (0.5, None)):
        with pytest.raises(ConfigError, match="keep_update"):
            train(_cfg(tmp_path, settings, tiny_models, loss="align", steps=1, init_from=init, keep_update=bad,
                       run_dir=str(tmp_path / "c")))


def test_whisper_head_stages_then_the_bridge(tmp_path, corpus, tiny_models):
    """The vocabulary-bridge recipe: the connector trained against Whisper's own head (CE, then
    CTC; the projection unused), then put behind the bridge by a 0-step stage that validates it
    and exports it with its inference options."""
    import pandas as pd
    from diva.checkpoint import read_checkpoint
    from train.distill import train
    from train.export import export, stage_summary
    _, settings = corpus
    head = dict(loss="align", align_weight=0.0, align_whisper_weight=1.0, align_whisper_blank=True)
    first = train(_cfg(tmp_path, settings, tiny_models, **head, steps=3, run_dir=str(tmp_path / "whisper")))
    logged = pd.read_csv(first / "metrics.csv")
    assert (logged["align_whisper"] > 0).all()
    ctc = train(_cfg(tmp_path, settings, tiny_models, **head, align_whisper_ctc=True, steps=2,
                     init_from=str(first / "final"), run_dir=str(tmp_path / "ctc")))
    ctc_rows = pd.read_csv(ctc / "metrics.csv")
    assert ctc_rows["align_whisper"].between(0, 1e4).all()               # CTC runs (finite) from stage 1
    assert not ctc_rows["align_whisper"].equals(logged["align_whisper"].iloc[:len(ctc_rows)])
    assert "Whisper-head CTC x1.0" in stage_summary(ctc / "final")
    cfg = _cfg(tmp_path, settings, tiny_models, loss="distill", align_weight=0.0, align_whisper_weight=10.0,
               align_whisper_ctc=True, steps=0, init_from=str(ctc / "final"), run_dir=str(tmp_path / "bridge"))
    cfg["model"]["projection"] = "whisper-vocab"
    cfg["inference"] = {"bridge_temperature": 0.05}
    zero = train(cfg)
    rows = pd.read_csv(zero / "metrics.csv")
    assert rows["split"].tolist() == ["valid"] and rows["step"].tolist() == [0] and rows["distill"][0] > 0
    config, state, raw = read_checkpoint(zero / "final")
    assert config.projection == "whisper-vocab" and not any(k.startswith("projection.") for k in state)
    assert raw["inference"]["bridge_temperature"] == 0.05
    _, before, _ = read_checkpoint(ctc / "final")
    assert all(torch.equal(state[k], v) for k, v in before.items() if not k.startswith("projection."))
    card = (export(zero, tmp_path / "exported") / "README.md").read_text()
    assert "vocabulary bridge" in card and "temperature 0.05" in card
    assert (tmp_path / "exported" / "inference.json").exists()


def test_time_masks_replace_spans_inside_the_clip_in_training_only():
    from train.objectives import mask_time_spans
    torch.manual_seed(0)
    enc = torch.randn(2, 50, 6)
    masked = mask_time_spans(enc, [20, 50], spans=3, width=5)
    assert masked.shape == enc.shape and not torch.equal(masked, enc)
    assert torch.equal(masked[0, 20:], enc[0, 20:])              # past the clip's audio: untouched
    for b, n in enumerate([20, 50]):
        changed = (masked[b] != enc[b]).any(-1)
        assert 0 < int(changed.sum()) <= 15                        # at most 3 spans of 5 frames
        assert torch.allclose(masked[b, changed], enc[b, :n].mean(0).expand(int(changed.sum()), -1))
    assert torch.equal(mask_time_spans(enc, [20, 50], spans=0, width=5), enc)
    trainee = _trainee("align+whisper")
    trainee.tcfg = {**trainee.tcfg, "time_masks": 4, "time_mask_frames": 10}
    clips, texts = _clips(2), ["one two", "three four"]
    trainee.eval()
    with torch.no_grad():
        a, b = (trainee(clips, ["k1", "k2"], texts)["loss"] for _ in range(2))
    assert a == b                                                   # evaluation: no masking
    trainee.train()
    with torch.no_grad():
        c = trainee(clips, ["k1", "k2"], texts)["loss"]
    assert c != a                                                   # training: masked


def test_init_from_a_missing_stage_says_what_to_run(tmp_path):
    from diva.checkpoint import CheckpointError
    from diva.testing import tiny_diva
    from train.checkpoints import init_connector
    with pytest.raises(CheckpointError, match="Run the stage that writes it first"):
        init_connector(tiny_diva(n_queries=8), str(tmp_path / "no-such-run" / "final"))


def test_model_card_wall_time_adds_up_resumed_sessions():
    from train.export import wall_seconds
    rows = [{"split": "train", "seconds": s} for s in ("10", "20", "5", "15")] + [{"split": "valid", "seconds": "99"}]
    assert wall_seconds(rows) == 35.0        # 20 s, then a resumed process ran 15 s


def test_model_card_names_the_clips_a_run_on_new_clips_used():
    from train.export import training_clips
    assert training_clips({"n_train": 16000}) == "16000 training utterances"
    assert training_clips({"n_train": 32000, "train_from": 16000}).startswith("training utterances 16000-31999")


@pytest.mark.skipif(not (Path("/usr/share/wordnet") / "data.noun").exists(), reason="wordnet-base not installed")
def test_entity_texts_name_places_and_people_many_times():
    """wordnet-entities: proper names recur (what a connector needs to learn them), as clean sentences."""
    from train import text as T
    texts = [t for t, _ in T.wordnet_entities(T.read_wordnet())]
    assert len(texts) > 15000 and len(set(texts)) > 0.95 * len(texts)
    assert "Kathmandu is the capital and largest city of Nepal." in texts
    assert sum("Ukraine" in t for t in texts) >= 10
    assert all((t[0].isupper() or t[0].isdigit()) and t[-1] in ".?!" for t in texts)
    assert not any(" an United" in t or "(" in t for t in texts)


@pytest.mark.skipif(not (Path("/usr/share/wordnet") / "cntlist.rev").exists(), reason="wordnet-base not installed")
def test_word_texts_are_short_utterances_said_alone():
    """wordnet-words: one to three words said on their own, the one source `collect` lets under 3 words."""
    from train import text as T
    texts = [t for t, _ in T.wordnet_words(T.read_wordnet())]
    assert len(texts) > 10000 and "Eleventh." in texts
    assert all(1 <= len(t.split()) <= 3 and t.endswith(".") for t in texts)
    assert sum(len(t.split()) == 1 for t in texts) > 0.5 * len(texts)
    mixed = T.collect({"wordnet-words": 0.5, "wordnet-questions": 0.5}, 200, seed=0)
    assert any(len(t.split()) == 1 for t, s in mixed if s == "wordnet-words")
    assert all(len(t.split()) >= 3 for t, s in mixed if s == "wordnet-questions")
