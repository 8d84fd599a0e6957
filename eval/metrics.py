"""Metrics: pure functions on predictions and references, plus bootstrap confidence intervals.

Everything here works offline: SQuAD exact match / token F1 (the official normalisation),
alias containment for short-answer QA, robust label parsing, weighted F1 and accuracy
(scikit-learn), BLEU (sacrebleu, tokenizer chosen per target language), agreement between two
answers (identical text, same first token). PEDANT/PANDA (`qa-metrics`) is used only when it can
load; its classifier is downloaded at run time, so offline it is reported as unavailable.
"""
from __future__ import annotations

import collections
import re
import string
from typing import Callable, Sequence

import numpy as np

# ---- QA ------------------------------------------------------------------------------------
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation) | {"‘", "’", "“", "”", "–", "—"}


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _as_list(golds: str | Sequence[str]) -> list[str]:
    return [golds] if isinstance(golds, str) else list(golds)


def exact_match(prediction: str, golds: str | Sequence[str]) -> float:
    """1.0 when the normalised prediction equals any normalised gold answer."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in _as_list(golds)))


def _token_f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred_tokens), overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, golds: str | Sequence[str]) -> float:
    """SQuAD token F1, best over the gold answers."""
    pred = normalize_answer(prediction).split()
    return max(_token_f1(pred, normalize_answer(g).split()) for g in _as_list(golds))


def contains_answer(prediction: str, aliases: str | Sequence[str]) -> float:
    """1.0 when any alias appears in the prediction as whole words (after normalisation).

    Chat models answer in sentences ("The capital of France is Paris."), so exact match is
    too strict for them; this is the accuracy used for the offline spoken-QA set.
    """
    pred = f" {normalize_answer(prediction)} "
    for alias in _as_list(aliases):
        norm = normalize_answer(alias)
        if norm and f" {norm} " in pred:
            return 1.0
    return 0.0


def load_pedant():
    """A PEDANT scorer `(prediction, golds, question) -> 0/1`, or None when it cannot load."""
    try:
        from qa_metrics.pedant import PEDANT  # downloads its classifier on first use
        pedant = PEDANT()
        pedant.evaluate(["Paris"], "Paris", "What is the capital of France?")
    except Exception:  # not installed, or offline: callers fall back to SQuAD EM/F1
        return None
    return lambda prediction, golds, question: float(
        bool(pedant.evaluate(_as_list(golds), prediction, question)))


# ---- classification -------------------------------------------------------------------------
def parse_label(response: str, vocabulary: dict[str, str]) -> str | None:
    """The label named first in the response.

    `vocabulary` maps surface words (lower case; "positive", "happy", "yes") to canonical labels.
    Words match on word boundaries; the earliest match wins, so "Positive, not negative" is
    positive. A negated label ("not sarcastic") is skipped. None when nothing matches.
    """
    text = response.lower()
    best: tuple[int, str] | None = None
    for word, label in vocabulary.items():
        for match in re.finditer(rf"(?<![\w-]){re.escape(word.lower())}(?![\w-])", text):
            before = text[max(0, match.start() - 5):match.start()]
            if re.search(r"\bnot\s+$", before):
                continue
            if best is None or match.start() < best[0]:
                best = (match.start(), label)
            break
    return best[1] if best else None


def accuracy(predictions: Sequence, references: Sequence) -> float:
    if not references:
        return float("nan")
    return float(np.mean([p == r for p, r in zip(predictions, references)]))


def weighted_f1(predictions: Sequence, references: Sequence, labels: Sequence[str]) -> float:
    """F1 per label weighted by the label's support; unparsed predictions count as wrong."""
    from sklearn.metrics import f1_score
    if not references:
        return float("nan")
    preds = ["<none>" if p is None else p for p in predictions]
    present = [label for label in labels if label in set(references)]
    return float(f1_score(list(references), preds, labels=present, average="weighted",
                          zero_division=0))


# ---- translation ----------------------------------------------------------------------------
def _has_mecab() -> bool:
    try:
        import ipadic  # noqa: F401
        import MeCab  # noqa: F401
    except ImportError:
        return False
    return True


def bleu_tokenizer(language: str) -> str:
    """sacrebleu tokenizer for a target language: zh -> "zh", ja -> "ja-mecab" (or "char"
    without MeCab), ko -> "ko-mecab" (or "char"), everything else sacrebleu's default "13a"."""
    lang = language.lower().split("-")[0].split("_")[0]
    if lang == "zh":
        return "zh"
    if lang in ("ja", "ko"):
        return f"{lang}-mecab" if lang == "ja" and _has_mecab() else "char"
    return "13a"


def corpus_bleu(hypotheses: Sequence[str], references: Sequence, tokenize: str = "13a") -> float:
    """Corpus BLEU (0-100). `references`: one string per segment, or sacrebleu's list of
    reference streams (each a list with one string per segment)."""
    from sacrebleu.metrics import BLEU
    if not hypotheses:
        return float("nan")
    streams = ([list(s) for s in references] if references and not isinstance(references[0], str)
               else [list(references)])
    return float(BLEU(tokenize=tokenize).corpus_score(list(hypotheses), streams).score)


class BleuStats:
    """Per-segment BLEU statistics, so corpus BLEU on any resample is a sum (as sacrebleu's own
    paired bootstrap does) instead of re-tokenising the corpus 1000 times."""

    def __init__(self, hypotheses: Sequence[str], references: Sequence[str], tokenize: str = "13a"):
        from sacrebleu.metrics import BLEU
        self.bleu = BLEU(tokenize=tokenize)
        self.stats = np.array(self.bleu._extract_corpus_statistics(list(hypotheses), [list(references)]),
                              dtype=np.int64).reshape(len(hypotheses), -1)

    def score(self, indices: np.ndarray | None = None) -> float:
        stats = self.stats if indices is None else self.stats[indices]
        if stats.shape[0] == 0:
            return float("nan")
        return float(self.bleu._compute_score_from_stats(stats.sum(axis=0).tolist()).score)


def sentence_bleu(hypothesis: str, reference: str, tokenize: str = "13a") -> float:
    """Sentence BLEU (0-100) with effective n-gram order, for per-item logs."""
    from sacrebleu.metrics import BLEU
    return float(BLEU(tokenize=tokenize, effective_order=True).sentence_score(hypothesis, [reference]).score)


# ---- transcripts ----------------------------------------------------------------------------
def transcript_words(text: str) -> str:
    """Lower case, punctuation (not apostrophes) removed, single spaces: the form WER compares."""
    return " ".join(re.sub(r"[^\w' ]+", " ", text.lower()).split())


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """jiwer's corpus WER on transcript_words; empty references are left out."""
    import jiwer
    pairs = [(transcript_words(r), transcript_words(h)) for r, h in zip(references, hypotheses)]
    pairs = [(r, h) for r, h in pairs if r]
    return jiwer.wer([r for r, _ in pairs], [h for _, h in pairs])


SYMBOL_WORDS = {"#": " pound ", "*": " star ", "@": " at ", "&": " and "}


def asr_words(text: str) -> str:
    """The form real-speech WER compares: spoken symbols as words, then Whisper's English text
    normaliser (lower case, no punctuation, numbers written one way, "mr" -> "mister")."""
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer
    for symbol, word in SYMBOL_WORDS.items():
        text = text.replace(symbol, word)
    return EnglishTextNormalizer({})(text)


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference words) after `asr_words`, with jiwer:
    per item, so a corpus WER over any resample is a ratio of sums."""
    import jiwer
    ref, hyp = asr_words(reference), asr_words(hypothesis)
    if not ref:
        return len(hyp.split()), 0
    out = jiwer.process_words(ref, hyp)
    return out.substitutions + out.deletions + out.insertions, len(ref.split())


def exact_transcript_share(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """The share of transcripts read word for word right (case and punctuation aside)."""
    hits = sum(transcript_words(r) == transcript_words(h) for r, h in zip(references, hypotheses))
    return hits / max(len(references), 1)


# ---- agreement between two answers ----------------------------------------------------------
def identical(a: str, b: str) -> float:
    return float(a.strip() == b.strip())


def repeats_question(reply: str, question: str, text_reply: str) -> float:
    """1.0 when the reply transcribes the question instead of answering it: its SQuAD token F1
    with the question is at least 0.5 and higher than with the text LLM's reply to the same
    question (so "The capital of France is Paris." is an answer, not a repeat)."""
    to_question = token_f1(reply, question)
    return float(to_question >= 0.5 and to_question > token_f1(reply, text_reply))


def first_token_agreement(a: str, b: str, tokenize: Callable[[str], list] | None = None) -> float:
    """1.0 when both answers start with the same token (`tokenize`: the LLM's tokenizer; without
    one, whitespace words)."""
    tokenize = tokenize or str.split
    ta, tb = tokenize(a.strip()), tokenize(b.strip())
    return float(bool(ta) and bool(tb) and ta[0] == tb[0])


# ---- confidence intervals -------------------------------------------------------------------
def bootstrap_ci(statistic: Callable[[np.ndarray], float], n: int, *, seed: int = 0,
                 n_boot: int = 1000, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of `statistic(indices)` over items resampled with replacement.

    `statistic` receives an index array, so corpus-level metrics (BLEU, weighted F1) and paired
    differences (text minus audio on the same items) are resampled correctly.
    """
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, n, n)) for _ in range(n_boot)], dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))


def mean_ci(scores: Sequence[float], *, seed: int = 0, n_boot: int = 1000,
            level: float = 0.95) -> tuple[float, float]:
    """Vectorised bootstrap CI of a mean (per-item scores)."""
    x = np.asarray(scores, dtype=float)
    if x.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, (n_boot, x.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))
