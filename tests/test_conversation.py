"""Multi-turn conversations continue from the KV cache and match uncached generation."""
from pathlib import Path

import numpy as np
import pytest
import torch

from diva.assistants import load_assistant
from diva.reply import TokenClock
from diva.assistants.diva import DivaAssistant
from diva.generation import GenerationOptions, generate_ids
from diva.testing import tiny_diva
from serve_helpers import prefill_lengths

SAMPLE = Path(__file__).resolve().parents[1] / "diva" / "samples" / "capital_of_france.wav"


def clip(seed):
    return (np.random.default_rng(seed).standard_normal(16000) * 0.1).astype(np.float32)


@pytest.fixture(scope="module")
def assistant():
    return DivaAssistant("tiny", tiny_diva(n_queries=8))


def test_later_turns_prefill_only_their_new_positions(assistant):
    chat = assistant.conversation()
    with prefill_lengths(assistant.llm) as lengths:
        chat.ask(clip(0), max_new_tokens=6)
        history = chat.n_positions
        lengths.clear()
        chat.ask(clip(1), prompt="Hello", max_new_tokens=6)
    # the first forward of turn 2 covers the new user turn only, not the history before it
    assert lengths[0] < chat.n_positions - history + 2
    assert chat.cache.get_seq_length() >= history


def test_cached_turn_equals_uncached_generation(assistant):
    cached, uncached = assistant.conversation(), assistant.conversation()
    uncached.cache = None  # recompute every position
    for turn in range(3):
        kwargs = dict(max_new_tokens=8, prompt="Hello" if turn == 1 else None)
        a = cached.ask(clip(turn), **kwargs)
        b = uncached.ask(clip(turn), **kwargs)
        assert a.text == b.text
    assert torch.equal(cached._embeds, uncached._embeds)


def test_a_turn_cut_at_a_stop_string_is_history_as_cut(assistant):
    options = GenerationOptions(max_new_tokens=12, min_new_tokens=12)
    whole = assistant.conversation().ask(clip(0), options=options).text
    stop = whole[len(whole) // 2:len(whole) // 2 + 2]
    cached, uncached = assistant.conversation(), assistant.conversation()
    uncached.cache = None
    for chat in (cached, uncached):
        first = chat.ask(clip(0), options=options.replace(stop=(stop,)))
        assert first.text == whole[:whole.index(stop)].strip() == chat.messages[-1]["content"]
    assert cached.ask(clip(1), max_new_tokens=8).text == uncached.ask(clip(1), max_new_tokens=8).text
    assert torch.equal(cached._embeds, uncached._embeds)


def test_turns_need_exactly_one_input(assistant):
    chat = assistant.conversation()
    with pytest.raises(ValueError, match="either audio or a transcript"):
        chat.ask()
    with pytest.raises(ValueError, match="either audio or a transcript"):
        chat.ask(clip(0), transcript="hi")


def test_second_turn_sees_the_chat_template_history():
    """text-mini: turn 2 from the cache == generating from the whole rendered conversation."""
    text = load_assistant("text-mini")
    chat = text.conversation()
    first = chat.ask(transcript="What is the capital of France?", max_new_tokens=16)
    second = chat.ask(transcript="And of Italy?", max_new_tokens=16)
    assert "Paris" in first.text
    messages = [{"role": "user", "content": "What is the capital of France?"},
                {"role": "assistant", "content": first.text},
                {"role": "user", "content": "And of Italy?"}]
    ids = text.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True,
                                             return_tensors="pt")
    expected = generate_ids(text.llm, text.tokenizer, {"input_ids": ids["input_ids"],
                                                       "attention_mask": ids["attention_mask"]},
                            16, TokenClock())[0]
    assert second.text == text.tokenizer.decode(expected, skip_special_tokens=True).strip()


def test_cascade_conversation_hears_audio_turns():
    cascade = load_assistant("cascade-mini")
    chat = cascade.conversation()
    reply = chat.ask(SAMPLE, max_new_tokens=16)
    assert "capital of france" in reply.transcript.lower() and "Paris" in reply.text
    assert chat.messages[0]["content"] == reply.transcript
    with pytest.raises(ValueError, match="transcripts only"):
        load_assistant("text-mini").conversation().ask(SAMPLE)


def test_a_bridge_that_drops_blanks_hands_a_conversation_turn_only_its_word_slots():
    model = tiny_diva(n_queries=8, projection="whisper-vocab")
    audio = clip(3)
    states = model.speech_states([audio])
    read = model.projection.head_logits(states)[0].argmax(-1)
    model.projection.carries_word[read[0]] = False        # what slot 0 reads now counts as a blank
    tokens, _ = DivaAssistant("tiny-drop", model).turn_content(audio)
    keep = model.project(states)[1][0]
    assert not keep[0] and tokens.shape[0] == int(keep.sum()) < 8
    assert torch.allclose(tokens, model.project(states)[0][0][keep])
