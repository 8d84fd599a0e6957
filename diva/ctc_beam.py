"""The LLM-rescored reading of the bridge's slots (an inference-time ablation, not the paper).

The vocabulary bridge reads each query slot through Whisper's head, and the CTC-trained connector
says its words once each, with blanks between (diva.bridge). The greedy reading takes every slot's
top token. This one keeps the `beam_width` most likely CTC readings (prefix beam search over each
slot's `top_k` words and the blank, every special token counting as blank), scores each candidate
question by the frozen LLM's own log-probability of it in the prompt it is about to see, and hands
the LLM the one with the best `CTC + lm_weight * LLM + length_bonus * tokens`: shallow fusion by
n-best rescoring, as CTC speech recognisers do with a language model. The picked reading reaches
the LLM spelled in the LLM's own tokens (Whisper's byte-level BPE splits words differently and
starts with a space, so a right reading bridged token by token never equals the text branch's
input). With it DiVA-mini works as a recogniser in front of the LLM: a cascade whose recogniser is
the connector. It adds no parameters; the LLM it uses is DiVA's own frozen one.
"""
from __future__ import annotations

import math
from collections import defaultdict

import torch


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
    longest = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), longest, dtype=torch.long, device=llm.device)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row)
        mask[i, :len(row)] = 1
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


def rescored_reading(diva, head_logits: torch.Tensor) -> list[str]:
    """(B, Q, V) Whisper-head logits of the word slots -> per clip, the question the LLM
    rescoring picks ("" where every slot is blank), with the beam settings of diva.config."""
    c = diva.config
    picked = []
    for slots in head_logits.float().log_softmax(-1):
        readings = ctc_prefix_beam(slots, diva.projection.carries_word, c.beam_width, c.beam_top_k)
        candidates = [(diva.whisper_tokenizer.decode(list(ids)), ctc) for ids, ctc in readings]
        picked.append(pick_question(diva.llm, diva.layout, candidates, c.beam_lm_weight, c.beam_length_bonus))
    return picked
