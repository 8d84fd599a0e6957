"""Metrics on hand-checked cases, and BLEU against sacrebleu's documented example."""
import math

import numpy as np
import pytest

from eval import metrics as M


def test_squad_normalisation_exact_match_and_f1():
    assert M.normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert M.exact_match("The Eiffel Tower!", ["eiffel tower"]) == 1.0
    assert M.exact_match("Paris, France", "Paris") == 0.0
    # tokens [paris, france] vs [paris]: precision 1/2, recall 1 -> F1 2/3
    assert M.token_f1("Paris, France", "Paris") == pytest.approx(2 / 3)
    # best over gold answers
    assert M.token_f1("William Shakespeare", ["Shakespeare", "William Shakespeare"]) == 1.0
    assert M.token_f1("no idea", ["Paris"]) == 0.0


def test_contains_answer_uses_whole_words_and_aliases():
    assert M.contains_answer("The capital of France is Paris.", ["Paris"]) == 1.0
    assert M.contains_answer("It is Beijing, also called Peking.", ["Peking", "Beijing"]) == 1.0
    assert M.contains_answer("Parisian food is great", ["Paris"]) == 0.0
    assert M.contains_answer("There are 7 days in a week.", ["7", "seven"]) == 1.0
    assert M.contains_answer("77 days", ["7"]) == 0.0


def test_parse_label_takes_the_first_label_and_skips_negations():
    vocab = {"positive": "positive", "negative": "negative"}
    assert M.parse_label("Positive.", vocab) == "positive"
    assert M.parse_label("The sentiment is negative; not positive.", vocab) == "negative"
    assert M.parse_label("It is not negative, it is positive", vocab) == "positive"
    assert M.parse_label("I don't know", vocab) is None
    emotions = {"happy": "hap", "joy": "hap", "sad": "sad"}
    assert M.parse_label("The speaker sounds sad.", emotions) == "sad"
    assert M.parse_label("Joy!", emotions) == "hap"


def test_accuracy_and_weighted_f1_by_hand():
    refs, preds = ["a", "a", "b", "b"], ["a", "b", "b", "b"]
    assert M.accuracy(preds, refs) == 0.75
    # a: P 1, R 1/2 -> F1 2/3; b: P 2/3, R 1 -> F1 4/5; support 2 and 2 -> mean
    assert M.weighted_f1(preds, refs, ["a", "b"]) == pytest.approx((2 / 3 + 4 / 5) / 2)
    # an unparsed answer (None) is wrong, never a label of its own
    assert M.weighted_f1([None, "b"], ["a", "b"], ["a", "b"]) == pytest.approx(0.5)


def test_bleu_matches_sacrebleus_documented_example():
    # sacrebleu README: BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)
    refs = [["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
            ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."]]
    hyps = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
    assert M.corpus_bleu(hyps, refs) == pytest.approx(48.53, abs=0.005)


def test_bleu_by_hand():
    # 1-4 gram precisions 5/6, 3/5, 2/4, 1/3, equal lengths (BP 1): (1/12) ** (1/4)
    hand = 100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    assert M.corpus_bleu(["the cat sat on the mat"], ["the cat sat on a mat"]) == pytest.approx(hand, abs=1e-6)
    assert M.corpus_bleu(["Guten Morgen, wie geht es?"], ["Guten Morgen, wie geht es?"]) == pytest.approx(100.0)
    # fewer than four tokens: no 4-gram matches, corpus BLEU is 0 even when identical
    assert M.corpus_bleu(["Guten Morgen."], ["Guten Morgen."]) == 0.0
    assert M.corpus_bleu(["xyz"], ["Guten Morgen."]) == 0.0


def test_bleu_stats_resampling_equals_corpus_bleu():
    hyps = ["the cat sat on the mat", "a dog runs", "good morning to you", "hello"]
    refs = ["the cat sat on a mat", "the dog runs", "good morning", "hello there"]
    stats = M.BleuStats(hyps, refs)
    assert stats.score() == pytest.approx(M.corpus_bleu(hyps, refs))
    idx = np.array([0, 0, 2, 3])
    assert stats.score(idx) == pytest.approx(M.corpus_bleu([hyps[i] for i in idx], [refs[i] for i in idx]))


def test_bleu_tokenizer_per_language():
    assert M.bleu_tokenizer("zh") == "zh" and M.bleu_tokenizer("zh-CN") == "zh"
    assert M.bleu_tokenizer("ja") in ("ja-mecab", "char")
    assert M.bleu_tokenizer("de") == M.bleu_tokenizer("ar") == "13a"
    # Chinese is scored per character with the zh tokenizer, not as one 13a "word"
    assert M.corpus_bleu(["今天天气很好。"], ["今天天气很好。"], tokenize="zh") == pytest.approx(100.0)
    assert M.corpus_bleu(["今天天气很好。"], ["今天天气很好。"], tokenize="13a") == 0.0


def test_agreement_metrics():
    assert M.identical(" Paris. ", "Paris.") == 1.0
    assert M.identical("Paris.", "Paris!") == 0.0
    assert M.first_token_agreement("The capital is Paris.", "The answer: Paris") == 1.0
    assert M.first_token_agreement("Paris.", "The capital is Paris.") == 0.0
    assert M.first_token_agreement("", "") == 0.0
    chars = lambda s: list(s)  # noqa: E731 - a stand-in tokenizer
    assert M.first_token_agreement("Paris", "Pizza", chars) == 1.0


def test_repeats_question_tells_transcribing_from_answering():
    q = "What is the capital of France?"
    text = "The capital of France is Paris."
    assert M.repeats_question("What is the capital of France?", q, text) == 1.0
    assert M.repeats_question("what is the capitol of france", q, text) == 1.0  # ASR-style errors
    assert M.repeats_question("The capital of France is Paris.", q, text) == 0.0  # echoes, but answers
    assert M.repeats_question("I like green apples.", q, text) == 0.0


def test_bootstrap_cis():
    assert M.mean_ci([1.0] * 10) == (1.0, 1.0)
    lo, hi = M.mean_ci([0.0, 1.0] * 50, seed=3)
    assert lo < 0.5 < hi and 0.15 < hi - lo < 0.3
    assert M.mean_ci([0.0, 1.0] * 50, seed=3) == (lo, hi)  # seeded
    values = np.array([0.0, 1.0] * 50)
    lo2, hi2 = M.bootstrap_ci(lambda idx: float(values[idx].mean()), len(values), seed=3)
    assert lo2 < 0.5 < hi2 and abs((hi2 - lo2) - (hi - lo)) < 0.05
    assert all(math.isnan(x) for x in M.mean_ci([]))


def test_pedant_is_optional():
    scorer = M.load_pedant()  # offline: qa-metrics is missing or cannot fetch its classifier
    assert scorer is None or scorer("Paris", ["Paris"], "What is the capital of France?") == 1.0
