"""From answers to numbers: per-item records and aggregate rows (with 95% bootstrap CIs).

All aggregate values are percentages (0-100) like the paper's charts; BLEU is sacrebleu's 0-100.
Per-item `score` is the item's own primary score: 1/0 for a correct answer or label, sentence
BLEU (0-100) for a translation.

Metrics per task kind:
- qa offline (`spoken-qa`): accuracy = an accepted answer appears in the response; plus, against
  text-mini's answer to the transcript (same prompt, same generation settings):
  identical_to_text (whole response identical) and first_token_agreement (same first LLM token);
  repeats_question: the response transcribes the question instead of answering it.
- qa real: panda (PEDANT, when qa-metrics loads), else exact_match and token_f1 (SQuAD); always
  contains (an answer span appears in the response).
- label: accuracy and weighted_f1 (unparsed answers count as wrong).
- translation: bleu_<tokenizer> per target language; subset "all": bleu_mean, the mean over
  target languages of their corpus BLEU.
- asr (the prediction is what the assistant heard, not its reply): wer, corpus word error rate
  (jiwer, after Whisper's English normaliser), and read_exactly, the share of clips read without
  a word error; per-item score = the item's own WER.
- instruction (spoken instructions with no gold answer): text-mini's agreement metrics only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from eval import metrics as M
from eval.item import Item
from eval.tasks import Task

AGREEMENT_METRICS = ("identical_to_text", "first_token_agreement", "repeats_question")


@dataclass
class Metric:
    name: str
    stat: Callable[[np.ndarray], float]   # indices into the scored items -> value
    mean_of: np.ndarray | None = None     # per-item values when the metric is their mean (x100)


def _mean_metric(name: str, values: Sequence[float]) -> Metric:
    v = np.asarray(values, dtype=float)
    return Metric(name, lambda idx: 100.0 * float(v[idx].mean()) if len(idx) else float("nan"), v)


def score_items(task: Task, items: list[Item], predictions: list[str], *,
                text_mini: list[str] | None = None, tokenize=None, pedant=None
                ) -> tuple[list[dict], list[Metric]]:
    """Per-item records (without modality) and the task's metrics over these items."""
    refs = [it.reference for it in items]
    records = [{"item_id": it.item_id, "subset": it.subset, "prediction": p, "reference": r}
               for it, p, r in zip(items, predictions, refs)]
    found: list[Metric] = []
    if task.kind == "asr":
        return records, _asr_metrics(records, refs, predictions)
    if task.kind in ("qa", "instruction"):
        contains = [M.contains_answer(p, r) for p, r in zip(predictions, refs)]
        if task.kind == "instruction":
            per_item = {}
        elif task.offline:
            found.append(_mean_metric("accuracy", contains))
            per_item = {"score": contains}
        else:
            per_item = {}
            if pedant is not None:
                per_item["panda"] = [pedant(p, r, it.fields.get("question", it.transcript or ""))
                                     for p, r, it in zip(predictions, refs, items)]
            else:
                per_item["exact_match"] = [M.exact_match(p, r) for p, r in zip(predictions, refs)]
                per_item["token_f1"] = [M.token_f1(p, r) for p, r in zip(predictions, refs)]
            per_item["contains"] = contains
            found += [_mean_metric(name, vals) for name, vals in per_item.items()]
            per_item["score"] = next(iter(per_item.values()))
        if text_mini is not None:
            same = [M.identical(p, t) for p, t in zip(predictions, text_mini)]
            first = [M.first_token_agreement(p, t, tokenize) for p, t in zip(predictions, text_mini)]
            repeats = [M.repeats_question(p, it.transcript or "", t)
                       for p, it, t in zip(predictions, items, text_mini)]
            found += [_mean_metric("identical_to_text", same),
                      _mean_metric("first_token_agreement", first),
                      _mean_metric("repeats_question", repeats)]
            per_item.update(identical_to_text=same, first_token_agreement=first, repeats_question=repeats,
                            text_mini_answer=list(text_mini))
            per_item.setdefault("score", same)
        for name, vals in per_item.items():
            for rec, v in zip(records, vals):
                rec[name] = v
    elif task.kind == "label":
        parsed = [M.parse_label(p, task.vocabulary) for p in predictions]
        correct = [float(p == r) for p, r in zip(parsed, refs)]
        parsed_arr, refs_arr = np.array(parsed, dtype=object), np.array(refs, dtype=object)
        found += [_mean_metric("accuracy", correct),
                  Metric("weighted_f1", lambda idx: 100.0 * M.weighted_f1(
                      list(parsed_arr[idx]), list(refs_arr[idx]), task.labels))]
        for rec, p, c in zip(records, parsed, correct):
            rec.update(parsed=p, score=c)
    elif task.kind == "translation":
        targets = [it.fields.get("target", it.subset) for it in items]
        tokenizers = {t: M.bleu_tokenizer(t) for t in set(targets)}
        stats = {t: M.BleuStats([p for p, tt in zip(predictions, targets) if tt == t],
                                [r for r, tt in zip(refs, targets) if tt == t], tok)
                 for t, tok in tokenizers.items()}
        # position of each item inside its target's statistics
        order = {t: 0 for t in tokenizers}
        local = np.zeros(len(items), dtype=int)
        for i, t in enumerate(targets):
            local[i], order[t] = order[t], order[t] + 1
        targets_arr = np.array(targets, dtype=object)

        def bleu_stat(idx: np.ndarray) -> float:
            per_target = [stats[t].score(local[idx][targets_arr[idx] == t])
                          for t in sorted(set(targets_arr[idx]))]
            return float(np.mean(per_target)) if per_target else float("nan")

        name = (f"bleu_{next(iter(tokenizers.values()))}" if len(tokenizers) == 1 else "bleu_mean")
        found.append(Metric(name, bleu_stat))
        for rec, p, r, t in zip(records, predictions, refs, targets):
            rec.update(score=M.sentence_bleu(p, r, tokenizers[t]), tokenizer=tokenizers[t])
    else:
        raise ValueError(f"{task.name}: unknown task kind {task.kind!r}")
    return records, found


def _asr_metrics(records: list[dict], refs: list[str], readings: list[str]) -> list[Metric]:
    counts = np.array([M.word_errors(r, h) for r, h in zip(refs, readings)], dtype=float).reshape(-1, 2)
    errors, words = counts[:, 0], counts[:, 1]
    for rec, e, n in zip(records, errors, words):
        rec.update(errors=int(e), words=int(n), score=100.0 * e / max(n, 1))
    wer = Metric("wer", lambda idx: 100.0 * errors[idx].sum() / words[idx].sum() if words[idx].sum() else float("nan"))
    return [wer, _mean_metric("read_exactly", errors == 0)]


def subsets_of(items: list[Item]) -> dict[str, np.ndarray]:
    """"all" plus one group per subset (when there is more than one)."""
    groups = {"all": np.arange(len(items))}
    names = sorted({it.subset for it in items})
    if len(names) > 1 or names != ["all"]:
        for name in names:
            if name != "all":
                groups[name] = np.array([i for i, it in enumerate(items) if it.subset == name])
    return groups


def metric_for_subset(metric: Metric, task: Task, items: list[Item], subset: str) -> str:
    """Translation metrics are named by the tokenizer of the subset's language."""
    if task.kind == "translation" and subset != "all":
        return f"bleu_{M.bleu_tokenizer(subset)}"
    return metric.name


def aggregate(task: Task, items: list[Item], found: list[Metric], *, seed: int,
              n_boot: int = 1000) -> list[dict]:
    """Rows {subset, metric, n, value, ci_low, ci_high} for every subset x metric."""
    rows = []
    for subset, idx in subsets_of(items).items():
        for metric in found:
            if metric.mean_of is not None:
                lo, hi = M.mean_ci(metric.mean_of[idx], seed=seed, n_boot=n_boot)
                lo, hi = 100 * lo, 100 * hi
            else:
                lo, hi = M.bootstrap_ci(lambda b: metric.stat(idx[b]), len(idx), seed=seed,
                                        n_boot=n_boot)
            rows.append({"subset": subset, "metric": metric_for_subset(metric, task, items, subset),
                         "n": int(len(idx)), "value": metric.stat(idx), "ci_low": lo, "ci_high": hi})
    return rows


def gap_rows(task: Task, items: list[Item], text: list[Metric], audio: list[Metric], *,
             seed: int, n_boot: int = 1000) -> list[dict]:
    """Modality gap on the same items: text minus audio, with a paired bootstrap CI."""
    rows = []
    audio_by_name = {m.name: m for m in audio}
    for subset, idx in subsets_of(items).items():
        for tm in text:
            am = audio_by_name.get(tm.name)
            if am is None or tm.name in AGREEMENT_METRICS:
                continue
            diff = lambda b, tm=tm, am=am: tm.stat(idx[b]) - am.stat(idx[b])  # noqa: E731
            lo, hi = M.bootstrap_ci(diff, len(idx), seed=seed, n_boot=n_boot)
            full = np.arange(len(idx))
            rows.append({"subset": subset, "metric": metric_for_subset(tm, task, items, subset),
                         "n": int(len(idx)), "value": diff(full), "ci_low": lo, "ci_high": hi})
    return rows
