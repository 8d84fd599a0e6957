"""The vocabulary bridge and how its slots are read at inference (an alternative to the paper's
linear projection; `DivaConfig.projection = "whisper-vocab"`).

The connector is a copy of Whisper's decoder, so read through Whisper's tied output head each slot
is a distribution over Whisper's tokens. The bridge hands the LLM the expected LLM input embedding
under that distribution: a Whisper token whose string is also an LLM token maps to that token's
embedding, another one to the embedding of its first LLM sub-token, special tokens to zeros. It is
fixed (rebuilt from the two models and tokenizers, never trained or saved). A linear map from
Whisper's token table to the LLM's finds the right LLM token for only 1.6% of held-out tokens, which
is why it exists: the connector keeps Whisper's word knowledge.

The connector is trained with CTC over its slots (each word once, blanks between), so the slots
are read as CTC reads them: a slot whose top token is special (the blank) or repeats the previous
slot's is left out. Two readings (`InferenceOptions.bridge_decode`):
- "greedy": each remaining slot's bridged embedding.
- "llm-beam": a CTC prefix beam over each slot's `beam_top_k` words keeps `beam_width` readings;
  the frozen LLM scores each candidate question by its own log-probability in the prompt it is
  about to see, and the best `CTC + beam_lm_weight * LLM + beam_length_bonus * tokens` reaches the
  LLM spelled in the LLM's own tokens (shallow fusion by n-best rescoring). No new parameters.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from diva.padding import pad

BRIDGE_DECODES = ("greedy", "llm-beam")


@dataclass(frozen=True)
class InferenceOptions:
    """How a DiVA's virtual tokens are read and placed at inference; stored beside the checkpoint
    (`inference.json`), and changeable when loading without touching the weights."""
    bridge_temperature: float = 1.0   # softmax over Whisper's head (whisper-vocab only)
    bridge_decode: str = "greedy"     # greedy | llm-beam (whisper-vocab only)
    beam_width: int = 16
    beam_top_k: int = 8               # words per slot the beam considers
    beam_lm_weight: float = 0.5
    beam_length_bonus: float = 1.0    # per LLM token of the reading
    window_seconds: float | None = None  # audio is read in pieces of at most this long, cut at quiet
                                         # points (DiVA.hear); None: the encoder window
    prompt_layout: str = "native"     # where a text prompt goes (diva.prompt.LAYOUT_STYLES); the
                                      # released checkpoint defaults to its own "reference" layout

    def __post_init__(self):
        from diva.prompt import LAYOUT_STYLES
        if self.prompt_layout not in LAYOUT_STYLES:
            raise ValueError(f"prompt_layout must be one of {LAYOUT_STYLES}, got {self.prompt_layout!r}")
        if not self.bridge_temperature > 0:
            raise ValueError(f"bridge_temperature must be > 0, got {self.bridge_temperature}")
        if self.bridge_decode not in BRIDGE_DECODES:
            raise ValueError(f"bridge_decode must be one of {BRIDGE_DECODES}, got {self.bridge_decode!r}")
        if self.window_seconds is not None and not self.window_seconds > 0:
            raise ValueError(f"window_seconds must be > 0 or None, got {self.window_seconds}")
        if self.beam_width < 1 or self.beam_top_k < 1:
            raise ValueError("beam_width and beam_top_k must be >= 1")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> "InferenceOptions":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"unknown inference options {unknown}; known: {sorted(known)}")
        return cls(**raw)


# --- the fixed map between the two vocabularies -----------------------------------------------
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

    def __init__(self, whisper_table: torch.Tensor, llm_table: torch.Tensor, token_map: torch.Tensor):
        super().__init__()
        targets = llm_table.detach()[token_map.clamp(min=0)] * (token_map >= 0).unsqueeze(1).to(llm_table.dtype)
        self.register_buffer("whisper_table", whisper_table.detach(), persistent=False)
        self.register_buffer("targets", targets, persistent=False)
        self.register_buffer("carries_word", token_map >= 0, persistent=False)

    def head_logits(self, states: torch.Tensor) -> torch.Tensor:
        return states @ self.whisper_table.to(states.dtype).T

    def read(self, states: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
        """CTC's greedy reading: the LLM embeddings (..., Q, d_llm) and the slots the LLM sees
        (..., Q): True where the head's top token is a word (not the blank) and not a repeat."""
        return self.read_top(states, temperature)[:2]

    def read_top(self, states: torch.Tensor, temperature: float):
        """`read` plus each slot's top Whisper token (..., Q)."""
        logits = self.head_logits(states)
        top = logits.argmax(-1)
        keep = self.carries_word[top] & ~repeats_previous(top)
        return (logits / temperature).softmax(-1) @ self.targets.to(states.dtype), keep, top


# --- the LLM-rescored beam --------------------------------------------------------------------
def _add(a: float, b: float) -> float:
    """log(exp(a) + exp(b))."""
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    top = max(a, b)
    return top + math.log(math.exp(a - top) + math.exp(b - top))


def ctc_prefix_beam(log_probs: torch.Tensor, is_word: torch.Tensor, beam_width: int = 16,
                    top_k: int = 8) -> list[tuple[tuple[int, ...], float]]:
    """(Q, V) per-slot log-probabilities -> the beam's readings [(token ids, CTC log-prob)], best
    first. `is_word` (V,) marks the tokens that can be emitted; the others are all the blank. A
    token repeated in neighbouring slots collapses to one unless a blank separates them."""
    blank = torch.logsumexp(log_probs[:, ~is_word], -1).tolist()
    word_lp, word_ids = log_probs.masked_fill(~is_word, -math.inf).topk(top_k, -1)
    beams = {(): (0.0, -math.inf)}  # reading -> (log p ending in blank, log p ending in its last token)
    for slot in range(log_probs.shape[0]):
        grown = defaultdict(lambda: (-math.inf, -math.inf))
        for prefix, (p_blank, p_word) in beams.items():
            total = _add(p_blank, p_word)
            b, w = grown[prefix]
            grown[prefix] = (_add(b, total + blank[slot]), w)
            for lp, token in zip(word_lp[slot].tolist(), word_ids[slot].tolist()):
                longer = prefix + (token,)
                if prefix and prefix[-1] == token:
                    b, w = grown[prefix]
                    grown[prefix] = (b, _add(w, p_word + lp))  # the same token again: collapses
                    b, w = grown[longer]
                    grown[longer] = (b, _add(w, p_blank + lp))  # after a blank: a second one
                else:
                    b, w = grown[longer]
                    grown[longer] = (b, _add(w, total + lp))
        ranked = sorted(((prefix, scores) for prefix, scores in grown.items() if _add(*scores) > -math.inf),
                        key=lambda kv: -_add(*kv[1]))  # (a reading no slot path spells is dropped)
        beams = dict(ranked[:beam_width])
    return [(prefix, _add(*scores)) for prefix, scores in beams.items()]


@torch.no_grad()
def question_log_probs(llm, layout, questions: list[str]) -> list[tuple[float, int]]:
    """The frozen LLM's log-probability of each question as the user turn of its chat template
    (the question's tokens and the end of the turn), and its length in LLM tokens."""
    before, after = layout.around_audio(None)
    rows = [layout.transcript_ids(q) + after[:1] for q in questions]
    ids, mask = pad(rows, side="right", device=llm.device)
    prefix = llm(input_ids=torch.tensor([before], device=llm.device), use_cache=True)
    cache = prefix.cache
    cache.batch_repeat_interleave(len(rows))
    full_mask = torch.cat([mask.new_ones(len(rows), len(before)), mask], 1)
    logits = llm(input_ids=ids, attention_mask=full_mask, cache=cache).logits
    log_probs = torch.cat([prefix.logits[:, -1:].expand(len(rows), -1, -1), logits[:, :-1]], 1)
    log_probs = log_probs.float().log_softmax(-1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    return [((log_probs[i] * mask[i]).sum().item(), len(row)) for i, row in enumerate(rows)]


def pick_question(llm, layout, candidates: list[tuple[str, float]], lm_weight: float,
                  length_bonus: float) -> str:
    """[(question, recogniser log-prob)] -> the question with the best recogniser + lm_weight *
    LLM log-prob + length_bonus * LLM tokens ("" when there is none). Spellings repeated after the
    first are left out (whitespace aside)."""
    unique, seen = [], set()
    for text, score in candidates:
        text = text.strip()
        if text and text not in seen:
            seen.add(text)
            unique.append((text, score))
    if not unique:
        return ""
    lm = question_log_probs(llm, layout, [text for text, _ in unique])
    scores = [score + lm_weight * lp + length_bonus * n for (_, score), (lp, n) in zip(unique, lm)]
    return unique[max(range(len(scores)), key=scores.__getitem__)][0]


class SlotReader:
    """Reads the bridge's slots at inference as `options` say. It is given the frozen LLM, its
    prompt layout and Whisper's tokenizer, never the DiVA model."""

    def __init__(self, bridge: VocabularyBridge, llm, layout, whisper_tokenizer, options: InferenceOptions):
        self.bridge, self.llm, self.layout = bridge, llm, layout
        self.whisper_tokenizer, self.options = whisper_tokenizer, options

    def greedy(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.bridge.read(states, self.options.bridge_temperature)

    def __call__(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, Q, d_whisper) connector states -> virtual tokens (B, T, d_llm) and the (B, T) slots
        the LLM sees."""
        return self.read_with_text(states)[:2]

    def read_with_text(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """`__call__` plus the reading as text, per clip: the kept slots' top Whisper tokens
        decoded (greedy) or the question the LLM rescoring picked (llm-beam)."""
        if self.options.bridge_decode == "greedy":
            virtual, keep, top = self.bridge.read_top(states, self.options.bridge_temperature)
            texts = [self.whisper_tokenizer.decode(ids[kept].tolist(), skip_special_tokens=True).strip()
                     for ids, kept in zip(top, keep)]
            return virtual, keep, texts
        questions = self.questions(self.bridge.head_logits(states))
        table = self.llm.get_input_embeddings()
        rows = [table(torch.tensor(self.layout.transcript_ids(q), dtype=torch.long, device=states.device))
                for q in questions]
        virtual, keep = pad(rows, side="right")
        return virtual.to(states.dtype), keep.bool(), questions

    def questions(self, head_logits: torch.Tensor) -> list[str]:
        """(B, Q, V) Whisper-head logits -> per clip, the reading the LLM rescoring picks ("" where
        every slot is blank)."""
        o = self.options
        picked = []
        for slots in head_logits.float().log_softmax(-1):
            readings = ctc_prefix_beam(slots, self.bridge.carries_word, o.beam_width, o.beam_top_k)
            candidates = [(self.whisper_tokenizer.decode(list(ids)), ctc) for ids, ctc in readings]
            picked.append(pick_question(self.llm, self.layout, candidates, o.beam_lm_weight, o.beam_length_bonus))
        return picked
