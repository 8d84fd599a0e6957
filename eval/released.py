"""The paper's released per-item outputs, read into our results schema (and written back).

    python -m eval.released PATH/TO/DiVA-Eval/eval --out results/released

Layout: <root>/<Task>_Results/<model>/<subset>_outs.txt, one line per item:
    id[SEP_DIAL]\"\"\"prediction\"\"\"[SEP_DIAL]score
newlines in the prediction written [NEW_LINE], score NA when scoring failed. <Task> is a
PaperTask's `released` name; <subset> is the SD-QA dialect, the CoVoST 2 config (en_de, ...)
or "default". The score is the paper's per-item score: CFMatcher (0-1) for QA, 1/0 for a
label, sentence BLEU for a translation; the files hold no gold labels.

The import writes <out>/<suite>.csv (one row per model, task, subset: the mean of the scored
items, NA left out, with a 95% bootstrap CI) and <out>/items/<suite>/<model>__<task>.jsonl,
item ids as eval.paper_data gives them, so runs of ours pair with the paper's on the same items.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eval import paper_metrics as PM
from eval import report
from eval.paper_data import COVOST_LANGUAGES
from eval.paper_tasks import PAPER_TASKS, PaperTask

SEP, NEW_LINE, QUOTES = "[SEP_DIAL]", "[NEW_LINE]", '"""'
COVOST_CONFIGS = {config: lang for lang, (config, _) in COVOST_LANGUAGES.items()}


def parse_line(line: str) -> tuple[str, str, float | None]:
    """One output line -> (id, prediction, score or None for NA)."""
    item_id, rest = line.rstrip("\n").split(SEP, 1)
    quoted, score = rest.rsplit(SEP, 1)
    prediction = quoted.removeprefix(QUOTES).removesuffix(QUOTES).replace(NEW_LINE, "\n")
    score = score.strip()
    return item_id, prediction, None if score == "NA" else float(score)


def format_line(item_id: str, prediction: str, score: float | None) -> str:
    return (f"{item_id}{SEP}{QUOTES}{prediction.replace(chr(10), NEW_LINE)}{QUOTES}{SEP}"
            f"{'NA' if score is None else score}\n")


def read_outs(path: Path) -> list[tuple[str, str, float | None]]:
    with open(path, encoding="utf-8") as f:
        return [parse_line(line) for line in f if line.strip()]


def subset_of(task: PaperTask, stem: str) -> tuple[str, str] | None:
    """File stem -> (subset, suffix appended to item ids); None for a CoVoST 2 language that
    is not among the paper's seven."""
    if task.name == "sdqa":
        return stem, f":{stem}"
    if task.name == "covost2":
        lang = COVOST_CONFIGS.get(stem)
        return (f"en-{lang}", f":{lang}") if lang else None
    return "all", ""


def label_of(task: PaperTask, prediction: str) -> str | None:
    """The label word a one-token answer starts ("H" -> "Happiness"), None when not exactly one."""
    text = prediction.strip().lower()
    words = [w for w in task.labels if text and w.lower().startswith(text)]
    return words[0] if len(words) == 1 else None


def read_model(task: PaperTask, folder: Path) -> list[dict]:
    """Per-item records of one model's folder for one task."""
    records = []
    for path in sorted(folder.glob("*_outs.txt")):
        where = subset_of(task, path.name.removesuffix("_outs.txt"))
        if where is None:
            continue
        subset, suffix = where
        for item_id, prediction, score in read_outs(path):
            rec = {"item_id": item_id + suffix, "subset": subset, "modality": "audio",
                   "prediction": prediction, "reference": None, "score": score}
            if task.kind == "label":
                rec["label"] = label_of(task, prediction)
            records.append(rec)
    return records


def summary_rows(task: PaperTask, records: list[dict], seed: int = 0) -> list[dict]:
    scale = 1.0 if task.kind == "translation" else 100.0
    rows = []
    for subset in sorted({r["subset"] for r in records}):
        scores = [r["score"] for r in records if r["subset"] == subset]
        rows.append({"subset": subset, "metric": task.metric, **PM.mean_row(scores, scale, seed)})
    return rows


def import_released(root: Path, out_dir: Path, models: list[str] | None = None, seed: int = 0) -> list[str]:
    """Read every task and model under `root`; write our schema to `out_dir`. Returns notes."""
    notes, rows_by_suite = [], {}
    for task in PAPER_TASKS.values():
        task_dir = Path(root) / f"{task.released}_Results"
        if not task_dir.is_dir():
            continue
        for folder in sorted(p for p in task_dir.iterdir() if p.is_dir()):
            if models and folder.name not in models:
                continue
            records = read_model(task, folder)
            if not records:
                continue
            missing = sum(r["score"] is None for r in records)
            if missing:
                notes.append(f"{folder.name} {task.name}: {missing} of {len(records)} items not scored (NA), left out")
            report.write_items(out_dir, task.suite, folder.name, task.name, records)
            rows_by_suite.setdefault(task.suite, []).extend(
                {"assistant": folder.name, "task": task.name, "modality": "audio", **row,
                 "prompt_id": "released", "seed": seed, "date": "", "commit": "released"}
                for row in summary_rows(task, records, seed))
    for suite, rows in rows_by_suite.items():
        report.write_suite_csv(out_dir, suite, rows)
    if not rows_by_suite:
        raise FileNotFoundError(f"no <Task>_Results/<model>/*_outs.txt under {root}")
    return notes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.released", description=__doc__.split("\n")[0])
    ap.add_argument("root", type=Path, help="the folder holding <Task>_Results/ (DiVA-Eval's eval/)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results" / "released")
    ap.add_argument("--models", type=lambda s: [m for m in s.split(",") if m], default=None,
                    help="comma-separated model folders (default: all)")
    args = ap.parse_args(argv)
    for note in import_released(args.root, args.out, args.models):
        print(note, file=sys.stderr)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
