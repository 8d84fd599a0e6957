"""Figures 2, 3, 4 and 6 of the DiVA paper, from the paper's numbers and from our own results.

    python -m results.figures            # or `make figures`; writes results/figures/*.png

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
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.patches
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.stats import binomtest

from results import paper

ROOT = Path(__file__).resolve().parent.parent
EVAL_DIR = ROOT / "results" / "eval"
VOTES_CSV = ROOT / "results" / "arena" / "votes.csv"
OUT_DIR = ROOT / "results" / "figures"

SUITES = ("qa", "classification", "translation")
EVAL_COLUMNS = ["assistant", "task", "subset", "modality", "metric", "n", "value",
                "ci_low", "ci_high", "prompt_id", "seed", "date", "commit"]
VOTE_COLUMNS = ["battle_id", "time", "model_a", "model_b", "outcome"]
EVAL_COMMAND = ("make eval (python -m eval.run --assistant text-mini,cascade-mini,diva-mini "
                "--suite {suite})")
ARENA_COMMAND = "make leaderboard (python -m demo.leaderboard --out results/arena)"

# --- how things are called and coloured ---------------------------------------------------

PAPER_MODELS = {  # tidy-CSV model -> (legend label, colour)
    "qwen_audio_chat_7b": ("Qwen Audio Chat 7B", "#9db4d0"),
    "qwen2_audio_instruct_7b": ("Qwen 2 Audio Instruct 7B", "#4c72b0"),
    "salmonn_13b": ("SALMONN 13B", "#8fbf7f"),
    "diva_llama3_8b": ("DiVA Llama 3 8B", "#c44e52"),
}
OUR_COLOURS = {  # our assistants, in legend order; others get FALLBACK_COLOURS by name
    "text-mini": "#8c8c8c",
    "cascade-mini": "#dd8452",
    "diva-mini": "#8e44ad",
    "cascade": "#b35806",
    "qwen2-audio": "#2a9d8f",
    "diva": "#6a1b9a",
}
FALLBACK_COLOURS = ["#17becf", "#bcbd22", "#e377c2", "#7f7f7f", "#1f77b4", "#ff7f0e"]

TASK_NAMES = {"sdqa": "SD-QA", "heysquad": "HeySQuAD", "iemocap": "IEMOCAP", "meld": "MELD",
              "mustard": "MUStARD", "urfunny": "URFunny", "covost2": "CoVoST 2"}
# tasks drawn together in one panel of Figure 3, as in the paper
TASK_PANELS = {"iemocap": "Emotion recognition", "meld": "Emotion recognition",
               "mustard": "Sarcasm & humour", "urfunny": "Sarcasm & humour"}
SDQA_DIALECTS = {"aus": "Australia", "gbr": "United Kingdom", "ind_n": "North India",
                 "ind_s": "South India", "irl": "Ireland", "kenya": "Kenya", "nga": "Nigeria",
                 "nzl": "New Zealand", "phl": "Philippines", "usa": "United States",
                 "zaf": "South Africa"}
LANGUAGES = {"ar": "Arabic", "zh": "Chinese", "de": "German", "id": "Indonesian",
             "ja": "Japanese", "ta": "Tamil", "tr": "Turkish", "ca": "Catalan", "fa": "Persian",
             "et": "Estonian", "mn": "Mongolian", "sl": "Slovenian", "sv": "Swedish",
             "lv": "Latvian", "cy": "Welsh", "fr": "French", "es": "Spanish"}
METRIC_LABELS = {"panda": "PANDA (%)", "weightedf1": "Weighted F1 (%)", "accuracy": "Accuracy (%)",
                 "acc": "Accuracy (%)", "bleu": "BLEU", "f1": "Token F1 (%)", "tokenf1": "Token F1 (%)",
                 "em": "Exact match (%)", "exactmatch": "Exact match (%)", "winrate": "Win rate (%)"}
# when a task reports several metrics, the first of these that is present is plotted
METRIC_PREFERENCE = ["panda", "weightedf1", "bleu", "accuracy", "acc", "f1", "tokenf1",
                     "exactmatch", "em"]


@dataclass(frozen=True)
class FigureSpec:
    name: str      # file stem after paper_/ours_
    title: str
    suite: str     # eval suite holding our numbers ("" for arena votes)
    paper_keys: tuple[str, ...]  # `figure` values in the paper table


SPECS = [
    FigureSpec("fig2_qa", "Figure 2: spoken question answering", "qa", ("fig2_qa",)),
    FigureSpec("fig3_classification", "Figure 3: emotion, sarcasm and humour", "classification",
               ("fig3_emotion", "fig3_social")),
    FigureSpec("fig4_translation", "Figure 4: speech translation (CoVoST 2, English →)",
               "translation", ("fig4_st",)),
    FigureSpec("fig6_user_study", "Figure 6: user study, share of preferred responses", "",
               ("fig6_user",)),
]

STYLE = {"font.family": "DejaVu Sans", "font.size": 9, "axes.spines.top": False,
         "axes.spines.right": False, "axes.unicode_minus": False, "savefig.dpi": 120,
         "svg.hashsalt": "diva"}
STAR = "★"


def norm(name: str) -> str:
    """'SD-QA' -> 'sdqa', 'weighted-F1%' -> 'weightedf1'."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(norm(metric), str(metric))


def lighter(colour: str, amount: float = 0.5) -> str:
    """The colour blended towards white (the text-modality bars of an assistant)."""
    from matplotlib.colors import to_hex, to_rgb
    return to_hex([c + (1 - c) * amount for c in to_rgb(colour)])


def model_styles(models: list[str]) -> dict[str, tuple[str, str]]:
    """A fixed (label, colour) for every model: paper models and known assistants by name,
    unknown assistants by their position in sorted order."""
    styles = {m: PAPER_MODELS[m] for m in models if m in PAPER_MODELS}
    for m in models:
        base = m.split(" (")[0]  # "diva-mini (text)" shares diva-mini's colour family, lighter
        if m not in styles and base in OUR_COLOURS:
            styles[m] = (m, OUR_COLOURS[base] if m == base or m.endswith("(audio)")
                         else lighter(OUR_COLOURS[base]))
    unknown = sorted(m for m in models if m not in styles)
    bases = sorted({m.split(" (")[0] for m in unknown})  # one colour family per assistant
    for m in unknown:
        base = m.split(" (")[0]
        colour = FALLBACK_COLOURS[bases.index(base) % len(FALLBACK_COLOURS)]
        styles[m] = (m, colour if m == base or m.endswith("(audio)") else lighter(colour))
    return styles


def model_order(models) -> list[str]:
    known = list(PAPER_MODELS) + list(OUR_COLOURS)
    rank = {m: i for i, m in enumerate(known)}
    return sorted(set(models), key=lambda m: (rank.get(m.split(" (")[0], len(known)), m))


def group_label(task: str, subset: str) -> str:
    subset = SDQA_DIALECTS.get(subset, subset)
    m = re.fullmatch(r"([a-z]{2,3})[-_]([a-z]{2,3})", subset)
    if m:
        subset = f"{m[1]}→{m[2]}\n{LANGUAGES.get(m[2], '')}".strip()
    return "\n".join(textwrap.wrap(subset, 11)) if "\n" not in subset else subset


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


# --- drawing ---------------------------------------------------------------------------------

def _new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def _legend_and_title(fig: Figure, handles: list, title: str) -> None:
    """The title heads the legend above the panels (a separate suptitle would collide with it)."""
    fig.legend(handles=handles, loc="outside upper center", ncols=min(len(handles), 4 if len(handles) <= 8 else 3),
               frameon=False, fontsize=8.5, title=title,
               title_fontproperties={"size": 11, "weight": "bold"})
    fig.legends[-1].get_title().set_multialignment("center")


def _footnote(fig: Figure, text: str, width_in: float) -> None:
    """The footnote as the figure's x label, so the constrained layout leaves room for it."""
    wrapped = "\n".join(textwrap.wrap(text, int(width_in * 17)))
    fig.supxlabel(wrapped, fontsize=7, color="#444444", x=0.01, ha="left", multialignment="left")


def _draw_panel(ax, bars: pd.DataFrame, models: list[str], styles, ymax: float) -> None:
    groups = list(dict.fromkeys(bars["group"]))
    width = 0.8 / len(models)
    n_bars = len(groups) * len(models)
    rotate = 90 if n_bars > 12 else 0
    for j, model in enumerate(models):
        mine = bars[bars["model"] == model]
        label, colour = styles[model]
        for _, r in mine.iterrows():
            x = groups.index(r["group"]) + (j - (len(models) - 1) / 2) * width
            bar = ax.bar(x, r["value"], width * 0.95, color=colour, label=label)[0]
            bar.set_gid(f"bar|{r['task']}|{r['subset']}|{model}")
            top = r["value"]
            if pd.notna(r["ci_low"]) and pd.notna(r["ci_high"]):
                ax.errorbar(x, r["value"], yerr=[[r["value"] - r["ci_low"]], [r["ci_high"] - r["value"]]],
                            fmt="none", ecolor="#333333", elinewidth=0.8, capsize=2)
                top = max(top, r["ci_high"])
            text = f"{r['value']:.1f}" + (f" {STAR}" if r["star"] else "")
            ax.annotate(text, (x, top), xytext=(0, 2), textcoords="offset points", ha="center",
                        va="bottom", rotation=rotate, fontsize=6.5 if rotate else 7.5,
                        fontweight="bold" if r["star"] else "normal",
                        gid=f"label|{r['task']}|{r['subset']}|{model}")
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_ylim(0, ymax)
    ax.set_title(bars["panel"].iloc[0], fontsize=10)
    ax.grid(axis="y", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)


def bar_figure(bars: pd.DataFrame, title: str, footnote: str) -> Figure:
    """Grouped bars, one panel per `panel`, one bar colour per model, values printed on top."""
    with matplotlib.rc_context(STYLE):
        panels = list(dict.fromkeys(bars["panel"]))
        models = model_order(bars["model"])
        styles = model_styles(models)
        n_groups = [bars.loc[bars["panel"] == p, "group"].nunique() for p in panels]
        slots = [max(n, 1.4) * (0.35 + 0.22 * len(models)) for n in n_groups]
        fig = _new_figure(min(max(2.2 + sum(slots), 7.5), 18), 5.0)
        axes = fig.subplots(1, len(panels), width_ratios=slots, squeeze=False)[0]
        previous_metric = None
        for ax, panel in zip(axes, panels):
            mine = bars[bars["panel"] == panel]
            metric = " / ".join(dict.fromkeys(mine["metric"].map(metric_label)))
            same_metric = bars[bars["metric"].map(metric_label).isin(mine["metric"].map(metric_label))]
            top = np.nanmax(np.r_[same_metric["value"], same_metric["ci_high"].dropna(), 1.0])
            _draw_panel(ax, mine, models, styles, top * 1.22)
            if metric != previous_metric:
                ax.set_ylabel(metric)
            previous_metric = metric
        handles = [matplotlib.patches.Patch(color=styles[m][1], label=styles[m][0]) for m in models]
        _legend_and_title(fig, handles, title)
        _footnote(fig, footnote, fig.get_figwidth())
    return fig


def winrate_figure(pairs: pd.DataFrame, title: str, footnote: str) -> Figure:
    """One horizontal bar per model pair, split into each side's share of decisive votes."""
    with matplotlib.rc_context(STYLE):
        models = model_order(list(pairs["model_a"]) + list(pairs["model_b"]))
        styles = model_styles(models)
        fig = _new_figure(8.0, 2.2 + 0.45 * len(pairs))
        ax = fig.subplots()
        for y, (_, r) in enumerate(pairs.iterrows()):
            n = r["wins_a"] + r["wins_b"]
            left = 0.0
            for side in ("a", "b"):
                model, wins = r[f"model_{side}"], r[f"wins_{side}"]
                share = 100.0 * wins / n if n else 0.0
                bar = ax.barh(y, share, left=left, height=0.5, color=styles[model][1],
                              label=styles[model][0])[0]
                bar.set_gid(f"bar|{r['model_a']} vs {r['model_b']}|{side}|{model}")
                star = f"{STAR} " if r["star"] == model else ""
                ax.text(left + share / 2, y, f"{star}{share:.0f}%\n({wins} votes)", ha="center",
                        va="center", fontsize=8, color="white", fontweight="bold" if star else "normal")
                left += share
            ties = "" if pd.isna(r["ties"]) else f", {int(r['ties'])} ties excluded"
            ax.text(101, y, f"p = {r['p_value']:.2g}\n(binomial, n = {n}{ties})", va="center",
                    fontsize=7.5)
        ax.set_yticks(range(len(pairs)), [f"{styles[a][0]}\nvs {styles[b][0]}"
                                          for a, b in zip(pairs["model_a"], pairs["model_b"])])
        ax.set_ylim(len(pairs) - 0.4, -0.6)
        ax.set_xlim(0, 100)
        ax.axvline(50, color="#333333", linestyle="--", linewidth=0.8)
        ax.set_xlabel("Share of decisive votes (%)")
        handles = [matplotlib.patches.Patch(color=styles[m][1], label=styles[m][0]) for m in models]
        _legend_and_title(fig, handles, title)
        _footnote(fig, footnote, fig.get_figwidth())
    return fig


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
    args = ap.parse_args(argv)
    written, skipped = render_all(args.paper, args.eval_dir, args.votes, args.out)
    for path in written:
        print(f"wrote {shown(path)}")
    for message in skipped:
        print(message)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
