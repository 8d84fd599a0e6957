"""Validation curves of several training runs in one PNG.

    python -m research.compare results/train/diva-mini_metrics.csv results/train/sft-mini_metrics.csv \
        --label diva-mini --label sft-mini --out results/train/runs_compared.png

Each input is a run folder or its metrics.csv. Panels: first-token agreement with the text
branch on VALID voices (every objective logs it), and the validation losses each run has.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

LOSSES = ("distill", "align", "align_ce", "align_whisper", "ce", "kl")


def read_metrics(source: str | Path) -> pd.DataFrame:
    path = Path(source)
    return pd.read_csv(path / "metrics.csv" if path.is_dir() else path)


def compare(sources: list[str], labels: list[str], out: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (agree_ax, loss_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for source, label in zip(sources, labels):
        valid = read_metrics(source).query("split == 'valid'")
        line, = agree_ax.plot(valid.step, valid.first_token_agreement, "o-", markersize=3, label=label)
        for style, key in zip(("-", "--", (0, (1, 3)), ":", "-."), LOSSES):
            if key in valid and valid[key].notna().any():
                loss_ax.plot(valid.step, valid[key], linestyle=style, marker="o", markersize=3, color=line.get_color(),
                             label=f"{label} {key}")
    agree_ax.set(xlabel="step", ylabel="first-token agreement (VALID voices)", ylim=(0, 1))
    loss_ax.set(xlabel="step", ylabel="validation loss", yscale="log")
    agree_ax.legend(fontsize=8)
    loss_ax.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sources", nargs="+", help="run folders or metrics.csv files")
    parser.add_argument("--label", action="append", help="one per source, in order")
    parser.add_argument("--out", default="results/train/runs_compared.png")
    args = parser.parse_args(argv)
    labels = args.label or [Path(s).stem for s in args.sources]
    if len(labels) != len(args.sources):
        raise SystemExit(f"{len(args.sources)} sources but {len(labels)} labels")
    print(compare(args.sources, labels, Path(args.out)))


if __name__ == "__main__":
    main()
