"""Greedy generation from LLM input embeddings, batched or streamed, with per-token timing.

All local assistants (DiVA, cascade, text, Qwen2-Audio) decode through here, on top of
transformers' `generate` (greedy, KV cache, left padding) and its streamer.
"""
from __future__ import annotations

import contextlib
import contextvars
import threading
from typing import Iterator

import torch
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

from diva.reply import TokenClock

END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<end_of_turn>", "<|endoftext|>",
                      "<|end|>")


class _Tick(StoppingCriteria):
    """Never stops anything: records the time each new token is produced."""

    def __init__(self, clock: TokenClock):
        self.clock = clock

    def __call__(self, input_ids, scores, **kwargs):
        self.clock.tick()
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


_EXTRA_PROCESSORS: contextvars.ContextVar[tuple] = contextvars.ContextVar("extra_logits_processors",
                                                                        default=())


@contextlib.contextmanager
def extra_logits_processors(*processors):
    """Every generation started inside this block also applies these transformers
    LogitsProcessors (e.g. eval.constrained's mask that allows only label tokens); the
    assistants' own API stays as it is."""
    token = _EXTRA_PROCESSORS.set(_EXTRA_PROCESSORS.get() + tuple(processors))
    try:
        yield
    finally:
        _EXTRA_PROCESSORS.reset(token)


def stop_token_ids(model, tokenizer) -> list[int]:
    """The LLM's end-of-sequence ids plus its chat end-of-turn token."""
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    vocab = tokenizer.get_vocab()
    ids.update(vocab[t] for t in END_OF_TURN_TOKENS if t in vocab)
    return sorted(ids)


def _generate_kwargs(model, tokenizer, inputs: dict, max_new_tokens, clock):
    stops = stop_token_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    kwargs = dict(**inputs, max_new_tokens=max_new_tokens,
                  do_sample=False, temperature=None, top_p=None, top_k=None, num_beams=1,
                  eos_token_id=stops, pad_token_id=pad,
                  stopping_criteria=StoppingCriteriaList([_Tick(clock)]))
    if _EXTRA_PROCESSORS.get():
        from transformers import LogitsProcessorList
        kwargs["logits_processor"] = LogitsProcessorList(_EXTRA_PROCESSORS.get())
    return kwargs


def trim_at_stop(ids: list[int], stops: list[int]) -> list[int]:
    for i, token in enumerate(ids):
        if token in stops:
            return ids[:i]
    return ids


@torch.no_grad()
def generate_ids(model, tokenizer, inputs: dict, max_new_tokens: int,
                 clock: TokenClock, cache=None) -> list[list[int]]:
    """Greedy-decode a left-padded batch; returns the new token ids per row, stop token removed.

    `inputs`: `inputs_embeds` + `attention_mask`, or whatever the model's generate takes
    (`input_ids`, `input_features`, ...). `cache`: a KV cache holding a prefix of these inputs
    (a conversation's history); only the positions past it are computed, and it is extended.
    """
    kwargs = _generate_kwargs(model, tokenizer, inputs, max_new_tokens, clock)
    if cache is not None:
        kwargs["cache"] = cache
    out = model.generate(**kwargs)
    if "input_ids" in inputs:  # generate returned prompt + answer
        out = out[:, inputs["input_ids"].shape[1]:]
    stops = stop_token_ids(model, tokenizer)
    return [trim_at_stop(row.tolist(), stops) for row in out]


def stream_text(model, tokenizer, inputs: dict, max_new_tokens: int,
                clock: TokenClock) -> Iterator[str]:
    """Greedy-decode one prompt in a worker thread and yield text deltas as they arrive."""
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    kwargs = _generate_kwargs(model, tokenizer, inputs, max_new_tokens, clock)
    errors: list[BaseException] = []

    def work():
        try:
            with torch.no_grad():
                model.generate(streamer=streamer, **kwargs)
        except BaseException as error:  # surfaced in the caller's thread below
            errors.append(error)
            streamer.end()

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    for delta in streamer:
        if delta:
            yield delta
    worker.join()
    if errors:
        raise errors[0]


def decode(tokenizer, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=True).strip()
