"""How the figures look: names, colours and the bar / win-rate drawings (matplotlib only)."""
from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

import matplotlib
import matplotlib.patches
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

SUITES = ("qa", "classification", "translation")

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
                 "em": "Exact match (%)", "exactmatch": "Exact match (%)", "winrate": "Win rate (%)",
                 "sentencebleu": "Mean sentence BLEU"}
# when a task reports several metrics, the first of these that is present is plotted
METRIC_PREFERENCE = ["panda", "weightedf1", "bleu", "sentencebleu", "accuracy", "acc", "f1", "tokenf1",
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

