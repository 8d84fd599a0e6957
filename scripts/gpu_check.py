"""Check the paper-scale assistants on a CUDA machine: load, answer, evaluate, time.

    python scripts/gpu_check.py                       # the three assistants, 20 items per paper task
    python scripts/gpu_check.py --assistant diva-llama3-8b --items 5 --task sdqa

For each assistant: load it, answer diva/samples/capital_of_france.wav, run the first N items of
each paper task under the paper protocol (eval.run --protocol paper; results in --out), and report
time to first token, decode tokens/s and peak GPU memory. Needs a CUDA GPU, the network (models,
datasets and the QA metric come from the Hugging Face hub) and accepted licences for gated models.
"""
from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
ASSISTANTS = ("diva-llama3-8b", "qwen2-audio-7b", "cascade-llama3-8b")
SAMPLE = REPO_ROOT / "diva" / "samples" / "capital_of_france.wav"


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python scripts/gpu_check.py", description=__doc__.split("\n")[0])
    p.add_argument("--assistant", default=",".join(ASSISTANTS), type=lambda s: [a for a in s.split(",") if a],
                   help=f"comma-separated registry names (default {','.join(ASSISTANTS)})")
    p.add_argument("--items", type=int, default=20, help="items per paper task (default 20)")
    p.add_argument("--task", default=None, help="comma-separated paper tasks (default: all of them)")
    p.add_argument("--data-dir", default=None, help="local parquet copies of the paper datasets, as for eval.run")
    p.add_argument("--out", default=str(REPO_ROOT / "results" / "gpu_check"), help="paper-protocol results folder")
    p.add_argument("--max-new-tokens", type=int, default=64, help="for the sample question")
    return p.parse_args(argv)


def free_models() -> None:
    """Drop every cached model so the next assistant's peak memory is its own."""
    import torch
    from diva import models
    from diva.assistants import registry
    registry.load_assistant.cache_clear()
    models.load_llm.cache_clear()
    models.load_whisper.cache_clear()
    gc.collect()
    torch.cuda.empty_cache()


def sample_question(assistant, max_new_tokens: int) -> dict:
    """Time to first token and decode speed on the bundled question (the backend's own clock,
    else the wall time of a 1-token and a full answer)."""
    import torch
    from diva.audio import load_audio
    audio = load_audio(str(SAMPLE))
    assistant.generate([audio], max_new_tokens=4)  # warm-up: kernels, caches
    torch.cuda.synchronize()
    start = time.perf_counter()
    reply = assistant.generate_replies([audio], max_new_tokens=max_new_tokens)[0]
    torch.cuda.synchronize()
    total = time.perf_counter() - start
    ttft, speed = reply.ttft_s, reply.tokens_per_s
    if ttft is None:
        start = time.perf_counter()
        assistant.generate([audio], max_new_tokens=1)
        torch.cuda.synchronize()
        ttft = time.perf_counter() - start
    if speed is None:
        n = reply.n_tokens or len(getattr(assistant, "tokenizer", None).tokenize(reply.text)
                                  if getattr(assistant, "tokenizer", None) else reply.text.split())
        speed = max(n - 1, 0) / max(total - ttft, 1e-9)
    return {"answer": reply.text.strip().replace("\n", " "), "ttft_ms": 1000 * ttft, "tokens_per_s": speed}


def check(name: str, args) -> dict:
    import torch
    from diva.assistants.registry import load_assistant
    from eval.run import main as eval_main
    free_models()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    assistant = load_assistant(name)
    row = {"assistant": name, "load_s": time.perf_counter() - started}
    row.update(sample_question(assistant, args.max_new_tokens))
    print(f"{name}: {row['answer'][:120]!r}", flush=True)
    started = time.perf_counter()
    eval_args = ["--protocol", "paper", "--assistant", name, "--limit", str(args.items), "--out", args.out, "--quiet"]
    eval_args += ["--task", args.task] if args.task else []
    eval_args += ["--data-dir", args.data_dir] if args.data_dir else []
    row["paper_rc"] = eval_main(eval_args)
    row["paper_s"] = time.perf_counter() - started
    row["peak_gib"] = torch.cuda.max_memory_allocated() / 1024 ** 3
    return row


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))
    import torch
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (torch.cuda.is_available() is False); run it on a machine "
              "with an NVIDIA GPU", file=sys.stderr)
        return 1
    rows = []
    for name in args.assistant:
        try:
            rows.append(check(name, args))
        except Exception as exc:  # one failing assistant does not hide the others' numbers
            print(f"{name}: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
            rows.append({"assistant": name, "failed": f"{type(exc).__name__}"})
    print(f"\n{'assistant':<20}{'load s':>8}{'TTFT ms':>10}{'tok/s':>8}{'peak GiB':>10}{'paper s':>9}  paper tasks")
    for r in rows:
        if "failed" in r:
            print(f"{r['assistant']:<20}  failed: {r['failed']}")
            continue
        print(f"{r['assistant']:<20}{r['load_s']:8.1f}{r['ttft_ms']:10.0f}{r['tokens_per_s']:8.1f}"
              f"{r['peak_gib']:10.1f}{r['paper_s']:9.0f}  {'ok' if r['paper_rc'] == 0 else 'exit ' + str(r['paper_rc'])}")
    print(f"paper-protocol results: {args.out}/README.md ({torch.cuda.get_device_name()})")
    return 0 if rows and all("failed" not in r and r["paper_rc"] == 0 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
