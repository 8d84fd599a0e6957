"""Training throughput with and without the cache of frozen outputs -> results/bench/train.csv.

    python -m train.bench [--config train/configs/diva-mini.yaml --stage distill] [--steps 6] [--encoder-seconds 30,10]

Per encoder window, three short runs, each its own process (so peak RSS is its own): `uncached`
computes the Whisper encoder and the text-branch teacher every step; `cache-fill` computes and
stores them; `cached` reads them back (all hits). The first step of each run is dropped as
warm-up; `speedup` is uncached seconds per step over the mode's.
"""
from __future__ import annotations

import csv
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from diva.errors import ArgumentParser, fail

FIELDS = ["encoder_seconds", "mode", "loss", "steps_timed", "batch_size", "examples_per_s", "seconds_per_step",
          "speedup", "peak_rss_mb", "encoder", "llm", "n_queries", "precision", "cpu_threads", "load_avg_1m",
          "machine", "date"]


def _run(config: str, stage: str, run_dir: Path, cache_dir: Path, steps: int, cache: bool, extra: list[str]) -> list[dict]:
    cmd = [sys.executable, "-m", "train.distill", "--config", config, "--stage", stage, f"train.steps={steps}",
           f"train.run_dir={run_dir}", f"train.cache_dir={cache_dir}", f"train.cache={str(cache).lower()}",
           "train.log_every=1", "train.eval_every=100000", "train.save_every=100000", "train.export_dir=null",
           "train.warmup=0.0", "train.init_from=null", *extra]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return [r for r in csv.DictReader((run_dir / "metrics.csv").open()) if r["split"] == "train"]


def effective_precision(asked: str) -> str:
    import torch
    from train.objectives import bf16_supported
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return "bf16" if asked == "bf16" and bf16_supported(device) else "fp32"


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m train.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="train/configs/diva-mini.yaml")
    parser.add_argument("--stage", default="distill", help="the stage whose settings are timed")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--encoder-seconds", default="30,10",
                        help="encoder windows to compare (30 = Whisper's; the cache saves less on a short one)")
    parser.add_argument("--out", default="results/bench/train.csv")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args(argv)
    from train.config import ConfigError, load_config, select_stage, stages
    try:
        cfg = select_stage(stages(load_config(args.config), args.overrides), args.stage)
    except ConfigError as error:
        return fail(error)
    tmp = Path(tempfile.mkdtemp(prefix="train-bench-"))
    out_rows = []
    batch = cfg["train"]["batch_size"]
    try:
        for window in args.encoder_seconds.split(","):
            extra = [*args.overrides, f"model.encoder_seconds={window}"]
            base = None
            for mode, cache in (("uncached", False), ("cache-fill", True), ("cached", True)):
                cache_dir = tmp / f"cache-{window}" if cache else tmp / "none"
                load = os.getloadavg()[0]
                rows = _run(args.config, args.stage, tmp / f"{mode}-{window}", cache_dir, args.steps, cache, extra)[1:]
                seconds = sum(float(r["examples_per_s"]) ** -1 for r in rows) * batch / len(rows)
                base = base or seconds
                import torch
                out_rows.append({
                    "encoder_seconds": window, "mode": mode, "loss": cfg["train"]["loss"], "steps_timed": len(rows),
                    "batch_size": batch, "examples_per_s": f"{batch / seconds:.3f}",
                    "seconds_per_step": f"{seconds:.3f}", "speedup": f"{base / seconds:.2f}",
                    "peak_rss_mb": f"{max(float(r['peak_rss_mb']) for r in rows):.0f}",
                    "encoder": cfg["model"]["encoder"], "llm": cfg["model"]["llm"],
                    "n_queries": cfg["model"]["n_queries"], "precision": effective_precision(cfg["train"]["precision"]),
                    "cpu_threads": torch.get_num_threads(), "load_avg_1m": f"{load:.2f}",
                    "machine": f"{platform.machine()} {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d")})
                print(out_rows[-1])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(out_rows)
    for row in out_rows:
        if row["mode"] == "cached":
            print(f"encoder window {row['encoder_seconds']} s: cached vs uncached {row['speedup']}x per step")
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
