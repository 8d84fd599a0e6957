"""A whole conversation (system, user turns with audio or text, assistant turns) as LLM inputs.

The messages are rendered with the LLM's own chat template (diva.prompt.PromptLayout.render); a
user turn's audio becomes the assistant's turn content where the template holds a placeholder:
DiVA's virtual tokens, a cascade's transcript as text. Each clip's content is kept in a small
cache, so a conversation that is sent again with one more turn does not hear its old clips again,
and `PrefixCache` keeps the KV cache of a conversation decoded alone for the request that
continues it.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

from diva.prompt import PLACEHOLDER, user_content

ROLES = ("system", "user", "assistant")
_HEARD_CACHE_SIZE = 64


@dataclass
class Turn:
    role: str                          # system | user | assistant
    text: str = ""                     # with audio: the text prompt placed before it
    audio: np.ndarray | None = None    # 16 kHz samples (user turns only)


def embed_template(llm, tokenizer, text: str, contents: list[torch.Tensor]) -> torch.Tensor:
    """Template text with one PLACEHOLDER per content -> (T, d) embeddings, each placeholder
    replaced by its content's rows; the text pieces are tokenized without special tokens added."""
    pieces = text.split(PLACEHOLDER)
    if len(pieces) != len(contents) + 1:
        raise ValueError(f"{len(pieces) - 1} placeholders in the template text for {len(contents)} contents")
    table = llm.get_input_embeddings()

    def embed(piece: str) -> torch.Tensor:
        ids = tokenizer(piece, add_special_tokens=False)["input_ids"]
        return table(torch.tensor(ids, dtype=torch.long, device=table.weight.device))
    parts = [embed(pieces[0])]
    for content, piece in zip(contents, pieces[1:]):
        parts += [content.to(table.weight.device, table.weight.dtype), embed(piece)]
    return torch.cat(parts)


class _HeardCache:
    """(assistant, clip) -> turn content, least recently used out first."""

    def __init__(self, size: int):
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, assistant, audio: np.ndarray):
        key = (id(assistant), hashlib.sha256(np.ascontiguousarray(audio, np.float32).tobytes()).hexdigest())
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        found = assistant.turn_content(audio)
        with self.lock:
            self.items[key] = found
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return found


_heard = _HeardCache(_HEARD_CACHE_SIZE)


@torch.no_grad()
def chat_inputs(assistant, turns: list[Turn]) -> tuple[torch.Tensor, str | None]:
    """The conversation's (T, d) input embeddings, ending with the assistant header, and what the
    last turn's audio was heard as (None when its hearing is not text, or it has no audio)."""
    messages, contents, heard = [], [], None
    for turn in turns:
        if turn.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {turn.role!r}")
        text, heard = turn.text, None
        if turn.audio is not None:
            content, heard = _heard.get(assistant, turn.audio)
            if content is not None:
                contents.append(content)
            text = user_content(PLACEHOLDER if content is not None else heard, turn.text or None)
        messages.append({"role": turn.role, "content": text})
    rendered = assistant.layout.render(messages)
    return embed_template(assistant.llm, assistant.tokenizer, rendered, contents), heard


def _common_prefix(a: torch.Tensor, b: torch.Tensor) -> int:
    n = min(a.shape[0], b.shape[0])
    differ = (a[:n] != b[:n]).any(-1).nonzero()
    return int(differ[0]) if len(differ) else n


class PrefixCache:
    """KV caches of requests decoded alone, kept for the request that continues them: a
    conversation sent again with one more turn (its whole earlier prompt, then the reply) starts
    from the stored cache, so only its new positions are computed. An entry is taken out when
    used (a conversation that branches twice reuses it once); the oldest go first."""

    def __init__(self, size: int = 8):
        self.size = size
        self.entries: list[tuple[torch.Tensor, int, object]] = []  # (prompt + reply embeddings, prompt length, cache)

    def take(self, embeds: torch.Tensor):
        """The cache of a stored request whose whole prompt `embeds` begin with, cut to the prefix
        they share (one position is always left to compute), or None."""
        found = [(_common_prefix(stored, embeds), i) for i, (stored, prompt, _) in enumerate(self.entries)]
        found = [(n, i) for n, i in found if n >= self.entries[i][1]]
        if not found:
            return None
        n, i = max(found)
        _, _, cache = self.entries.pop(i)
        extra = cache.get_seq_length() - min(n, embeds.shape[0] - 1)
        if extra > 0:
            cache.crop(-extra)
        return cache

    def put(self, prompt: torch.Tensor, reply: torch.Tensor, cache) -> None:
        self.entries.append((torch.cat([prompt, reply]), prompt.shape[0], cache))
        del self.entries[:-self.size]
