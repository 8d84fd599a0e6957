"""Answers -> per-item records and aggregate rows under the paper's protocol.

Records are our per-item schema (eval.report.write_items): item_id, subset, modality,
prediction, reference, score (+ label for classification). `score` is the item's paper score:
the CFMatcher score (0-1, None when scoring failed) for QA, 1/0 for a label, sentence BLEU for a
translation. Rows are {subset, metric, n, value, ci_low, ci_high}, one group per subset (dialect,
target language) or "all" for a task without subsets.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from eval import paper_metrics as PM
from eval.item import Item
from eval.paper_tasks import PaperTask


def item_scores(task: PaperTask, items: list[Item], predictions: Sequence[str],
                labels: Sequence[str] | None = None, matcher=None) -> list[float | None]:
    """The paper's score of each answer. `labels`: the label word each classification answer
    maps to; `matcher`: a CFMatcher-like scorer (QA)."""
    if task.kind == "qa":
        if matcher is None:
            raise PM.MetricUnavailable(PM.CFMATCHER_HELP)
        return [PM.best_gold_score(matcher, it.reference, p, it.fields.get("question", it.transcript or ""))
                for it, p in zip(items, predictions)]
    if task.kind == "label":
        return [float(task.labels[label] == it.reference) for it, label in zip(items, labels)]
    if task.kind == "translation":
        return [PM.sentence_bleu(p, it.reference, it.fields["target"]) for it, p in zip(items, predictions)]
    raise ValueError(f"{task.name}: unknown kind {task.kind!r}")


def groups(items: list[Item]) -> dict[str, np.ndarray]:
    """One index group per subset; a task without subsets has the single group "all"."""
    names = sorted({it.subset for it in items})
    return {name: np.array([i for i, it in enumerate(items) if it.subset == name]) for name in names}


def score_paper(task: PaperTask, items: list[Item], predictions: Sequence[str],
                labels: Sequence[str] | None = None, matcher=None, seed: int = 0
                ) -> tuple[list[dict], list[dict]]:
    scores = item_scores(task, items, predictions, labels, matcher)
    records = []
    for i, (it, p, s) in enumerate(zip(items, predictions, scores)):
        rec = {"item_id": it.item_id, "subset": it.subset, "modality": "audio", "prediction": p,
               "reference": it.reference, "score": s}
        if labels is not None:
            rec["label"] = labels[i]
        records.append(rec)
    scale = 1.0 if task.kind == "translation" else 100.0
    rows = []
    for subset, idx in groups(items).items():
        rows.append({"subset": subset, "metric": task.metric,
                     **PM.mean_row([scores[i] for i in idx], scale, seed)})
        if task.weighted_f1:
            gold_values = list(dict.fromkeys(task.labels.values()))
            rows.append({"subset": subset, "metric": "weighted_f1", **PM.weighted_f1_row(
                [task.labels[labels[i]] for i in idx], [items[i].reference for i in idx],
                gold_values, seed)})
    return records, rows
