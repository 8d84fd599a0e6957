"""The vocabulary bridge: an alternative to DiVA's linear projection (an ablation, not the paper).

The connector is a copy of Whisper's decoder, so read through Whisper's tied output head each slot
is a distribution over Whisper's tokens. The bridge hands the LLM the expected LLM input embedding
under that distribution: a Whisper token whose string is also an LLM token maps to that token's
embedding, another one to the embedding of its first LLM sub-token, and special tokens (among them
<|endoftext|>, the blank that `align_whisper_blank` trains the free slots to say) to zeros.

Why: a linear map from Whisper's token table to the LLM's finds the right LLM token for only 1.6% of
held-out tokens (`python -m train.linear_map`), so a linear projection has to learn every word from
data, and on this hardware's corpus rare words never come through. The bridge is fixed (rebuilt
from the two models and tokenizers, never trained or saved), so it adds no parameters.
"""
from __future__ import annotations

import torch
from torch import nn


def same_spelled_tokens(whisper_tokenizer, llm_tokenizer, whisper_vocab_size: int):
    """Whisper's ordinary tokens (no specials) split into [(whisper id, llm id)] spelled the same in
    both vocabularies (both byte-level BPE: the same string is the same token) and the
    [(whisper id, text)] of the others."""
    specials = set(whisper_tokenizer.all_special_ids) | set(whisper_tokenizer.get_added_vocab().values())
    llm_vocab = llm_tokenizer.get_vocab()
    shared, unmatched = [], []
    for piece, wid in sorted(whisper_tokenizer.get_vocab().items(), key=lambda kv: kv[1]):
        if wid >= whisper_vocab_size or wid in specials:
            continue
        if piece in llm_vocab:
            shared.append((wid, llm_vocab[piece]))
        else:
            unmatched.append((wid, whisper_tokenizer.convert_tokens_to_string([piece])))
    return shared, unmatched


def whisper_to_llm_ids(whisper_tokenizer, llm_tokenizer, whisper_vocab_size: int) -> torch.Tensor:
    """(whisper_vocab_size,) LLM token id for each Whisper token, -1 where the bridge gives zeros."""
    shared, unmatched = same_spelled_tokens(whisper_tokenizer, llm_tokenizer, whisper_vocab_size)
    out = torch.full((whisper_vocab_size,), -1, dtype=torch.long)
    for wid, lid in shared:
        out[wid] = lid
    if unmatched:
        ids = llm_tokenizer([text for _, text in unmatched], add_special_tokens=False).input_ids
        for (wid, _), row in zip(unmatched, ids):
            out[wid] = row[0] if row else -1
    return out


def repeats_previous(top_ids: torch.Tensor) -> torch.Tensor:
    """(..., Q) top token per slot -> (..., Q) True where a slot repeats the previous slot's token:
    what CTC's reading leaves out ("is|is|<blank>|water" carries "is water")."""
    repeated = torch.zeros_like(top_ids, dtype=torch.bool)
    repeated[..., 1:] = top_ids[..., 1:] == top_ids[..., :-1]
    return repeated


class VocabularyBridge(nn.Module):
    """Connector states (..., d_whisper) -> (..., d_llm): softmax over Whisper's head, then the
    mapped LLM embeddings. Buffers only (not persistent): checkpoints hold no projection."""

    def __init__(self, whisper_table: torch.Tensor, llm_table: torch.Tensor, token_map: torch.Tensor,
                 temperature: float = 1.0):
        super().__init__()
        self.temperature = temperature
        targets = llm_table.detach()[token_map.clamp(min=0)] * (token_map >= 0).unsqueeze(1).to(llm_table.dtype)
        self.register_buffer("whisper_table", whisper_table.detach(), persistent=False)
        self.register_buffer("targets", targets, persistent=False)
        self.register_buffer("carries_word", token_map >= 0, persistent=False)

    def head_logits(self, states: torch.Tensor) -> torch.Tensor:
        return states @ self.whisper_table.to(states.dtype).T

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.read(states)[0]

    def read(self, states: torch.Tensor, collapse: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """One pass through Whisper's head: the LLM embeddings (..., Q, d_llm) and the word slots
        (..., Q), True where the head's top token maps to an LLM token (not a special token such as
        the blank). With `collapse` (CTC's reading), a slot that repeats_previous is not a word
        slot either."""
        logits = self.head_logits(states)
        probs = (logits / self.temperature).softmax(-1)
        top = logits.argmax(-1)
        words = self.carries_word[top]
        if collapse:
            words = words & ~repeats_previous(top)
        return probs @ self.targets.to(states.dtype), words
