"""Two processes (accelerate launch, gloo on CPU) compute what one does: training on the tiny random
models (same connector, losses and validation as one process with the same global batch; kill -9
and resume), and sharded evaluation (same rows, predictions and answer cache)."""
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import torch
import yaml
from safetensors.torch import load_file

from diva import voices as V
from diva.serve import free_port

ROOT = Path(__file__).resolve().parents[1]
ACCELERATE = str(Path(sys.executable).with_name("accelerate"))
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
espeak = pytest.mark.skipif(not V.get_voice("espeak:en-us").available, reason="espeak-ng not installed")



def launch(module: str, *args, processes: int = 2, env=None, config_file: str | None = None) -> subprocess.Popen:
    """`accelerate launch` of N CPU processes: --multi_gpu (or a MULTI_GPU config file) is accelerate's
    torchrun launcher; without CUDA each process takes the CPU and gloo (`--cpu --num_processes 2`
    would start one process: accelerate runs several CPU processes through mpirun only)."""
    how = ["--config_file", config_file] if config_file else \
        ["--multi_gpu", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    cmd = [sys.executable, "-m", module, *args] if processes == 1 else \
        [ACCELERATE, "launch", *how, "--num_processes", str(processes), "--main_process_port", str(free_port()),
         "-m", module, *args]
    return subprocess.Popen(cmd, cwd=ROOT, env={**ENV, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finished(proc: subprocess.Popen, timeout: float = 300) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out + err


# --- training ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    """A 6-step distill run on the tiny models, 8 clips, time masks on, validation and checkpoints
    every 2 steps; batch_size is per process."""
    from test_train import ESPEAK, TEXTS
    from diva.testing import save_tiny_models
    from train.data import build
    root = tmp_path_factory.mktemp("dist")
    corpus = dict(name="t", root=str(root / "corpus"), n_train=8, n_valid=3, seed=0, texts=TEXTS, voices=ESPEAK,
                  speed_range=[0.9, 1.1], pitch_range=[0.9, 1.1], noise_prob=0.5, snr_db=[15, 30],
                  shard_size=4, workers=1, exclude=[], text_weights={})
    build(corpus)
    encoder, llm = save_tiny_models(root / "models")
    cfg = {"corpus": corpus, "model": {"encoder": encoder, "llm": llm, "n_queries": 8},
           "train": dict(steps=6, batch_size=2, lr=3e-3, warmup=0.0, eval_every=2, eval_examples=3,
                         save_every=2, log_every=1, time_masks=1, precision="fp32",
                         cache_dir=str(root / "cache"))}
    path = root / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return root, path


DDP = "train/configs/accelerate/ddp.yaml"  # the shipped multi-GPU config, here on 2 CPU processes


@pytest.fixture(scope="module")
def two_process_run(recipe):
    root, cfg = recipe
    finished(launch("train.distill", "--config", str(cfg), f"train.run_dir={root / 'two'}", config_file=DDP))
    return root / "two"


def _connector(run: Path, step: int) -> dict:
    return load_file(str(run / "ckpt" / f"step-{step:07d}" / "connector.safetensors"))


def _state(run: Path, step: int) -> dict:
    return torch.load(run / "ckpt" / f"step-{step:07d}" / "state.pt", weights_only=False)


@espeak
def test_two_processes_train_the_connector_one_process_trains(recipe, two_process_run):
    root, cfg = recipe
    one = root / "one"  # the same global batch, 4, on one process
    finished(launch("train.distill", "--config", str(cfg), f"train.run_dir={one}", "train.batch_size=4",
                    processes=1))
    a, b = load_file(str(one / "final" / "model.safetensors")), load_file(str(two_process_run / "final" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6, msg=k)
    assert not torch.equal(a["query_tokens"], _connector(one, 4)["query_tokens"])  # it did train
    sa, sb = _state(one, 6), _state(two_process_run, 6)
    assert sa["position"] == sb["position"] == 24 and sa["scheduler"] == sb["scheduler"]
    assert len(sa["rng"]) == 1 and len(sb["rng"]) == 2                       # one RNG state per process
    # metrics: one row per step and split (written once), losses of the whole global batch
    ma, mb = pd.read_csv(one / "metrics.csv"), pd.read_csv(two_process_run / "metrics.csv")
    assert list(zip(mb.step, mb.split)) == list(zip(ma.step, ma.split))
    assert len(mb) == 6 + 3                                                  # 6 train rows, 3 validations
    for column in ("loss", "distill", "align", "first_token_agreement", "lr", "grad_norm"):
        np.testing.assert_allclose(mb[column], ma[column], rtol=1e-4, atol=1e-6, err_msg=column)
    lookups = mb.cache_hits + mb.cache_misses
    assert lookups.tolist()[:2] == [4, 8]                                    # both processes' cache lookups
    assert sorted(p.name for p in two_process_run.iterdir()) == \
        ["ckpt", "config.yaml", "final", "loss_curve.png", "metrics.csv"]
    assert sorted(p.name for p in (two_process_run / "ckpt").iterdir()) == ["step-0000004", "step-0000006"]


@espeak
def test_two_processes_killed_and_resumed_reach_the_uninterrupted_state(recipe, two_process_run):
    root, cfg = recipe
    killed = root / "killed"
    victim = launch("train.distill", "--config", str(cfg), f"train.run_dir={killed}", config_file=DDP)
    deadline = time.time() + 300
    while not (killed / "ckpt" / "step-0000002").exists():
        assert victim.poll() is None, victim.communicate()[1][-3000:]
        assert time.time() < deadline
        time.sleep(0.02)
    job = psutil.Process(victim.pid)
    for proc in job.children(recursive=True) + [job]:  # kill -9 the launcher and both workers
        proc.kill()
    victim.wait()
    assert not (killed / "final").exists()
    out = finished(launch("train.distill", "--config", str(cfg), f"train.run_dir={killed}", config_file=DDP))
    assert "resumed from" in out
    a, b = _connector(two_process_run, 6), _connector(killed, 6)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=k)
    sa, sb = _state(two_process_run, 6), _state(killed, 6)
    assert sa["position"] == sb["position"] and sa["scheduler"] == sb["scheduler"]
    for x, y in zip(sa["optimizer"]["state"].values(), sb["optimizer"]["state"].values()):
        assert all(torch.equal(x[key], y[key]) for key in x)
    train = pd.read_csv(killed / "metrics.csv").query("split == 'train'")
    assert train.step.tolist()[-4:] == [3, 4, 5, 6]


def test_fsdp_gathers_the_connector_one_process_trains_and_restores_adamw(tmp_path):
    """train.distributed's FSDP paths under FSDP2 on 2 CPU processes (tests/fsdp_worker.py)."""
    from diva.testing import save_tiny_models
    save_tiny_models(tmp_path / "models")
    proc = subprocess.run([str(Path(sys.executable).with_name("torchrun")), "--nproc_per_node", "2", "--master_port",
                           str(free_port()), "tests/fsdp_worker.py", str(tmp_path / "models"), str(tmp_path)],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["keys_equal"] and result["optimizer_restored"] and result["saved_keys"] > 0
    assert result["max_diff"] < 1e-5                     # sharded reduce-scatter sums in another order


def test_sft_cross_entropy_split_over_processes_has_the_whole_batch_gradient():
    """The SFT loss is a token mean: per-process means would weight a short transcript's tokens
    more; dividing by the global count (ce_share) gives the one-process gradient."""
    from test_train import TEXTS, _clips, _trainee
    from train.distributed import ce_share

    class Rows(list):  # what ce_share reads: data.select(idx)["transcript"]
        def select(self, idx):
            return {"transcript": [self[i] for i in idx]}

    trainee = _trainee("sft")
    clips, keys, texts = _clips(4), list("abcd"), [TEXTS[0], TEXTS[4], "Hi.", TEXTS[8] + " " + TEXTS[9]]
    params = trainee.diva.trainable_parameters()

    def grads(loss):
        return torch.autograd.grad(loss, params)
    whole = grads(trainee(clips, keys, texts)["loss"])
    share = ce_share(trainee, Rows(texts), [[0, 2, 1, 3]], world=2)  # rank r takes positions r, r + 2
    halves = [grads(trainee([clips[i] for i in idx], [keys[i] for i in idx], [texts[i] for i in idx],
                            ce_denominator=share)["loss"]) for idx in ([0, 1], [2, 3])]
    naive = [grads(trainee([clips[i] for i in idx], [keys[i] for i in idx], [texts[i] for i in idx])["loss"])
             for idx in ([0, 1], [2, 3])]
    for w, h0, h1, n0, n1 in zip(whole, *halves, *naive):
        torch.testing.assert_close((h0 + h1) / 2, w, rtol=1e-4, atol=1e-7)   # what DDP's average gives
    assert any(not torch.allclose((n0 + n1) / 2, w, rtol=1e-3, atol=1e-6) for w, n0, n1 in zip(whole, *naive))


def test_validation_shares_give_every_process_the_same_number_of_batches():
    from train.distributed import validation_batches
    for n, batch, world in [(3, 2, 2), (5, 2, 2), (1, 4, 2), (7, 3, 4), (8, 2, 1)]:
        shares = [validation_batches(n, batch, rank, world) for rank in range(world)]
        assert len({len(s) for s in shares}) == 1
        counted = sorted(i for s in shares for idx, k in s for i in idx[:k])
        assert counted == list(range(n))


# --- evaluation -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A DiVA connector folder on the tiny random models: a cheap assistant that hears and reads."""
    from diva.checkpoint import save_connector
    from diva.model import DiVA, DivaConfig
    from diva.testing import save_tiny_models
    root = tmp_path_factory.mktemp("tiny-diva")
    encoder, llm = save_tiny_models(root / "models")
    torch.manual_seed(0)
    return save_connector(DiVA.from_config(DivaConfig(encoder=encoder, llm=llm, n_queries=8)), root / "ckpt")


@espeak
def test_sharded_evaluation_writes_what_one_process_writes(tiny_checkpoint, tmp_path):
    from eval.tasks import get_task
    env = {"DIVA_EVAL_DATA": str(tmp_path / "data")}
    os.environ["DIVA_EVAL_DATA"] = env["DIVA_EVAL_DATA"]
    try:  # the clips, synthesised once beforehand
        get_task("spoken-translation").load(limit=3)
    finally:
        del os.environ["DIVA_EVAL_DATA"]
    args = ["--checkpoint", f"tiny={tiny_checkpoint}", "--assistant", "tiny", "--task",
            "spoken-translation", "--limit", "3", "--batch-size", "2", "--quiet"]
    finished(launch("eval.run", *args, "--out", str(tmp_path / "one"), processes=1, env=env))
    out = finished(launch("eval.run", *args, "--out", str(tmp_path / "two"), env=env))
    assert "2 processes answered 18 new answers" in out      # 3 sentences x 3 languages x 2 modalities
    for name in ("translation.csv", "items/translation/tiny__spoken-translation.jsonl"):
        assert (tmp_path / "two" / name).read_text() == (tmp_path / "one" / name).read_text(), name
    rows = [json.loads(line) for line in (tmp_path / "two" / "items/translation/tiny__spoken-translation.jsonl")
            .read_text().splitlines()]
    assert len(rows) == 18 and len({r["item_id"] for r in rows}) == 9

    assert not [p.name for p in (tmp_path / "two").iterdir() if "rank" in p.name]  # shard files merged, gone

    def answers(folder):
        db = sqlite3.connect(folder / "cache.sqlite")
        rows = db.execute("SELECT key, assistant, task, item_id, modality, prompt_id, response "
                          "FROM answers ORDER BY key").fetchall()
        db.close()
        return rows
    assert answers(tmp_path / "two") == answers(tmp_path / "one") and len(answers(tmp_path / "one")) == 18
