"""Figures 2-4 drawn from the paper's released per-item outputs.

    python -m figures --released PATH/TO/DiVA-Eval/eval [--released-models e2e_DiVA,e2e_qwen2]

The folder is imported into our results schema (eval.released; results/released/ by default),
then drawn like our own runs: bars = mean of the files' per-item scores (NA left out), error
bars = 95% bootstrap CI, stars from a paired bootstrap of best vs runner-up on the items both
answered. Written as released_<figure>.png.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from matplotlib.figure import Figure

from figures.data import ROOT, load_eval, our_bars, shown
from figures.draw import SPECS, STAR, FigureSpec, bar_figure

RELEASED_DATA = ROOT / "results" / "released"
WHAT_IS_DRAWN = {
    "qa": "PANDA = mean CFMatcher score of the best gold answer per item, x100.",
    "classification": "Accuracy for all four sets: the paper's figure shows weighted F1 for IEMOCAP "
                      "and MELD, which needs each item's gold label, and the released files hold only "
                      "the answer and its 0/1 score, so weighted F1 cannot be recomputed from them.",
    "translation": "Mean of per-sentence BLEU (the files' scores), the paper's seven target languages.",
}


def released_figure(results, spec: FigureSpec, items_dir: Path, source: str) -> Figure:
    bars = our_bars(results, items_dir, spec.suite)
    tested = int(bars["p_value"].notna().sum())
    note = (f"From the paper's released per-item outputs ({source}). {WHAT_IS_DRAWN[spec.suite]} "
            f"Error bars = 95% bootstrap CI; {STAR} = best beats runner-up at p < 0.05, paired "
            f"bootstrap over the items both answered ({tested} groups tested).")
    return bar_figure(bars, f"Paper's released outputs\n{spec.title}", note)


def render_released(root: Path, out_dir: Path, data_dir: Path = RELEASED_DATA,
                    models: list[str] | None = None) -> tuple[list[Figure], list[str], list[str]]:
    """Import `root`, then build every bar figure it has data for: (figures, file stems, notes)."""
    from eval.released import import_released
    notes = import_released(Path(root), Path(data_dir), models)
    figures, stems = [], []
    for spec in SPECS:
        path = Path(data_dir) / f"{spec.suite}.csv"
        if not spec.suite or not path.exists():
            continue
        results = load_eval(path)
        if models:  # an earlier import of other models may share the folder
            results = results[results["assistant"].isin(models)]
        figures.append(released_figure(results, spec, Path(data_dir) / "items", shown(Path(root))))
        stems.append(f"released_{spec.name}")
    return figures, stems, notes


def released_options() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m figures", add_help=False)
    ap.add_argument("--released", type=Path, default=None,
                    help="also draw figures 2-4 from the paper's released per-item outputs in this "
                         "folder (DiVA-Eval's eval/)")
    ap.add_argument("--released-models", type=lambda s: [m for m in s.split(",") if m], default=None,
                    help="comma-separated model folders to draw from --released (default: all)")
    ap.add_argument("--released-data", type=Path, default=RELEASED_DATA,
                    help="where --released is imported in our results schema (default results/released)")
    return ap


def main(argv: list[str]) -> int:
    """`python -m figures`: figures.render's figures, then the --released ones."""
    from figures import render
    args, rest = released_options().parse_known_args(argv)
    if "-h" in rest or "--help" in rest:
        released_options().print_help()
    code = render.main(rest)
    if code or args.released is None:
        return code
    out = argparse.ArgumentParser(add_help=False)
    out.add_argument("--out", type=Path, default=render.OUT_DIR)
    out_dir = out.parse_known_args(rest)[0].out
    figures, stems, notes = render_released(args.released, out_dir, args.released_data, args.released_models)
    for fig, stem in zip(figures, stems):
        print(f"wrote {shown(render.save_png(fig, Path(out_dir) / f'{stem}.png'))}")
    for note in notes:
        print(note)
    return 0
