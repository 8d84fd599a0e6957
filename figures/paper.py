"""The paper's reported numbers (Held et al., read off its charts, ±0.5) as a tidy table.

`paper_figure_values.csv` is a copy of the shared wide table: one row per bar group, one column
per model, cells such as `54.8`, `0.0(no bar)` or `72 (374 votes)`, and a `starred_best` column
naming the model the paper marks as significantly best (e.g. `diva p<0.001`).
`python -m figures.paper` rewrites it as `paper_values.csv`, one row per bar:

    figure, task, subset, metric, model, value, votes, starred, note
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent.parent / "results" / "paper"
RAW_CSV = HERE / "paper_figure_values.csv"
TIDY_CSV = HERE / "paper_values.csv"

TIDY_COLUMNS = ["figure", "task", "subset", "metric", "model", "value", "votes", "starred", "note"]
MODEL_COLUMNS = ["qwen_audio_chat_7b", "qwen2_audio_instruct_7b", "salmonn_13b", "diva_llama3_8b"]
# short names used in the `starred_best` column
STAR_ALIASES = {
    "qwen_audio": "qwen_audio_chat_7b",
    "qwen2_audio": "qwen2_audio_instruct_7b",
    "salmonn": "salmonn_13b",
    "diva": "diva_llama3_8b",
}

# "54.8", "0.0(no bar)", "28 (148 votes)"
_CELL = re.compile(r"^\s*(?P<value>-?\d+(?:\.\d+)?)\s*(?:\((?P<note>[^)]*)\))?\s*$")
_VOTES = re.compile(r"^(?P<votes>\d+)\s+votes?$")


def parse_cell(cell: str) -> tuple[float, int | None, str]:
    """One chart cell -> (value, vote count or None, note)."""
    match = _CELL.match(cell)
    if match is None:
        raise ValueError(f"cannot read a number from paper cell {cell!r}")
    note = (match["note"] or "").strip()
    votes = _VOTES.match(note)
    if votes:
        return float(match["value"]), int(votes["votes"]), ""
    return float(match["value"]), None, note


def parse_star(cell: str) -> tuple[str | None, str]:
    """`starred_best` -> (model column or None, the paper's claim such as 'p<0.001')."""
    name, _, claim = (cell or "none").strip().partition(" ")
    if name == "none":
        return None, claim.strip()
    if name not in STAR_ALIASES:
        raise ValueError(f"unknown model {name!r} in starred_best")
    return STAR_ALIASES[name], claim.strip()


def tidy(raw: pd.DataFrame) -> pd.DataFrame:
    """Wide paper table -> one row per (figure, task, subset, model); blank cells are dropped."""
    rows = []
    for _, row in raw.iterrows():
        starred, claim = parse_star(row["starred_best"])
        for model in MODEL_COLUMNS:
            cell = row[model]
            if not cell.strip():
                continue
            value, votes, note = parse_cell(cell)
            if model == starred and claim:
                note = "; ".join(n for n in (note, f"paper: {claim}") if n)
            rows.append({
                "figure": row["figure"], "task": row["task"], "subset": row["subset"] or "all",
                "metric": row["metric"], "model": model, "value": value, "votes": votes,
                "starred": model == starred, "note": note,
            })
    out = pd.DataFrame(rows, columns=TIDY_COLUMNS)
    out["votes"] = out["votes"].astype("Int64")
    return out


def read_raw(path: Path = RAW_CSV) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def load(path: Path = TIDY_CSV) -> pd.DataFrame:
    """The tidy table; built from the raw copy when the tidy file is absent."""
    if not Path(path).exists():
        return tidy(read_raw())
    df = pd.read_csv(path, dtype={"subset": str, "note": str}, keep_default_na=False,
                     na_values={"votes": [""]})
    df["votes"] = df["votes"].astype("Int64")
    df["starred"] = df["starred"].astype(str).str.lower() == "true"
    return df


def write(raw_path: Path = RAW_CSV, out_path: Path = TIDY_CSV) -> pd.DataFrame:
    df = tidy(read_raw(raw_path))
    df.to_csv(out_path, index=False, lineterminator="\n")
    return df


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    raw = Path(args[0]) if args else RAW_CSV
    df = write(raw)
    print(f"wrote {TIDY_CSV.relative_to(HERE.parent.parent)} ({len(df)} rows) from {raw}")
    return 0
