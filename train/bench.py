"""Training throughput with and without the cache of frozen outputs -> results/bench/train.csv.

    python -m train.bench --config train/configs/mini.yaml [--steps 6]

Three short runs, each its own process (so peak RSS is its own): `uncached` computes the Whisper
encoder and the text-branch teacher every step; `cache-fill` computes and stores them;
`cached` reads them back (all hits). The first step of each run is dropped as warm-up.
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIELDS = ["mode", "loss", "steps_timed", "batch_size", "examples_per_s", "seconds_per_step", "peak_rss_mb",
          "encoder", "llm", "n_queries", "precision", "cpu_threads", "machine", "date"]


def _run(config: str, run_dir: Path, cache_dir: Path, steps: int, cache: bool, extra: list[str]) -> list[dict]:
    cmd = [sys.executable, "-m", "train.distill", "--config", config, f"train.steps={steps}",
           f"train.run_dir={run_dir}", f"train.cache_dir={cache_dir}", f"train.cache={str(cache).lower()}",
           "train.log_every=1", "train.eval_every=100000", "train.save_every=100000", "train.export_dir=null",
           "train.warmup=0.0", *extra]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return [r for r in csv.DictReader((run_dir / "metrics.csv").open()) if r["split"] == "train"]


def effective_precision(asked: str) -> str:
    import torch
    from train.distill import bf16_supported
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return "bf16" if asked == "bf16" and bf16_supported(device) else "fp32"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="train/configs/mini.yaml")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--out", default="results/bench/train.csv")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args()
    from train.config import load_config
    cfg = load_config(args.config, args.overrides)
    tmp = Path(tempfile.mkdtemp(prefix="train-bench-"))
    out_rows = []
    try:
        for mode, cache, cache_dir in (("uncached", False, tmp / "none"), ("cache-fill", True, tmp / "cache"),
                                       ("cached", True, tmp / "cache")):
            rows = _run(args.config, tmp / mode, cache_dir, args.steps, cache, args.overrides)[1:]
            seconds = sum(float(r["examples_per_s"]) ** -1 for r in rows) * cfg["train"]["batch_size"] / len(rows)
            import torch
            out_rows.append({
                "mode": mode, "loss": cfg["train"]["loss"], "steps_timed": len(rows),
                "batch_size": cfg["train"]["batch_size"], "examples_per_s": f"{cfg['train']['batch_size'] / seconds:.3f}",
                "seconds_per_step": f"{seconds:.3f}", "peak_rss_mb": f"{max(float(r['peak_rss_mb']) for r in rows):.0f}",
                "encoder": cfg["model"]["encoder"], "llm": cfg["model"]["llm"], "n_queries": cfg["model"]["n_queries"],
                "precision": effective_precision(cfg["train"]["precision"]), "cpu_threads": torch.get_num_threads(),
                "machine": f"{platform.machine()} {os.cpu_count()} cores (shared)", "date": time.strftime("%Y-%m-%d")})
            print(out_rows[-1])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(out_rows)
    speedup = float(out_rows[0]["seconds_per_step"]) / float(out_rows[2]["seconds_per_step"])
    print(f"cached vs uncached: {speedup:.2f}x faster per step -> {out}")


if __name__ == "__main__":
    main()
