"""Whole conversations as LLM inputs (diva.chat) and the KV cache a continued conversation reuses,
on a tiny random DiVA."""
import numpy as np
import pytest
import torch

from diva.assistants.base import Request
from diva.assistants.diva import DivaAssistant
from diva.chat import Turn, chat_inputs
from diva.generation import GenerationOptions
from diva.jobs import Job
from diva.testing import tiny_diva
from serve_helpers import prefill_lengths

OPTIONS = GenerationOptions(max_new_tokens=6, min_new_tokens=6)


def clip(seed):
    return (np.random.default_rng(seed).standard_normal(16000) * 0.1).astype(np.float32)


@pytest.fixture(scope="module")
def model():
    return tiny_diva(n_queries=8)


def answer(assistant, job: Job) -> str:
    with assistant._lock:
        assistant.run_jobs([job])
    return job.reply.text


def test_text_turns_are_the_chat_template_itself(model):
    assistant = DivaAssistant("tiny", model)
    turns = [Turn("system", "Hello there"), Turn("user", "What is the capital of France?"),
             Turn("assistant", "Paris."), Turn("user", "And of Italy?")]
    embeds, heard = chat_inputs(assistant, turns)
    messages = [{"role": t.role, "content": t.text} for t in turns]
    ids = assistant.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                  return_dict=True)["input_ids"]
    assert heard is None
    assert torch.equal(embeds, assistant.llm.get_input_embeddings()(torch.tensor(ids)))


def test_audio_turns_become_virtual_tokens_in_place(model):
    assistant = DivaAssistant("tiny", model)
    embeds, _ = chat_inputs(assistant, [Turn("user", "Hello", clip(0)), Turn("assistant", "Paris."),
                                        Turn("user", "", clip(1))])
    virtual = [assistant.turn_content(clip(i))[0] for i in (0, 1)]
    rows = [any(torch.equal(row, v) for v in embeds) for v in virtual for row in v]
    assert all(rows) and embeds.shape[0] > 2 * virtual[0].shape[0]


def test_a_continued_conversation_prefills_only_its_new_positions(model):
    warm, cold = DivaAssistant("warm", model), DivaAssistant("cold", model)
    job = Job(Request(audio=clip(0), prompt="Hello"), OPTIONS)
    first = answer(warm, job)
    turns = [Turn("user", "Hello", clip(0)), Turn("assistant", first), Turn("user", "What is the capital of France?")]
    total = chat_inputs(warm, turns)[0].shape[0]
    with prefill_lengths(model.llm) as lengths:
        second = answer(warm, Job(turns=turns, options=OPTIONS))
        assert lengths[0] <= total - job.reply.prompt_tokens  # the first turn's prompt came from the cache
        lengths.clear()
        assert answer(cold, Job(turns=turns, options=OPTIONS)) == second  # computed whole: the same reply
        assert lengths[0] == total


def test_an_unrelated_conversation_does_not_take_a_stored_cache(model):
    assistant = DivaAssistant("tiny", model)
    answer(assistant, Job(turns=[Turn("user", "Hello there")], options=OPTIONS))
    assert len(assistant.prefix_cache.entries) == 1
    embeds, _ = chat_inputs(assistant, [Turn("user", "What is the capital of France?")])
    assert assistant.prefix_cache.take(embeds) is None and len(assistant.prefix_cache.entries) == 1
