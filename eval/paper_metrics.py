"""The paper's metrics, per item (so paired tests work), and their aggregates.

- QA: the qa-metrics CFMatcher (PANDA) score of the answer against each gold answer, the best
  one counting; an item whose scoring raises is dropped (score None). Reported x100.
- Translation: sentence BLEU of each sentence alone (sacrebleu `BLEU(trg_lang=<target>)`, its
  defaults: no effective order, so a sentence under four tokens scores 0), and the MEAN over
  sentences, not corpus BLEU. Japanese needs MeCab (`pip install "sacrebleu[ja]"`).
- Classification: accuracy of the mapped label; weighted F1 for the emotion sets.

qa-metrics downloads its classifier at run time, so it is imported only here, only when a QA
task runs under the paper protocol.
"""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from eval import metrics as M

CFMATCHER_HELP = ("the paper protocol scores QA with qa-metrics' CFMatcher (PANDA): "
                  "`pip install qa-metrics` on a machine with network access (it downloads its "
                  "classifier on first use)")


class MetricUnavailable(RuntimeError):
    """A metric the paper protocol needs cannot be loaded here."""


def load_cfmatcher():
    """qa-metrics' CFMatcher (named PEDANT in newer releases), or MetricUnavailable."""
    try:
        try:
            from qa_metrics.cfm import CFMatcher
        except ImportError:
            from qa_metrics.pedant import PEDANT as CFMatcher
        return CFMatcher()
    except Exception as exc:  # not installed, or its classifier cannot be downloaded
        raise MetricUnavailable(f"{CFMATCHER_HELP} ({type(exc).__name__}: {exc})") from exc


def best_gold_score(matcher, golds: Sequence[str], prediction: str, question: str) -> float | None:
    """max over gold answers of matcher.get_scores(golds, prediction, question)[gold][prediction];
    None when scoring fails (the item is then left out of the mean)."""
    try:
        per_gold = matcher.get_scores(list(golds), prediction, question)
        return float(max(scores[prediction] for scores in per_gold.values()))
    except Exception:
        return None


@functools.lru_cache(maxsize=None)
def _bleu(target: str):
    import logging

    from sacrebleu.metrics import BLEU
    # sentence_score warns about effective_order on every call; the paper scored without it
    logging.getLogger("sacrebleu").setLevel(logging.ERROR)
    try:
        return BLEU(trg_lang=target)
    except Exception as exc:  # ja needs MeCab: pip install mecab-python3 ipadic
        raise MetricUnavailable(f"sacrebleu BLEU(trg_lang={target!r}) cannot load: {exc}") from exc


def sentence_bleu(hypothesis: str, reference: str, target: str) -> float:
    """BLEU (0-100) of one sentence alone, sacrebleu's defaults for the target language."""
    return float(_bleu(target).sentence_score(hypothesis, [reference]).score)


def scored(values: Sequence[float | None]) -> np.ndarray:
    """The per-item scores that exist (None, NaN: scoring failed) as floats."""
    arr = np.array([np.nan if v is None else v for v in values], dtype=float)
    return arr[~np.isnan(arr)]


def mean_row(values: Sequence[float | None], scale: float, seed: int) -> dict:
    """{n, value, ci_low, ci_high}: the mean of the scored items (x scale), 95% bootstrap CI."""
    x = scored(values)
    lo, hi = M.mean_ci(x, seed=seed)
    value = float(x.mean()) if x.size else float("nan")
    return {"n": int(x.size), "value": scale * value, "ci_low": scale * lo, "ci_high": scale * hi}


def weighted_f1_row(predicted: Sequence[str], gold: Sequence[str], labels: Sequence[str], seed: int) -> dict:
    pred, ref = np.array(predicted, dtype=object), np.array(gold, dtype=object)

    def stat(idx: np.ndarray) -> float:
        return 100 * M.weighted_f1(list(pred[idx]), list(ref[idx]), labels)

    lo, hi = M.bootstrap_ci(stat, len(ref), seed=seed)
    return {"n": len(ref), "value": stat(np.arange(len(ref))), "ci_low": lo, "ci_high": hi}
