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
from train.config import load_config

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


def _cfg(tmp_path, corpus_settings, **train):
    base = dict(steps=4, batch_size=4, lr=3e-3, warmup=0.0, eval_every=1000, eval_examples=2,
                save_every=2, log_every=1, cache_dir=str(tmp_path / "cache"), run_dir=str(tmp_path / "run"),
                precision="fp32")
    return {"corpus": corpus_settings, "model": {"encoder": "tiny-random", "llm": "tiny-random", "n_queries": 8},
            "train": {**base, **train}}


def _trainee(loss="distill", tmp=None):
    from diva.testing import tiny_diva
    from train.distill import DEFAULT_TRAIN, Trainee
    loss, *extras = loss.split("+")  # "align+ce", "align+whisper", "+bridge": with those ablations
    cfg = {**DEFAULT_TRAIN, "loss": loss, "cache": False, "precision": "fp32", "kl_tokens": 3,
           "align_ce_weight": 1.0 if "ce" in extras else 0.0,
           "align_whisper_weight": 1.0 if "whisper" in extras else 0.0, "align_whisper_blank": True}
    projection = "whisper-vocab" if "bridge" in extras else "linear"
    return Trainee(tiny_diva(n_queries=8, projection=projection), cfg,
                   {"encoder": "tiny-random", "llm": "tiny-random"}).train()


def _clips(n=4):
    rng = np.random.default_rng(0)
    return [(0.1 * rng.standard_normal(16_000 + 800 * i)).astype(np.float32) for i in range(n)]


@pytest.mark.parametrize("loss", ["distill", "sft", "kl", "align", "align+ce", "align+whisper", "distill+whisper",
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


@pytest.mark.parametrize("loss", ["distill", "sft", "align+whisper", "distill+whisper+bridge"])
def test_a_few_steps_lower_the_loss(loss):
    torch.manual_seed(0)
    trainee = _trainee(loss)
    opt = torch.optim.AdamW(trainee.diva.trainable_parameters(), lr=3e-3)
    losses = _train_steps(trainee, opt)
    if loss == "sft":  # a frozen random LLM has near-uniform logits: CE can only move a little
        assert losses[-1] < losses[0] - 0.05 and losses[-1] <= min(losses[:6]), losses
    elif "bridge" in loss:  # the fixed bridge only mixes the random LLM's embeddings: slower
        assert losses[-1] < losses[0] - 0.3 and losses[-1] <= min(losses[:6]), losses
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


def test_kill_9_and_resume_equals_uninterrupted_run(tmp_path, corpus):
    from safetensors.torch import load_file
    _, settings = corpus
    cfg = _cfg(tmp_path, settings, steps=8, save_every=2, batch_size=3)
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


def test_config_overrides_and_batch_order():
    from train.distill import batch_indices, lr_lambda
    cfg = load_config(ROOT / "train/configs/mini.yaml", ["train.steps=10", "train.lr=3e-4", "model.n_queries=64"])
    assert cfg["train"]["steps"] == 10 and cfg["train"]["lr"] == 3e-4 and cfg["model"]["n_queries"] == 64
    # the stream of shuffled epochs is a pure function of the position
    assert batch_indices(5, 0, 3, 4) == batch_indices(5, 0, 0, 7)[3:]
    assert sorted(batch_indices(5, 0, 0, 5)) == list(range(5))
    f = lr_lambda({"steps": 100, "warmup": 0.1, "schedule": "cosine", "min_lr_ratio": 0.0})
    assert f(0) == pytest.approx(0.1) and f(10) == pytest.approx(1.0) and f(100) == pytest.approx(0.0)


def test_align_stage_then_init_from_it(tmp_path, corpus):
    """The cheap `align` stage trains without running the LLM; a later run starts from its connector."""
    from diva.checkpoint import CheckpointError, read_checkpoint
    from diva.testing import tiny_diva
    from train.distill import init_connector, train
    _, settings = corpus
    run = train(_cfg(tmp_path, settings, loss="align", steps=3, eval_every=3))
    rows = (run / "metrics.csv").read_text()
    assert "valid" in rows and (run / "final" / "model.safetensors").exists()
    _, saved, _ = read_checkpoint(run / "final")
    from train.export import stage_summary  # what the next stage's model card says about this one
    assert "align loss, 3 steps, batch 4" in stage_summary(run / "final")

    # the cross-entropy ablation continues it: logged, and the card names both stages
    second = train(_cfg(tmp_path, settings, loss="align", align_ce_weight=1.0, steps=2, eval_every=2,
                        init_from=str(run / "final"), run_dir=str(tmp_path / "run-ce")))
    import pandas as pd
    logged = pd.read_csv(second / "metrics.csv")
    assert logged["align_ce"].notna().all() and (logged["align_ce"] > 0).all()
    summary = stage_summary(second / "final")
    assert "nearest-embedding cross-entropy x1.0" in summary and "itself initialised from" in summary

    fresh = tiny_diva(n_queries=8, seed=1)
    assert not torch.equal(fresh.query_tokens.detach().cpu(), saved["query_tokens"])
    init_connector(fresh, str(run / "final"))
    for key, value in fresh.connector_state_dict().items():
        torch.testing.assert_close(value.cpu(), saved[key], rtol=0, atol=0, msg=key)
    with pytest.raises(CheckpointError, match="n_queries"):
        init_connector(tiny_diva(n_queries=4), str(run / "final"))


def test_whisper_head_stage_then_distillation_through_the_bridge(tmp_path, corpus):
    """The Whisper-head ablation: stage 1 trains the connector against Whisper's own head (the
    projection unused); stage 2 starts from it behind the vocabulary bridge and distils."""
    import pandas as pd
    from diva.checkpoint import read_checkpoint
    from train.export import stage_summary
    from train.distill import train
    _, settings = corpus
    first = train(_cfg(tmp_path, settings, loss="align", align_weight=0.0, align_whisper_weight=1.0,
                       align_whisper_blank=True, steps=3, run_dir=str(tmp_path / "whisper")))
    logged = pd.read_csv(first / "metrics.csv")
    assert (logged["align_whisper"] > 0).all()
    ctc = train(_cfg(tmp_path, settings, loss="align", align_weight=0.0, align_whisper_weight=1.0,
                     align_whisper_ctc=True, steps=2, init_from=str(first / "final"),
                     run_dir=str(tmp_path / "ctc")))
    ctc_rows = pd.read_csv(ctc / "metrics.csv")
    assert ctc_rows["align_whisper"].between(0, 1e4).all()               # CTC runs (finite) from stage 1
    assert not ctc_rows["align_whisper"].equals(logged["align_whisper"].iloc[:len(ctc_rows)])
    sft = _cfg(tmp_path, settings, loss="sft", sft_keeps_alignment=True, align_weight=0.0, align_whisper_weight=1.0,
               align_whisper_ctc=True, steps=2, init_from=str(ctc / "final"), run_dir=str(tmp_path / "sft"))
    sft["model"].update(projection="whisper-vocab", bridge_blank="collapse")
    sft_rows = pd.read_csv(train(sft) / "metrics.csv").query("split == 'train'")
    assert (sft_rows["ce"] > 0).all() and (sft_rows["align_whisper"] > 0).all()
    assert np.allclose(sft_rows["loss"], sft_rows["ce"] + sft_rows["align_whisper"], rtol=1e-4)
    cfg = _cfg(tmp_path, settings, loss="distill", align_weight=0.0, align_whisper_weight=1.0,
               steps=2, init_from=str(first / "final"), run_dir=str(tmp_path / "bridge"))
    cfg["model"].update(projection="whisper-vocab", bridge_temperature=0.5, bridge_blank="drop")
    second = train(cfg)
    config, state, _ = read_checkpoint(second / "final")
    assert config.projection == "whisper-vocab" and not any(k.startswith("projection.") for k in state)
    assert (config.bridge_temperature, config.bridge_blank) == (0.5, "drop")
    _, first_state, _ = read_checkpoint(first / "final")
    assert not torch.equal(state["query_tokens"], first_state["query_tokens"])  # stage 2 trained on
    assert "Whisper-head cross-entropy x1.0" in stage_summary(second / "final")

    # a 0-step run validates the connector it starts from and leaves it as it was
    cfg["train"].update(steps=0, init_from=str(second / "final"), run_dir=str(tmp_path / "zero"))
    zero = train(cfg)
    rows = pd.read_csv(zero / "metrics.csv")
    assert rows["split"].tolist() == ["valid"] and rows["step"].tolist() == [0] and rows["distill"][0] > 0
    _, unchanged, _ = read_checkpoint(zero / "final")
    assert all(torch.equal(unchanged[k], v) for k, v in state.items())


def test_connector_dropout_acts_in_training_only():
    from diva.testing import tiny_diva
    from train.distill import set_connector_dropout
    diva = tiny_diva(n_queries=4)
    enc = torch.randn(2, 10, diva.connector.config.d_model)
    diva.train(False)
    before = diva.connector_states(enc)
    set_connector_dropout(diva.connector, 0.5)
    assert torch.equal(diva.connector_states(enc), before)            # eval mode: unchanged
    diva.train(True)
    assert not torch.allclose(diva.connector_states(enc), before)     # training: dropped out


def test_time_masks_replace_spans_inside_the_clip_in_training_only():
    from train.distill import mask_time_spans
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
    from train.distill import init_connector
    with pytest.raises(CheckpointError, match="mini-align.yaml"):
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


@pytest.mark.skipif(not (Path("/usr/share/wordnet") / "data.noun").exists(), reason="wordnet-base not installed")
def test_place_texts_name_countries_and_cities_without_evaluation_questions():
    """geonames-places: capitals and cities as ASCII sentences; no evaluation-question shapes,
    and `collect` leaves the evaluation questions themselves out."""
    from train import places as P
    from train import text as T
    texts = [t for t, _ in P.geonames_places()]
    assert len(texts) > 30000
    assert "Accra is the capital of Ghana." in texts
    assert "Manila is the capital of the Philippines." in texts
    assert sum("Ukraine" in t for t in texts) >= 10
    assert all(t.isascii() and t[0].isupper() and t[-1] in ".?!" for t in texts)
    assert not any(t.startswith(("What is the capital of", "In which")) for t in texts)
    assert P.ascii_name("S\u00e3o Paulo") == "Sao Paulo" and P.with_article("Netherlands") == "the Netherlands"
    question = "What is the capital of Ghana?"
    picked = T.collect({"geonames-places": 1.0}, 500, exclude={question, "Accra is the capital of Ghana."})
    assert len(picked) == 500 and all(src == "geonames-places" for _, src in picked)
    assert "accra is the capital of ghana." not in {t.lower() for t, _ in picked}


def test_small_places_filter_keeps_countries_capitals_and_big_cities():
    """corpus.min_place_population: a clip leaves training when one of its GeoNames texts names a
    city (not a capital) under the threshold; countries, capitals, big cities and other text stay."""
    from datasets import Dataset
    from train import places as P
    from train.data import without_small_places
    sizes = dict(P.place_texts())
    assert sizes["Accra is the capital of Ghana."] is None  # countries and capitals: no city size
    town = next(t for t, s in sizes.items() if s is not None and s < 50_000)
    metropolis = next(t for t, s in sizes.items() if s is not None and s > 5_000_000)
    clips = Dataset.from_dict({"transcript": [
        f"What is a peony? {town}", "Accra is the capital of Ghana. What is a peony?", metropolis,
        f"{metropolis} {town} Tell me about Simon.", "Can you explain what a lemma is?"]})
    kept = without_small_places(clips, 1_000_000)["transcript"]
    assert kept == ["Accra is the capital of Ghana. What is a peony?", metropolis, "Can you explain what a lemma is?"]
    smallest = min(s for s in sizes.values() if s is not None)
    assert len(without_small_places(clips, smallest)) == 5  # no named city is smaller than that


def test_average_checkpoints_is_the_weighted_mean_and_refuses_other_architectures(tmp_path):
    """train.average: each tensor is the weighted mean; the bridge settings carry over; a
    checkpoint with another query count is refused."""
    from diva.checkpoint import CheckpointError, read_checkpoint, save_connector
    from diva.testing import tiny_diva
    from train.average import average_checkpoints
    kw = dict(n_queries=4, projection="whisper-vocab", bridge_temperature=0.05, bridge_blank="collapse")
    a = save_connector(tiny_diva(seed=0, **kw), tmp_path / "a")
    b = save_connector(tiny_diva(seed=1, **kw), tmp_path / "b")
    (_, sa, _), (_, sb, _) = read_checkpoint(a), read_checkpoint(b)
    assert not torch.equal(sa["query_tokens"], sb["query_tokens"])
    config, mean, raw = read_checkpoint(average_checkpoints([str(a), str(b)], tmp_path / "mean", [3, 1]))
    assert config.bridge_blank == "collapse" and config.bridge_temperature == 0.05 and raw["average_weights"] == [3, 1]
    for k in sa:
        torch.testing.assert_close(mean[k], 0.75 * sa[k] + 0.25 * sb[k])
    _, only_a, _ = read_checkpoint(average_checkpoints([str(a), str(b)], tmp_path / "only_a", [1, 0]))
    assert all(torch.equal(only_a[k], sa[k]) for k in sa)
    other = save_connector(tiny_diva(seed=2, **{**kw, "n_queries": 6}), tmp_path / "other")
    with pytest.raises(CheckpointError, match="n_queries"):
        average_checkpoints([str(a), str(other)], tmp_path / "bad")


def test_extra_slots_learn_by_distillation_alone_behind_the_bridge(tmp_path):
    """n_extra_slots: query slots after the bridge's words, projected linearly; train.trainable
    'extra' trains them by distillation while the word slots stay exactly as they were."""
    from diva.checkpoint import load_state_into, read_checkpoint, save_connector
    from diva.testing import tiny_diva
    from train.distill import DEFAULT_TRAIN, Trainee
    plain = tiny_diva(n_queries=8, projection="whisper-vocab", bridge_blank="collapse")
    diva = tiny_diva(n_queries=8, projection="whisper-vocab", bridge_blank="collapse", n_extra_slots=3)
    enc = torch.randn(2, 10, diva.connector.config.d_model)
    with torch.no_grad():  # the decoder is causal: extra slots after the words leave the words alone
        assert torch.allclose(diva.word_states(diva.connector_states(enc)), plain.connector_states(enc), atol=1e-5)
        virtual, keep = diva.project(diva.connector_states(enc))
    assert virtual.shape[1] == 11 and keep.shape == (2, 11) and keep[:, 8:].all()

    cfg = {**DEFAULT_TRAIN, "loss": "distill", "cache": False, "precision": "fp32", "align_weight": 0.0,
           "trainable": "extra"}
    trainee = Trainee(diva, cfg, {"encoder": "tiny-random", "llm": "tiny-random"}).train()
    words_before = {k: v.clone() for k, v in diva.connector_state_dict().items() if not k.startswith("extra_")}
    params = diva.trainable_parameters()
    assert {id(p) for p in params} == {id(p) for p in diva.extra_parameters()}
    opt = torch.optim.AdamW(params, lr=3e-2)
    losses = _train_steps(trainee, opt)
    assert all(p.grad is None for p in diva.connector.parameters()) and diva.query_tokens.grad is None
    assert losses[-1] < losses[0] - 0.05 and losses[-1] <= min(losses[:6]), losses
    after = diva.connector_state_dict()
    assert all(torch.equal(after[k], v) for k, v in words_before.items())

    save_connector(diva, tmp_path / "extra")
    config, state, _ = read_checkpoint(tmp_path / "extra")
    assert config.n_extra_slots == 3 and state["extra_query_tokens"].shape[0] == 3
    again = tiny_diva(n_queries=8, projection="whisper-vocab", bridge_blank="collapse", n_extra_slots=3)
    load_state_into(again, state)
    with torch.no_grad():
        assert torch.allclose(again.project(again.connector_states(enc))[0],
                              diva.project(diva.connector_states(enc))[0], atol=1e-5)
    with pytest.raises(ValueError, match="whisper-vocab"):
        tiny_diva(n_queries=8, n_extra_slots=3)
