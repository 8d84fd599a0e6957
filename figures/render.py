"""Figures 2, 3, 4 and 6 of the DiVA paper, from the paper's numbers and from our own results.

    python -m figures            # or `make figures`; writes results/figures/*.png

Each figure is drawn twice with the same layout and colours: `paper_*.png` from
`results/paper/paper_values.csv`, and `ours_*.png` from `results/eval/<suite>.csv` (eval runner)
and `results/arena/votes.csv` (arena export) wherever those exist. Significance marks on our
figures are computed here from the raw per-item results (paired bootstrap) or the votes (exact
binomial test); the paper figures only repeat the paper's own stars.

Every builder takes DataFrames and returns a `matplotlib.figure.Figure`, so callers and tests
can inspect the artists: each bar's gid is `bar|<task>|<subset>|<model>` (as in the CSV), its
value label's `label|<task>|<subset>|<model>`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from figures import paper
from figures.data import (
    ROOT,
    MissingResults,
    binomial_p,
    load_eval,
    load_study,
    load_votes,
    our_bars,
    pairwise_votes,
    paper_bars,
    provenance,
    shown,
)
from figures.draw import SPECS, STAR, STYLE, FigureSpec, bar_figure, winrate_figure

EVAL_DIR = ROOT / "results" / "eval"
VOTES_CSV = ROOT / "results" / "arena" / "votes.csv"
OUT_DIR = ROOT / "results" / "figures"

# --- the figures -----------------------------------------------------------------------------

PAPER_SOURCE = "Paper (Held et al.)"
PAPER_NOTE = (f"Values read off the paper's charts (±0.5), results/paper/paper_values.csv. "
              f"{STAR} = marked significantly best by the paper itself; there are no per-item "
              "results to test here.")


def paper_figure(table: pd.DataFrame, spec: FigureSpec) -> Figure:
    if spec.suite:
        return bar_figure(paper_bars(table, spec), f"{PAPER_SOURCE}\n{spec.title}", PAPER_NOTE)
    rows = table[table["figure"].isin(spec.paper_keys)].sort_values("value", ascending=False)
    (a, b) = rows.iloc[0], rows.iloc[1]
    pairs = pd.DataFrame([{"model_a": a["model"], "model_b": b["model"], "wins_a": int(a["votes"]),
                           "wins_b": int(b["votes"]), "ties": np.nan,
                           "p_value": binomial_p(int(a["votes"]), int(b["votes"])),
                           "star": a["model"] if a["starred"] else ""}])
    note = (f"{STAR} as marked by the paper ({a['note'].removeprefix('paper: ') or 'significant'}); "
            "p computed here with an exact binomial test on the paper's vote counts (ties not "
            "reported). Percentages from results/paper/paper_values.csv.")
    return winrate_figure(pairs, f"{PAPER_SOURCE}\n{spec.title}", note)


def our_eval_figure(results: pd.DataFrame, spec: FigureSpec, items_dir: Path) -> Figure:
    bars = our_bars(results, items_dir, spec.suite)
    tested = bars["p_value"].notna().sum()
    note = (f"Latest run per assistant from results/eval/{spec.suite}.csv; error bars = its ci_low/ci_high. "
            f"{STAR} = best beats runner-up at p < 0.05, paired bootstrap (10,000 resamples) over "
            f"shared items in results/eval/items/{spec.suite}/ ({tested} groups tested"
            + ("; no per-item results found, nothing tested" if tested == 0 else "") + ").")
    return bar_figure(bars, f"This project, {provenance(results)}\n{spec.title}", note)


def our_votes_figure(votes: pd.DataFrame, spec: FigureSpec) -> Figure:
    pairs = pairwise_votes(votes)
    note = (f"Arena votes from results/arena/votes.csv ({len(votes)} votes). Ties and both-bad "
            f"votes excluded; {STAR} = winner at p < 0.05, exact binomial test against 50%.")
    return winrate_figure(pairs, f"This project, arena votes {provenance(votes, 'time')}\n{spec.title}", note)


def study_figure(votes: pd.DataFrame, spec: FigureSpec) -> Figure:
    """Figure 6 recomputed from the DiVA user study's own vote log (`--study FILE`)."""
    note = (f"DiVA user-study log ({len(votes)} votes); {STAR} = winner at p < 0.05, exact "
            "binomial test against 50%.")
    return winrate_figure(pairwise_votes(votes), f"DiVA user study, from its vote log\n{spec.title}", note)


def save_png(fig: Figure, path: Path) -> Path:
    """Byte-stable PNG: Agg, fixed font and dpi, no Software/date metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context(STYLE):
        fig.savefig(path, dpi=STYLE["savefig.dpi"], format="png", metadata={"Software": None})
    return path


def render_all(paper_csv: Path = paper.TIDY_CSV, eval_dir: Path = EVAL_DIR,
               votes_csv: Path = VOTES_CSV, out_dir: Path = OUT_DIR) -> tuple[list[Path], list[str]]:
    """Write every figure that has data; returns (written PNGs, messages about skipped ones)."""
    table = paper.load(paper_csv)
    written, skipped = [], []
    for spec in SPECS:
        written.append(save_png(paper_figure(table, spec), Path(out_dir) / f"paper_{spec.name}.png"))
        try:
            if spec.suite:
                results = load_eval(Path(eval_dir) / f"{spec.suite}.csv")
                fig = our_eval_figure(results, spec, Path(eval_dir) / "items")
            else:
                fig = our_votes_figure(load_votes(votes_csv), spec)
        except MissingResults as missing:
            skipped.append(f"ours_{spec.name}.png skipped: {missing}")
            continue
        written.append(save_png(fig, Path(out_dir) / f"ours_{spec.name}.png"))
    return written, skipped


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--paper", type=Path, default=paper.TIDY_CSV, help="tidy paper CSV")
    ap.add_argument("--eval-dir", type=Path, default=EVAL_DIR, help="holds <suite>.csv and items/")
    ap.add_argument("--votes", type=Path, default=VOTES_CSV, help="arena votes export")
    ap.add_argument("--out", type=Path, default=OUT_DIR, help="where the PNGs go")
    ap.add_argument("--study", type=Path, help="DiVA user-study JSON: also draw study_fig6_user_study.png")
    args = ap.parse_args(argv)
    if args.study:
        try:
            study = load_study(args.study)
        except ValueError as error:
            print(f"figures: error: {error}")
            return 2
    written, skipped = render_all(args.paper, args.eval_dir, args.votes, args.out)
    for path in written:
        print(f"wrote {shown(path)}")
    for message in skipped:
        print(message)
    if args.study:
        spec = next(s for s in SPECS if s.name == "fig6_user_study")
        print(f"wrote {shown(save_png(study_figure(study, spec), args.out / 'study_fig6_user_study.png'))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
