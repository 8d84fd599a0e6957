"""The fair control: the cascade whose Whisper n-best the frozen LLM rescores (tiny models)."""
import numpy as np
import pytest
import torch
from transformers import WhisperFeatureExtractor

from diva.assistants.rescored_cascade import RescoredCascadeAssistant
from diva.bridge import question_log_probs
from diva.testing import tiny_llm, tiny_tokenizer, tiny_whisper
from eval.reading import has_reading, readings


def tiny_cascade(**options):
    return RescoredCascadeAssistant("tiny-rescored", tiny_whisper(), WhisperFeatureExtractor(feature_size=80),
                                    tiny_tokenizer(), tiny_llm(), tiny_tokenizer(), **options)


def clips(n=2):
    rng = np.random.default_rng(0)
    return [(0.1 * rng.standard_normal(8000 + 4000 * i)).astype(np.float32) for i in range(n)]


def test_whispers_n_best_are_distinct_hypotheses_best_first():
    cascade = tiny_cascade(n_best=4)
    lists = cascade.n_best_list(clips(2))
    assert [len(x) for x in lists] == [4, 4]
    for hypotheses in lists:
        scores = [score for _, score in hypotheses]
        assert all(s < 0 for s in scores)
        assert len({text for text, _ in hypotheses}) > 1  # not n copies of the best one


def test_the_llm_preferred_reading_is_picked(monkeypatch):
    cascade = tiny_cascade(lm_weight=1e4, length_bonus=0.0)
    candidates = [("the cat", -0.5), ("What is the capital of France?", -3.0), ("Hello there", -2.0)]
    monkeypatch.setattr(cascade, "n_best_list", lambda audios: [candidates] * len(audios))
    lm = question_log_probs(cascade.llm, cascade.layout, [text for text, _ in candidates])
    preferred = candidates[int(np.argmax([lp for lp, _ in lm]))][0]
    assert cascade.transcribe(clips(1)) == [preferred]
    cascade.lm_weight = 0.0  # no LLM: Whisper's best
    assert cascade.transcribe(clips(1)) == ["the cat"]
    with torch.no_grad():  # the LLM then answers the picked reading, and the reading is what it heard
        assert readings(cascade, clips(1)) == ["the cat"] and has_reading(cascade)
        inputs, heard = cascade._audio_inputs(clips(1), [None])
    assert heard == ["the cat"] and inputs["inputs_embeds"].shape[0] == 1


def test_bridge_readings_of_a_tiny_diva():
    from diva.bridge import InferenceOptions
    from diva.testing import tiny_diva
    diva = tiny_diva(n_queries=6, projection="whisper-vocab", options=InferenceOptions(bridge_temperature=0.05))

    class Holder:
        model = diva
    greedy = readings(Holder(), clips(2))
    assert len(greedy) == 2 and all(isinstance(t, str) for t in greedy)
    diva.options = InferenceOptions(bridge_temperature=0.05, bridge_decode="llm-beam", beam_width=4, beam_top_k=3)
    beam = readings(Holder(), clips(2))
    with torch.no_grad():
        expected = diva.reader.questions(diva.projection.head_logits(diva.speech_states(clips(2))))
    assert beam == expected
    assert readings(object(), clips(1)) is None and not has_reading(object())


@pytest.mark.parametrize("n_best", [1, 3])
def test_prompt_ids_follow_whispers_generation_config(n_best):
    cascade = tiny_cascade(n_best=n_best)
    assert cascade.prompt_ids()[0] == cascade.whisper.generation_config.decoder_start_token_id
