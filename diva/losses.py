"""DiVA's training losses (DESIGN.md), on plain tensors so they test on hand-computable cases.

- distillation_loss: unsquared L2 distance between the LLM's final hidden state (after the final
  norm) at the last prompt position for the audio and the text branch; batch mean.
- token_alignment_loss: L2 between the last N virtual tokens and the LLM input embeddings of the
  first N transcript tokens, N = the transcript's length capped at the query count; per-token
  distances are averaged over the N tokens, then over the batch. The other queries stay free.
- token_alignment_ce_loss: an ablation (not in the paper): cross-entropy of reading each aligned
  virtual token back as its nearest LLM input embedding.
- whisper_token_ce_loss: an ablation: the aligned connector states read through Whisper's own
  output head, against the transcript's Whisper tokens.
- whisper_token_ctc_loss: the same reading trained with CTC over all the slots (an ablation).
- response_kl_loss: an ablation. KL(teacher || student) over the next-token distributions at the
  response positions (teacher: the text branch; student: the audio branch), masked mean.
- transcript_ce_loss: the SFT baseline's cross-entropy on transcript tokens.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def distillation_loss(audio_last_hidden: torch.Tensor, text_last_hidden: torch.Tensor) -> torch.Tensor:
    """(B, d), (B, d) -> scalar: mean_b ||audio_b - text_b||_2."""
    diff = audio_last_hidden.float() - text_last_hidden.float()
    return diff.norm(dim=-1).mean()


def aligned_slots(n_queries: int, transcript_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which transcript token each query slot is aligned with: the last N_b of the Q slots take
    tokens [0, N_b), N_b = min(n_b, Q). Returns token_index (B, Q) (clamped to >= 0), active (B, Q)
    and N_b (B,)."""
    lengths = transcript_mask.long().sum(dim=1).clamp(max=n_queries)
    q = torch.arange(n_queries, device=transcript_mask.device).unsqueeze(0)
    token_index = q - (n_queries - lengths.unsqueeze(1))                    # <0 = free slot
    active = token_index >= 0
    return token_index.clamp(min=0), active, lengths


def token_alignment_loss(virtual_tokens: torch.Tensor, transcript_embeds: torch.Tensor,
                         transcript_mask: torch.Tensor) -> torch.Tensor:
    """virtual_tokens (B, Q, d); transcript_embeds (B, T, d) right-padded with mask (B, T).

    Example b with n_b transcript tokens compares virtual tokens [Q - N_b, Q) with transcript
    tokens [0, N_b), N_b = min(n_b, Q). Examples with an empty transcript contribute 0.
    """
    token_index, active, lengths = aligned_slots(virtual_tokens.shape[1], transcript_mask)
    T, d = transcript_embeds.shape[1:]
    gathered = torch.gather(transcript_embeds.float(), 1,
                            token_index.clamp(max=max(T - 1, 0)).unsqueeze(-1).expand(-1, -1, d))
    dist = (virtual_tokens.float() - gathered).norm(dim=-1) * active        # (B, Q)
    per_example = dist.sum(dim=1) / lengths.clamp(min=1)
    return per_example.mean()


def _mean_over_selected_slots(per_slot: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
    """per_slot (M,) values at the True entries of selected (B, Q) -> mean over each example's
    selected slots, then over the batch (an example with none contributes 0)."""
    rows = selected.nonzero()[:, 0]
    per_example = torch.zeros(selected.shape[0], device=per_slot.device).index_add(0, rows, per_slot)
    return (per_example / selected.sum(1).clamp(min=1)).mean()


def _aligned_cross_entropy(states: torch.Tensor, transcript_ids: torch.Tensor, transcript_mask: torch.Tensor,
                           logits_of) -> torch.Tensor:
    """Cross-entropy of the aligned slots (as in token_alignment_loss) against the transcript's
    tokens, with `logits_of(states at the aligned slots (M, d)) -> (M, V)`; averaged over the
    aligned slots of each example, then over the batch; empty transcripts contribute 0."""
    token_index, active, _ = aligned_slots(states.shape[1], transcript_mask)
    if not bool(active.any()):
        return states.sum() * 0.0
    T = transcript_ids.shape[1]
    targets = torch.gather(transcript_ids, 1, token_index.clamp(max=max(T - 1, 0)))[active]     # (M,)
    per_slot = F.cross_entropy(logits_of(states.float()[active]), targets, reduction="none")
    return _mean_over_selected_slots(per_slot, active)


def token_alignment_ce_loss(virtual_tokens: torch.Tensor, transcript_ids: torch.Tensor,
                            transcript_mask: torch.Tensor, embedding_table: torch.Tensor) -> torch.Tensor:
    """An ablation beside the paper's L2: cross-entropy of the nearest-embedding reading.

    At each aligned slot (as in token_alignment_loss) the logits over the whole vocabulary are
    -||v - e_j||^2 (the table is the LLM's input embeddings, frozen), and the target is the
    transcript's token: it pulls the virtual token toward its word AND away from the other words,
    where the L2 alone settles on the mean of the plausible words.
    """
    table = embedding_table.detach().float()
    # -||v - e||^2 up to the per-row constant ||v||^2, which the softmax ignores
    return _aligned_cross_entropy(virtual_tokens, transcript_ids, transcript_mask,
                                  lambda v: 2 * v @ table.T - (table * table).sum(-1))


def whisper_token_ce_loss(connector_states: torch.Tensor, whisper_ids: torch.Tensor,
                          whisper_mask: torch.Tensor, whisper_table: torch.Tensor,
                          blank_id: int | None = None) -> torch.Tensor:
    """An ablation (not in the paper): read the connector's own output (Whisper's decoder copy,
    after its final norm, before the projection) through Whisper's frozen token table, i.e.
    Whisper's tied output head, and ask the aligned slots for the transcript's WHISPER tokens.
    The connector then reuses the word knowledge of Whisper's pretrained head instead of
    learning a lookup into the LLM's embeddings one token at a time.

    With `blank_id`, the free slots are asked for that token (e.g. <|endoftext|>), a second term
    averaged over each example's free slots: a bridge that maps it to a zero vector then hands
    the LLM nothing but the words there."""
    table = whisper_table.detach().float()
    logits_of = lambda h: h @ table.T  # noqa: E731
    words = _aligned_cross_entropy(connector_states, whisper_ids, whisper_mask, logits_of)
    if blank_id is None:
        return words
    _, active, _ = aligned_slots(connector_states.shape[1], whisper_mask)
    free = ~active
    if not bool(free.any()):
        return words
    h = connector_states.float()[free]
    per_slot = F.cross_entropy(logits_of(h), torch.full((h.shape[0],), blank_id, device=h.device),
                               reduction="none")
    return words + _mean_over_selected_slots(per_slot, free)


def whisper_token_ctc_loss(connector_states: torch.Tensor, whisper_ids: torch.Tensor,
                           whisper_mask: torch.Tensor, whisper_table: torch.Tensor, blank_id: int) -> torch.Tensor:
    """An ablation: the slots read through Whisper's tied head (as whisper_token_ce_loss) and
    trained with CTC (blank = `blank_id`) over ALL Q slots, instead of asking slot Q - N + i for
    token i. Any monotonic placement of the words counts, a word may fill several slots, so no slot
    has to know how many words come before it; the bridge then reads it with bridge_blank
    'collapse'. Transcripts are capped at Q tokens; one that cannot fit (repeats need a blank
    between them) contributes 0. Per-example loss divided by its target length, batch mean."""
    table = whisper_table.detach().float()
    log_probs = (connector_states.float() @ table.T).log_softmax(-1).transpose(0, 1)     # (Q, B, V)
    Q, B = log_probs.shape[:2]
    lengths = whisper_mask.long().sum(1).clamp(max=Q)
    if not bool((lengths > 0).any()):
        return connector_states.sum() * 0.0
    targets = whisper_ids[:, :max(int(lengths.max()), 1)]
    return F.ctc_loss(log_probs, targets, torch.full((B,), Q, dtype=torch.long), lengths,
                      blank=blank_id, reduction="mean", zero_infinity=True)


def response_kl_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                     mask: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(teacher || student) per position (B, T, V), masked mean over positions where mask=1."""
    t = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    kl = (t.exp() * (t - s)).sum(dim=-1)                                    # (B, T)
    mask = mask.to(kl.dtype)
    return (kl * mask).sum() / mask.sum().clamp(min=1) * temperature ** 2


def transcript_ce_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Next-token cross-entropy: logits (B, T, V) predict labels (B, T) at the same positions."""
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                           ignore_index=ignore_index)
