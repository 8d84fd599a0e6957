"""Plans before a GPU bill (train and eval --dry-run) and the GPU check's behaviour without CUDA."""
import functools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def run(*cmd, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(home)}  # an empty cache
    return subprocess.run([sys.executable, *cmd], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_paper_recipe_dry_run_plans_offline_from_the_built_in_configs(tmp_path):
    proc = run("-m", "train.distill", "--config", "train/configs/paper.yaml", "--dry-run", home=tmp_path)
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "common_voice_17_0 (en): NOT RESOLVED offline" in out
    assert out.count("NOT FETCHED (offline): built-in table") == 2            # Whisper large-v3, Llama 3 8B
    assert "64 per device x 1 process(es) x 1 accumulation = 64; 4300 steps = 275,200 examples" in out
    assert "1500 encoder frames -> 448 virtual tokens" in out
    assert "encoder 637M, LLM 8,030M" in out and "trained 846.0M" in out    # counted on the meta device
    assert "frozen weights (encoder, LLM, token table)" in out and "AdamW moments" in out
    assert "largest batch_size on 80 GB (A100/H100) (DDP, rough): 16 -> train.batch_size=16 train.grad_accum=4" in out
    assert not list(tmp_path.rglob("*.safetensors"))                          # nothing downloaded


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from diva.testing import save_tiny_models
    return save_tiny_models(tmp_path_factory.mktemp("models"))


def test_plan_counts_the_parameters_a_built_diva_has(tiny_models):
    from diva.model import DiVA, DivaConfig
    from train.plan import model_config, parameter_counts, plan
    encoder, llm = tiny_models
    counts = parameter_counts(model_config(encoder).config, model_config(llm).config, 8, "linear")
    diva = DiVA.from_config(DivaConfig(encoder=encoder, llm=llm, n_queries=8))
    assert counts["trained"] == sum(p.numel() for p in diva.trainable_parameters())
    assert counts["encoder"] == sum(p.numel() for p in diva.encoder.parameters())
    assert counts["llm"] == sum(p.numel() for p in diva.llm.parameters())
    cfg = {"name": "tiny", "corpus": {"root": "/nonexistent"}, "model": {"encoder": encoder, "llm": llm, "n_queries": 8},
           "train": {"steps": 10, "batch_size": 4, "grad_accum": 2, "precision": "fp32"}}
    lines = "\n".join(plan(cfg, processes=2))
    assert f"encoder: {encoder}: local folder" in lines and "not built yet" in lines
    assert "4 per device x 2 process(es) x 2 accumulation = 16; 10 steps = 160 examples" in lines
    assert "fp32 (4 bytes/value)" in lines and "FSDP over 2 devices" in lines
    missing = plan({**cfg, "model": {**cfg["model"], "llm": "someone/not-here"}}, processes=1)
    assert any("not resolvable offline" in line for line in missing) and "memory: not estimated" in missing[-1]


def saved_activation_bytes(trainee, clips, texts) -> int:
    """What autograd keeps for backward in one training forward (weights and buffers excluded)."""
    own = {t.data_ptr() for t in [*trainee.diva.parameters(), *trainee.diva.buffers()]}
    storages = {}

    def pack(x):
        if x.data_ptr() not in own:
            storages[x.untyped_storage().data_ptr()] = x.untyped_storage().nbytes()
        return x
    keys = [str(i) for i in range(len(clips))]
    trainee.encoder_states(clips, keys)  # the frozen encoder's states come from the cache in training
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
        trainee(clips, keys, texts)
    return sum(storages.values())


@pytest.mark.parametrize("loss", ["distill", "align"])
def test_activation_estimate_is_near_what_autograd_keeps(tiny_models, loss, tmp_path):
    from diva.model import DiVA, DivaConfig
    from train.config import TRAIN_DEFAULTS
    from train.objectives import Trainee
    from train.plan import activation_elements, layout_tokens, model_config
    encoder, llm = tiny_models
    tcfg = {**TRAIN_DEFAULTS, "loss": loss, "precision": "fp32", "cache_dir": str(tmp_path)}
    trainee = Trainee(DiVA.from_config(DivaConfig(encoder=encoder, llm=llm, n_queries=8)), tcfg).train()
    clips = [(0.1 * np.random.default_rng(i).standard_normal(24_000)).astype(np.float32) for i in range(2)]
    measured = saved_activation_bytes(trainee, clips, ["What is the capital of France?", "Hello there."])
    around, known = layout_tokens(model_config(llm))
    assert known
    estimate = activation_elements(model_config(encoder).config, model_config(llm).config, tcfg, 8, 1500, 8 + around)
    trained = 4 * 2 * sum(v for k, v in estimate.items() if "transient" not in k)
    assert 0.8 < trained / measured < 1.3, (trained, measured)


def test_eval_dry_run_sizes_the_paper_assistants_offline(tmp_path):
    proc = run("-m", "eval.run", "--protocol", "paper", "--assistant", "diva-llama3-8b,cascade-llama3-8b,qwen2-audio-7b",
               "--task", "sdqa", "--limit", "20", "--dry-run", home=tmp_path)
    out = proc.stdout
    assert "task sdqa: WillHeld/SD-QA:dev: NOT RESOLVED offline" in out
    assert "checkpoint WillHeld/DiVA-llama-3-v0-8b: NOT FETCHED (offline): built-in description" in out
    assert out.count("memory per process (bf16): weights") == 2
    assert "Qwen/Qwen2-Audio-7B-Instruct: not resolvable offline" in out
    assert proc.returncode == 1                                                 # qwen2-audio could not be sized
    local = run("-m", "eval.run", "--assistant", "text-mini", "--task", "spoken-qa", "--dry-run", home=tmp_path)
    assert local.returncode == 0 and "lines in eval/data/spoken_qa.jsonl" in local.stdout, local.stderr[-2000:]


# --- the GPU check --------------------------------------------------------------------------
def test_gpu_check_parses_and_fails_clearly_without_cuda(tmp_path):
    helped = run("scripts/gpu_check.py", "--help", home=tmp_path)
    assert helped.returncode == 0 and "--assistant" in helped.stdout and "--items" in helped.stdout
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here: the check would run")
    failed = run("scripts/gpu_check.py", home=tmp_path)
    assert failed.returncode == 1 and failed.stdout == ""
    assert failed.stderr.strip().splitlines() == [failed.stderr.strip()] and "no CUDA device" in failed.stderr


def test_gpu_check_reports_every_assistant_on_a_stand_in_gpu(monkeypatch, capsys, tmp_path):
    """The CUDA path with torch.cuda and the models stood in for: timings, peak memory, the
    paper-protocol run per assistant, and one failing assistant that does not stop the others."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import gpu_check
    from diva.assistants import registry
    from diva.reply import Reply
    import eval.run

    class Fake:
        tokenizer = None

        def generate(self, audios, max_new_tokens=64):
            assert audios[0].dtype == np.float32 and len(audios[0]) > 16_000
            return ["Paris"]

        def generate_replies(self, audios, max_new_tokens=64):
            return [Reply(text="The capital of France is Paris.", ttft_s=0.05, tokens_per_s=40.0, n_tokens=8)]

    @functools.lru_cache(maxsize=None)  # as registry.load_assistant is
    def load(name):
        if name == "broken":
            raise RuntimeError("no weights")
        return Fake()
    for attr, value in {"is_available": lambda: True, "synchronize": lambda: None, "empty_cache": lambda: None,
                        "reset_peak_memory_stats": lambda: None, "max_memory_allocated": lambda: 3 * 1024 ** 3,
                        "get_device_name": lambda: "Stand-in GPU"}.items():
        monkeypatch.setattr(torch.cuda, attr, value)
    monkeypatch.setattr(registry, "load_assistant", load)
    calls = []
    monkeypatch.setattr(eval.run, "main", lambda argv: calls.append(argv) or 0)
    code = gpu_check.main(["--assistant", "one,broken", "--items", "3", "--task", "sdqa", "--out", str(tmp_path)])
    out = capsys.readouterr()
    assert code == 1                                                           # one assistant failed
    assert calls == [["--protocol", "paper", "--assistant", "one", "--limit", "3", "--out", str(tmp_path),
                      "--quiet", "--task", "sdqa"]]
    row = next(line for line in out.out.splitlines() if line.startswith("one "))
    assert row.split()[2:5] == ["50", "40.0", "3.0"] and row.endswith("ok")
    assert "broken: FAILED: RuntimeError: no weights" in out.err and "Stand-in GPU" in out.out
