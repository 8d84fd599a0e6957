"""Writing results: the suite CSVs, per-item JSONL and the Markdown summary.

- results/eval/<suite>.csv: one row per assistant x task x subset x modality x metric, columns
  exactly COLUMNS. Rerunning an (assistant, task) pair replaces its rows and keeps the others.
- results/eval/items/<suite>/<assistant>__<task>.jsonl: one line per item and modality with
  item_id, subset, modality, prediction, reference, score (+ extras).
- results/eval/README.md: the tables, regenerated from every suite CSV.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

COLUMNS = ["assistant", "task", "subset", "modality", "metric", "n", "value", "ci_low", "ci_high",
           "prompt_id", "seed", "date", "commit"]
SUITE_TITLES = {"qa": "Spoken question answering", "classification": "Spoken classification",
                "translation": "Speech translation", "asr": "Reading real speech"}


def write_suite_csv(out_dir: Path, suite: str, rows: list[dict]) -> Path:
    path = Path(out_dir) / f"{suite}.csv"
    new = pd.DataFrame(rows, columns=COLUMNS)
    if path.exists():
        old = pd.read_csv(path, dtype={"subset": str})
        done = set(zip(new["assistant"], new["task"]))
        keep = [(a, t) not in done for a, t in zip(old["assistant"], old["task"])]
        new = pd.concat([old[keep], new], ignore_index=True) if any(keep) else new
    new = new.sort_values(["task", "assistant", "modality", "subset", "metric"], kind="stable")
    path.parent.mkdir(parents=True, exist_ok=True)
    new.to_csv(path, index=False, float_format="%.4f")
    return path


def write_items(out_dir: Path, suite: str, assistant: str, task: str, records: list[dict]) -> Path:
    path = Path(out_dir) / "items" / suite / f"{assistant}__{task}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False, default=_jsonable) + "\n")
    return path


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _cell(value: float, lo: float, hi: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(lo, float) and math.isnan(lo):
        return f"{value:.1f}"
    return f"{value:.1f} [{lo:.1f}, {hi:.1f}]"


def suite_table(df: pd.DataFrame) -> str:
    """Markdown: per task x subset, one row per assistant x modality, one column per metric."""
    df = df.copy()
    df["cell"] = [_cell(v, lo, hi) for v, lo, hi in zip(df["value"], df["ci_low"], df["ci_high"])]
    df["subset"] = df["subset"].astype(str)
    n = df.groupby(["task", "subset", "metric"])["n"].transform("max")
    fewer = df["n"] < n  # a run on an older, smaller version of the task says so in its cell
    df.loc[fewer, "cell"] = df.loc[fewer, "cell"] + " (n=" + df.loc[fewer, "n"].astype(str) + ")"
    out = []
    for (task, subset), part in df.groupby(["task", "subset"], sort=True):
        metrics = sorted(part["metric"].unique())
        table = part.pivot_table(index=["assistant", "modality"], columns="metric", values="cell",
                                 aggfunc="first").reindex(columns=metrics).fillna("")
        title = task if subset == "all" else f"{task}, {subset}"
        out += [f"**{title}** (n = {part['n'].max()})\n", "| assistant | modality | " + " | ".join(metrics) + " |",
                "|---|---|" + "---|" * len(metrics)]
        out += [f"| {a} | {m} | " + " | ".join(row[c] for c in metrics) + " |" for (a, m), row in table.iterrows()]
        out.append("")
    return "\n".join(out)


README_HEAD = """# Evaluation results

Written by `python -m eval.run` (see `eval/`); `make eval` runs the offline suites for the
default assistants. Cells: value [95% bootstrap CI]. Percentages (0-100), BLEU 0-100.
Modality `text` is the same backend reading the transcript, `audio` hearing the clip;
`gap` is text minus audio on the same items (paired bootstrap CI): how much is lost by listening.

Metrics: `accuracy` (spoken-qa: an accepted answer appears in the response; classification:
parsed label equals the gold label), `weighted_f1` (F1 per label weighted by support),
`identical_to_text` / `first_token_agreement` (spoken-qa only: the response is identical to /
starts with the same LLM token as **text-mini's** response to the transcript, same prompt and
generation settings; `repeats_question`: the response transcribes the question instead of
answering it, token F1 with the question >= 0.5 and above its F1 with text-mini's reply), `panda` (PEDANT, when qa-metrics can load), `exact_match` / `token_f1`
(SQuAD), `contains` (a gold answer appears in the response), `bleu_<tokenizer>` (sacrebleu corpus
BLEU with that tokenizer; `bleu_mean`: mean over target languages), `wer` (real-speech-asr: word
error rate of what the assistant heard, its transcript or bridge reading, against the true
transcript, after Whisper's English normaliser; lower is better) and `read_exactly` (the share of
clips read without a word error).
Per-item predictions: `items/<suite>/<assistant>__<task>.jsonl`.
"""


def task_table() -> str:
    """The registered tasks: where the data comes from and what is scored."""
    from eval.tasks import TASKS
    lines = ["## Tasks\n", "| task | suite | data | runs offline | target | prompts | notes |",
             "|---|---|---|---|---|---|---|"]
    for t in TASKS.values():
        prompts = ", ".join(f"`{pid}`" + (" (default)" if pid == t.prompt_id else "")
                            for pid in t.prompts)
        lines.append(f"| {t.name} | {t.suite} | `{t.source}` | {'yes' if t.offline else 'no'} | "
                     f"{t.target} | {prompts} | {t.notes} |")
    return "\n".join(lines) + "\n"


def write_readme(out_dir: Path, notes: list[str] | None = None) -> Path:
    out_dir = Path(out_dir)
    parts = [README_HEAD]
    for suite, title in SUITE_TITLES.items():
        path = out_dir / f"{suite}.csv"
        if not path.exists():
            continue
        df = pd.read_csv(path, dtype={"subset": str})
        if df.empty:
            continue
        meta = df.iloc[0]
        parts.append(f"## {title} (`{suite}.csv`)\n\nprompt ids: "
                     + ", ".join(sorted(f"{t}={p}" for t, p in
                                        set(zip(df["task"], df["prompt_id"]))))
                     + f"; seed {meta['seed']}; {meta['date']}; commit {meta['commit']}\n\n"
                     + suite_table(df) + "\n")
    parts.append(task_table())
    if notes:
        parts.append("## Notes\n\n" + "\n".join(f"- {n}" for n in notes) + "\n")
    path = out_dir / "README.md"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
