"""What the figures show: results tables and votes read from disk, bars, significance tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from figures.draw import METRIC_PREFERENCE, TASK_NAMES, TASK_PANELS, FigureSpec, group_label, norm

ROOT = Path(__file__).resolve().parent.parent
EVAL_COLUMNS = ["assistant", "task", "subset", "modality", "metric", "n", "value",
                "ci_low", "ci_high", "prompt_id", "seed", "date", "commit"]
VOTE_COLUMNS = ["battle_id", "time", "model_a", "model_b", "outcome"]
EVAL_COMMAND = ("make eval (python -m eval.run --assistant text-mini,cascade-mini,diva-mini "
                "--suite {suite})")
ARENA_COMMAND = "make leaderboard (python -m demo.leaderboard --out results/arena)"

# --- loading ---------------------------------------------------------------------------------

def shown(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


class MissingResults(FileNotFoundError):
    """A results file is absent; the message names the command that writes it."""

    def __init__(self, path: Path, command: str):
        super().__init__(f"{shown(path)} not found; produce it with: {command}")
        self.path, self.command = Path(path), command


def load_eval(path: Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise MissingResults(path, EVAL_COMMAND.format(suite=path.stem))
    df = pd.read_csv(path, dtype={"subset": str, "commit": str, "date": str, "prompt_id": str},
                     keep_default_na=False, na_values={c: [""] for c in ("value", "ci_low", "ci_high", "n")})
    missing = [c for c in ("assistant", "task", "subset", "metric", "value") if c not in df]
    if missing:
        raise ValueError(f"{shown(path)} lacks columns {missing}")
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    return df[df["value"].notna()]


def load_items(items_dir: Path, suite: str, assistant: str, task: str) -> pd.DataFrame | None:
    """Per-item scores of one assistant on one task, or None when not written."""
    path = Path(items_dir) / suite / f"{assistant}__{task}.jsonl"
    if not path.exists():
        return None
    df = pd.read_json(path, lines=True, dtype={"item_id": str, "subset": str})
    df["subset"] = df["subset"].fillna("").astype(str)
    return df


def load_votes(path: Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise MissingResults(path, ARENA_COMMAND)
    return pd.read_csv(path, dtype=str, keep_default_na=False)


STUDY_MODELS = {"diva": "diva_llama3_8b", "qwen2": "qwen2_audio_instruct_7b"}  # log label -> paper key


def load_study(path: Path) -> pd.DataFrame:
    """The DiVA user study's JSON log as votes (VOTE_COLUMNS, models under the paper's keys);
    a ValueError naming the file when it cannot be read."""
    from demo.votelogs import read

    votes = read(path, "diva-study")[VOTE_COLUMNS].fillna("")
    return votes.replace({"model_a": STUDY_MODELS, "model_b": STUDY_MODELS})


# --- statistics ------------------------------------------------------------------------------

def paired_bootstrap(a, b, n_resamples: int = 10_000, seed: int = 0) -> float:
    """One-sided p-value that system a is not better than b on paired per-item scores:
    the share of item resamples in which mean(a - b) <= 0."""
    d = np.asarray(a, float) - np.asarray(b, float)
    if d.size == 0:
        return 1.0
    rng = np.random.default_rng(seed)
    not_better = 0
    for start in range(0, n_resamples, 1000):  # chunks keep memory small for large test sets
        idx = rng.integers(0, d.size, size=(min(1000, n_resamples - start), d.size))
        not_better += int((d[idx].mean(axis=1) <= 0).sum())
    return not_better / n_resamples


def binomial_p(wins: int, losses: int) -> float:
    """Two-sided exact binomial test of a win share against 50%, ties already excluded."""
    n = wins + losses
    return 1.0 if n == 0 else float(binomtest(wins, n, 0.5).pvalue)


def pairwise_votes(votes: pd.DataFrame) -> pd.DataFrame:
    """Per unordered model pair: wins of each side, ties (tie + both_bad), binomial p, star.
    model_a of a row is the side with more wins."""
    rows = {}
    for _, v in votes.iterrows():
        pair = tuple(sorted((v["model_a"], v["model_b"])))
        r = rows.setdefault(pair, {pair[0]: 0, pair[1]: 0, "ties": 0})
        if v["outcome"] in ("model_a", "model_b"):
            r[v[v["outcome"]]] += 1
        else:
            r["ties"] += 1
    out = []
    for (x, y), r in sorted(rows.items()):
        a, b = (x, y) if r[x] >= r[y] else (y, x)
        p = binomial_p(r[a], r[b])
        out.append({"model_a": a, "model_b": b, "wins_a": r[a], "wins_b": r[b], "ties": r["ties"],
                    "p_value": p, "star": a if p < 0.05 and r[a] > r[b] else ""})
    return pd.DataFrame(out, columns=["model_a", "model_b", "wins_a", "wins_b", "ties",
                                      "p_value", "star"])


# --- from tables to bars ---------------------------------------------------------------------

BAR_COLUMNS = ["panel", "group", "task", "subset", "model", "value", "ci_low", "ci_high", "star", "metric"]


def assign_panels(df: pd.DataFrame) -> pd.DataFrame:
    """panel = the paper's task family (Figure 3) or the task; group = subset within a task
    panel, task name within a family panel."""
    df = df.copy()
    keys = df["task"].map(norm)
    df["panel"] = [TASK_PANELS.get(k, TASK_NAMES.get(k, t)) for k, t in zip(keys, df["task"])]
    n_subsets = df.groupby("task")["subset"].transform("nunique")
    groups = []
    for (_, r), k, ns in zip(df.iterrows(), keys, n_subsets):
        task = TASK_NAMES.get(k, r["task"])
        if k not in TASK_PANELS:
            groups.append(group_label(k, r["subset"]))
        else:
            groups.append(task if ns == 1 else f"{task}\n{group_label(k, r['subset'])}")
    df["group"] = groups
    return df


def paper_bars(table: pd.DataFrame, spec: FigureSpec) -> pd.DataFrame:
    df = table[table["figure"].isin(spec.paper_keys)].copy()
    df = assign_panels(df)
    df["ci_low"] = df["ci_high"] = np.nan
    df["star"] = df["starred"]
    return df[BAR_COLUMNS].reset_index(drop=True)


def pick_metric(df: pd.DataFrame) -> pd.DataFrame:
    """Keep one metric per task: the most preferred one it reports."""
    keep = []
    for _, rows in df.groupby("task", sort=False):
        present = {norm(m): m for m in rows["metric"]}
        best = next((present[k] for k in METRIC_PREFERENCE if k in present), sorted(present.values())[0])
        keep.append(rows[rows["metric"] == best])
    return pd.concat(keep)


def latest_runs(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (assistant, task, subset, modality, metric): the newest by date (file order
    breaks ties), so re-runs replace older numbers."""
    df = df.copy()
    for col in ("modality", "date", "commit"):
        if col not in df:
            df[col] = ""
    df["_order"] = range(len(df))
    df = df.sort_values(["date", "_order"], kind="stable")
    keys = ["assistant", "task", "subset", "modality", "metric"]
    return df.drop_duplicates(keys, keep="last").sort_values("_order").drop(columns="_order")


def series_names(df: pd.DataFrame) -> pd.Series:
    """The legend name: the assistant, plus '(modality)' for input other than audio or when it
    ran in several modalities (e.g. 'diva-mini (text)', the transcript topline)."""
    n_mod = df.groupby("assistant")["modality"].transform("nunique")
    return pd.Series([f"{a} ({m})" if k > 1 or m not in ("audio", "") else a for a, m, k in
                      zip(df["assistant"], df["modality"], n_mod)], index=df.index)


def item_scores(items_dir: Path, suite: str, row: pd.Series) -> pd.Series | None:
    items = load_items(items_dir, suite, row["assistant"], row["task"])
    if items is None:
        return None
    keep = items["subset"] == str(row["subset"])
    if not keep.any() and str(row["subset"]) in ("", "all"):  # a task-level row: all its items
        keep[:] = True
    if "modality" in items and row["modality"]:
        keep &= items["modality"] == row["modality"]
    scored = items[keep & pd.to_numeric(items["score"], errors="coerce").notna()]
    return pd.Series(scored["score"].to_numpy(float), index=scored["item_id"].astype(str))


def significance(rows: pd.DataFrame, items_dir: Path, suite: str) -> tuple[str | None, float | None]:
    """For one bar group: the best series and the bootstrap p of best vs runner-up on shared
    items; (None, None) when there is no runner-up or no per-item results."""
    if len(rows) < 2:
        return None, None
    best, second = rows.sort_values("value", ascending=False, kind="stable").iloc[:2].iterrows()
    a, b = item_scores(items_dir, suite, best[1]), item_scores(items_dir, suite, second[1])
    if a is None or b is None:
        return None, None
    shared = a.index.intersection(b.index)
    if len(shared) == 0:
        return None, None
    return best[1]["model"], paired_bootstrap(a[shared].to_numpy(), b[shared].to_numpy())


def our_bars(results: pd.DataFrame, items_dir: Path, suite: str) -> pd.DataFrame:
    """Bars for one eval suite, stars from a paired bootstrap (best vs runner-up, p<0.05)."""
    if "modality" in results:  # a "gap" row is the difference of two bars, not a score
        results = results[results["modality"] != "gap"]
    df = pick_metric(latest_runs(results))
    df["model"] = series_names(df)
    df = assign_panels(df)
    df["star"] = False
    df["p_value"] = np.nan
    for _, rows in df.groupby(["panel", "group"], sort=False):
        best, p = significance(rows, items_dir, suite)
        if best is not None:
            i = rows.index[rows["model"] == best][0]
            df.loc[i, "p_value"] = p
            df.loc[i, "star"] = bool(p < 0.05)
    for col in ("ci_low", "ci_high"):
        df[col] = pd.to_numeric(df[col], errors="coerce") if col in df else np.nan
    return df[BAR_COLUMNS + ["p_value"]].reset_index(drop=True)


def provenance(df: pd.DataFrame, column_date: str = "date") -> str:
    """'commit abc1234, 2025-11-25' from the rows that were plotted."""
    commits = sorted({str(c)[:7] for c in df.get("commit", []) if str(c).strip()})
    dates = sorted({str(d)[:10] for d in df.get(column_date, []) if str(d).strip()})
    parts = []
    if commits:
        parts.append(("commit " if len(commits) == 1 else "commits ") + ", ".join(commits[:3])
                     + (" …" if len(commits) > 3 else ""))
    if dates:
        parts.append(dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}")
    return ", ".join(parts) or "undated results"

