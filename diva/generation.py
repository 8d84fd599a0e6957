"""Generation from LLM inputs (embeddings or token ids), batched, with per-token timing.

All local assistants (DiVA, cascade, text, Qwen2-Audio) decode through here, on top of
transformers' `generate` (KV cache, left padding). `GenerationOptions` is the one set of
decoding settings every backend takes; greedy decoding is the default. Each row of a batch
keeps its own seed, length limit, cancel flag and text stream (diva.generation_rows).
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import secrets
import threading
from dataclasses import dataclass, field
from typing import Sequence

import torch
from transformers import (LogitsProcessorList, StoppingCriteriaList, TemperatureLogitsWarper,
                          TopKLogitsWarper, TopPLogitsWarper)

from diva.generation_rows import RowLimits, RowStreamer, SeededDraw, StopText, TextSink
from diva.reply import TokenClock

DEFAULT_MAX_NEW_TOKENS = 128
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<end_of_turn>", "<|endoftext|>",
                      "<|end|>")


@dataclass(frozen=True)
class GenerationOptions:
    """How a reply is decoded. The defaults decode greedily up to 128 new tokens."""
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    min_new_tokens: int = 0            # the end of turn is suppressed before this many tokens
    temperature: float = 0.0           # 0: greedy; > 0: sampling
    top_p: float = 1.0                 # sampling: the smallest set of tokens with this much mass
    top_k: int = 0                     # sampling: only the k best tokens (0: all)
    seed: int | None = None            # sampling: the same seed and input give the same reply
    repetition_penalty: float = 1.0    # 1.0 leaves the model's own (none for ours); on generated tokens
    stop: tuple[str, ...] = ()         # the reply ends before the first of these strings

    def __post_init__(self):
        object.__setattr__(self, "stop", (self.stop,) if isinstance(self.stop, str) else tuple(self.stop))
        checks = [(self.max_new_tokens >= 1, "max_new_tokens must be >= 1"),
                  (0 <= self.min_new_tokens <= self.max_new_tokens,
                   "min_new_tokens must be between 0 and max_new_tokens"),
                  (self.temperature >= 0, "temperature must be >= 0"),
                  (0 < self.top_p <= 1, "top_p must be in (0, 1]"),
                  (self.top_k >= 0, "top_k must be >= 0"),
                  (self.repetition_penalty > 0, "repetition_penalty must be > 0"),
                  (all(isinstance(s, str) and s for s in self.stop), "stop strings must be non-empty text")]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def sampling(self) -> bool:
        return self.temperature > 0

    def replace(self, **changes) -> "GenerationOptions":
        return dataclasses.replace(self, **changes)

    def changed(self) -> dict:
        """The settings that differ from the defaults (what a cache key must tell apart)."""
        default = GenerationOptions()
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) != getattr(default, f.name)}

    def batch_key(self) -> tuple:
        """Rows can share a batch when these agree (seed and length limit are per row)."""
        return (self.min_new_tokens, self.temperature, self.top_p, self.top_k, self.repetition_penalty,
                self.stop)


def as_options(options: GenerationOptions | int | None = None,
               max_new_tokens: int | None = None) -> GenerationOptions:
    """Options from what callers pass: options, a bare max_new_tokens, or nothing (the defaults);
    an explicit `max_new_tokens` wins."""
    if isinstance(options, int):
        options = GenerationOptions(max_new_tokens=options)
    options = options or GenerationOptions()
    return options if max_new_tokens is None else options.replace(max_new_tokens=max_new_tokens)


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


def current_extra_processors() -> tuple:
    return _EXTRA_PROCESSORS.get()


@dataclass
class Row:
    """One reply in a batch: its options, a flag that ends it early, where its text goes as it is
    produced (None: not streamed), and the extra logits processors in force when it was asked."""
    options: GenerationOptions
    cancelled: threading.Event = field(default_factory=threading.Event)
    text: TextSink | None = None
    extra: tuple = field(default_factory=current_extra_processors)


def stop_token_ids(model, tokenizer) -> list[int]:
    """The LLM's end-of-sequence ids plus its chat end-of-turn token."""
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    vocab = tokenizer.get_vocab()
    ids.update(vocab[t] for t in END_OF_TURN_TOKENS if t in vocab)
    return sorted(ids)


def _sampling_processors(rows: list[Row], device) -> list:
    options = rows[0].options
    if not options.sampling:
        return []
    warpers = [TemperatureLogitsWarper(options.temperature)]
    if options.top_k:
        warpers.append(TopKLogitsWarper(options.top_k))
    if options.top_p < 1:
        warpers.append(TopPLogitsWarper(options.top_p))
    seeds = [r.options.seed if r.options.seed is not None else secrets.randbits(63) for r in rows]
    return warpers + [SeededDraw(seeds, device)]


def _generate_kwargs(model, tokenizer, inputs: dict, rows: list[Row], clock: TokenClock) -> dict:
    options = rows[0].options
    if any(r.options.batch_key() != options.batch_key() or r.extra != rows[0].extra for r in rows):
        raise ValueError("rows of one batch must share their decoding settings (all but seed and length)")
    stops = stop_token_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id in stops else stops[0]  # finished rows read as ended
    prompt_length = inputs["input_ids"].shape[1] if "input_ids" in inputs else 0
    kwargs = dict(**inputs, max_new_tokens=max(r.options.max_new_tokens for r in rows),
                  do_sample=False, temperature=None, top_p=None, top_k=None, num_beams=1,
                  eos_token_id=stops, pad_token_id=pad,
                  stopping_criteria=StoppingCriteriaList([RowLimits(
                      clock, [r.options.max_new_tokens for r in rows], [r.cancelled for r in rows],
                      prompt_length)]))
    if options.min_new_tokens:
        kwargs["min_new_tokens"] = options.min_new_tokens
    if options.repetition_penalty != 1.0:
        kwargs["repetition_penalty"] = options.repetition_penalty
    if options.stop:  # transformers' StopStringCriteria; the text is cut by StopText
        kwargs.update(stop_strings=list(options.stop), tokenizer=tokenizer)
    processors = list(rows[0].extra) + _sampling_processors(rows, model.device)
    if processors:
        kwargs["logits_processor"] = LogitsProcessorList(processors)
    if any(r.text is not None for r in rows):
        kwargs["streamer"] = RowStreamer(tokenizer, [r.text for r in rows], stops)
    return kwargs


def trim_at_stop(ids: list[int], stops: list[int]) -> list[int]:
    for i, token in enumerate(ids):
        if token in stops:
            return ids[:i]
    return ids


def batch_size(inputs: dict) -> int:
    for key in ("attention_mask", "input_ids", "inputs_embeds"):
        if key in inputs:
            return inputs[key].shape[0]
    raise ValueError("inputs hold neither input_ids nor inputs_embeds")


@torch.no_grad()
def generate_rows(model, tokenizer, inputs: dict, rows: list[Row], clock: TokenClock,
                  cache=None) -> list[list[int]]:
    """Decode a left-padded batch, one Row per input row; returns each row's new token ids, its
    stop token removed.

    `inputs`: `inputs_embeds` + `attention_mask`, or whatever the model's generate takes
    (`input_ids`, `input_features`, ...). `cache`: a KV cache holding a prefix of these inputs
    (a conversation's history); only the positions past it are computed, and it is extended.
    """
    kwargs = _generate_kwargs(model, tokenizer, inputs, rows, clock)
    if cache is not None:
        kwargs["cache"] = cache
    out = model.generate(**kwargs)
    if "input_ids" in inputs:  # generate returned prompt + answer
        out = out[:, inputs["input_ids"].shape[1]:]
    stops = stop_token_ids(model, tokenizer)
    return [trim_at_stop(row.tolist(), stops) for row in out]


def generate_ids(model, tokenizer, inputs: dict, options: GenerationOptions | int,
                 clock: TokenClock, cache=None) -> list[list[int]]:
    """`generate_rows` with the same options for every row (`options` may be a max_new_tokens)."""
    options = as_options(options)
    rows = [Row(options) for _ in range(batch_size(inputs))]
    return generate_rows(model, tokenizer, inputs, rows, clock, cache=cache)


def decode(tokenizer, ids: list[int], stop: Sequence[str] = ()) -> str:
    """A reply's text: special tokens dropped, whitespace trimmed, cut before a stop string."""
    return StopText.whole(tokenizer.decode(ids, skip_special_tokens=True), stop)
