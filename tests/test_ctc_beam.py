"""The LLM-rescored CTC reading of the bridge's slots (diva/ctc_beam.py) on hand cases and tiny models."""
import itertools
import math

import pytest
import torch

from diva.checkpoint import load_diva, read_checkpoint, save_connector
from diva.ctc_beam import ctc_prefix_beam, pick_question, question_log_probs, rescored_reading
from diva.prompt import PromptLayout
from diva.testing import tiny_diva, tiny_llm, tiny_tokenizer


def collapse(path, blank):
    out = []
    for i, token in enumerate(path):
        if token != blank and (i == 0 or path[i - 1] != token):
            out.append(token)
    return tuple(out)


def test_prefix_beam_sums_every_ctc_path_of_a_reading():
    torch.manual_seed(0)
    log_probs = torch.randn(4, 3).log_softmax(-1)         # 4 slots; token 0 is the blank, 1 and 2 words
    is_word = torch.tensor([False, True, True])
    expected = {}
    for path in itertools.product(range(3), repeat=4):    # brute force: all 81 slot paths
        p = sum(log_probs[q, t].item() for q, t in enumerate(path))
        reading = collapse(path, 0)
        expected[reading] = math.log(math.exp(expected.get(reading, -math.inf)) + math.exp(p))
    beam = dict(ctc_prefix_beam(log_probs, is_word, beam_width=1000, top_k=2))
    assert set(beam) == set(expected)                     # (1, 1) only with a blank between, etc.
    for reading, score in expected.items():
        assert beam[reading] == pytest.approx(score, abs=1e-6)
    ranked = [score for _, score in ctc_prefix_beam(log_probs, is_word, beam_width=3, top_k=2)]
    assert len(ranked) == 3 and ranked == sorted(ranked, reverse=True)


def test_question_log_probs_match_a_forward_without_cache():
    llm, layout = tiny_llm(), PromptLayout(tiny_tokenizer())
    questions = ["What is the capital?", "the cat"]
    got = question_log_probs(llm, layout, questions)
    before, after = layout.around_audio(None)
    for question, (score, n) in zip(questions, got):
        ids = before + layout.transcript_ids(question) + after[:1]
        log_probs = llm(input_ids=torch.tensor([ids])).logits[0].log_softmax(-1)
        expected = sum(log_probs[i - 1, ids[i]].item() for i in range(len(before), len(ids)))
        assert n == len(ids) - len(before)
        assert score == pytest.approx(expected, abs=1e-4)


def test_pick_question_weighs_the_recogniser_against_the_llm():
    llm, layout = tiny_llm(), PromptLayout(tiny_tokenizer())
    candidates = [("the cat", 0.0), (" the cat ", -0.1), ("What is it?", -5.0), ("", 1.0)]
    assert pick_question(llm, layout, candidates, lm_weight=0.0, length_bonus=0.0) == "the cat"
    lm = dict(zip(["the cat", "What is it?"], question_log_probs(llm, layout, ["the cat", "What is it?"])))
    likelier = max(lm, key=lambda q: lm[q][0])
    assert pick_question(llm, layout, candidates, lm_weight=1e4, length_bonus=0.0) == likelier
    longer = max(lm, key=lambda q: lm[q][1])
    assert pick_question(llm, layout, candidates, lm_weight=0.0, length_bonus=1e4) == longer
    assert pick_question(llm, layout, [("  ", 0.0)], 0.5, 1.0) == ""


def test_llm_beam_hands_the_llm_the_picked_question_in_its_own_tokens(tmp_path):
    diva = tiny_diva(n_queries=6, projection="whisper-vocab", bridge_blank="collapse",
                     bridge_temperature=0.05, bridge_decode="llm-beam", beam_width=4, beam_top_k=3)
    torch.manual_seed(0)
    states = torch.randn(2, 6, diva.connector.config.d_model) * 3
    questions = rescored_reading(diva, diva.projection.head_logits(states))  # width 4, top 3
    assert all(questions)
    virtual, keep = diva.read_speech(states)
    for i, question in enumerate(questions):
        assert torch.equal(virtual[i][keep[i]], diva.embed_ids(diva.layout.transcript_ids(question)))
    greedy = tiny_diva(n_queries=6, projection="whisper-vocab", bridge_blank="collapse", bridge_temperature=0.05)
    assert all(torch.equal(a, b) for a, b in zip(greedy.read_speech(states), greedy.project(states)))
    save_connector(diva, tmp_path / "beam")
    config, _, raw = read_checkpoint(tmp_path / "beam")
    assert (config.bridge_decode, config.beam_width, config.beam_top_k) == ("llm-beam", 4, 3) == \
           (raw["bridge_decode"], raw["beam_width"], raw["beam_top_k"])
    save_connector(greedy, tmp_path / "greedy")
    assert "bridge_decode" not in read_checkpoint(tmp_path / "greedy")[2]


def test_llm_beam_needs_the_collapsing_bridge_and_known_options(tmp_path):
    with pytest.raises(ValueError, match="bridge_decode"):
        tiny_diva(projection="whisper-vocab", bridge_decode="sample")
    with pytest.raises(ValueError, match="collapse"):
        tiny_diva(projection="whisper-vocab", bridge_decode="llm-beam")
    save_connector(tiny_diva(n_queries=4), tmp_path / "linear")
    with pytest.raises(TypeError, match="no option 'beam_size'"):
        load_diva(tmp_path / "linear", encoder="tiny-whisper", beam_size=4)
