"""A run's log: metrics.csv (one row per logged step, train and valid) and loss_curve.png."""
from __future__ import annotations

import csv
import resource
from pathlib import Path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Metrics:
    FIELDS = ["step", "split", "loss", "distill", "align", "align_whisper", "ce", "first_token_agreement",
              "lr", "grad_norm", "examples_per_s", "seconds", "peak_rss_mb", "cache_hits", "cache_misses"]

    def __init__(self, path: Path):
        self.path = path
        self.new = not path.exists()
        if not self.new:  # a resumed run keeps the columns its file started with
            with path.open(newline="") as f:
                self.FIELDS = next(csv.reader(f), None) or self.FIELDS

    def write(self, row: dict) -> None:
        with self.path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.FIELDS, extrasaction="ignore")
            if self.new:
                w.writeheader()
                self.new = False
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def plot_curves(run: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    df = pd.read_csv(run / "metrics.csv")
    keys = [k for k in ("loss", "distill", "align", "align_whisper", "ce") if k in df and df[k].notna().any()]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for split, style in (("train", "-"), ("valid", "o-")):
        part = df[df.split == split]
        for k in keys:
            if part[k].notna().any():
                axes[0].plot(part.step, part[k], style, label=f"{split} {k}", markersize=3)
    axes[0].set_xlabel("step"), axes[0].set_ylabel("loss"), axes[0].set_yscale("log"), axes[0].legend(fontsize=7)
    valid = df[df.split == "valid"]
    if "first_token_agreement" in valid and valid.first_token_agreement.notna().any():
        axes[1].plot(valid.step, valid.first_token_agreement, "o-")
    axes[1].set_xlabel("step"), axes[1].set_ylabel("first-token agreement (valid voices)"), axes[1].set_ylim(0, 1)
    fig.suptitle(run.name)
    fig.tight_layout()
    fig.savefig(run / "loss_curve.png", dpi=110)
    plt.close(fig)
