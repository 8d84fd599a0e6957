"""Label-constrained one-token classification, as the paper's evaluation does it.

Each label is reduced to its first token (the labels must differ in it); one new token is
generated with every other token masked out, and the decoded token is mapped back to its label.
The mask is a transformers LogitsProcessor, applied to any local assistant through
`diva.generation.extra_logits_processors`.
"""
from __future__ import annotations

from typing import Sequence

import torch
from transformers import LogitsProcessor


class AllowOnlyTokens(LogitsProcessor):
    """Sets every score to -inf except those of `allowed` token ids; counts its calls (a run
    that never called it did not decode through diva.generation)."""

    def __init__(self, allowed: Sequence[int]):
        if not allowed:
            raise ValueError("no allowed tokens")
        self.allowed = sorted({int(i) for i in allowed})
        self.calls = 0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.calls += 1
        keep = torch.tensor(self.allowed, device=scores.device)
        masked = torch.full_like(scores, float("-inf"))
        masked[:, keep] = scores[:, keep]
        return masked


class LabelTokens:
    """The first token of each label, and the way back from a one-token answer to its label."""

    def __init__(self, tokenizer, labels: Sequence[str]):
        self.labels = list(labels)
        self.ids = [tokenizer(label, add_special_tokens=False)["input_ids"][0] for label in self.labels]
        if len(set(self.ids)) != len(self.ids):
            raise ValueError(f"labels {self.labels} do not differ in their first token")
        self.by_text = {tokenizer.decode([i], skip_special_tokens=True).strip(): label
                        for i, label in zip(self.ids, self.labels)}
        if len(self.by_text) != len(self.labels):
            raise ValueError(f"the first tokens of {self.labels} decode to the same text")

    def processor(self) -> AllowOnlyTokens:
        return AllowOnlyTokens(self.ids)

    def label(self, answer: str) -> str:
        """The label whose first token is this (decoded, one-token) answer."""
        key = answer.strip()
        if key not in self.by_text:
            raise ValueError(f"answer {answer!r} is not the first token of any label {self.labels}")
        return self.by_text[key]
