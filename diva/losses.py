"""DiVA's training losses (DESIGN.md), on plain tensors so they test on hand-computable cases.

- distillation_loss: unsquared L2 distance between the LLM's final hidden state (after the final
  norm) at the last prompt position for the audio and the text branch; batch mean.
- token_alignment_loss: L2 between the last N virtual tokens and the LLM input embeddings of the
  first N transcript tokens, N = the transcript's length capped at the query count; per-token
  distances are averaged over the N tokens, then over the batch. The other queries stay free.
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


def token_alignment_loss(virtual_tokens: torch.Tensor, transcript_embeds: torch.Tensor,
                         transcript_mask: torch.Tensor) -> torch.Tensor:
    """virtual_tokens (B, Q, d); transcript_embeds (B, T, d) right-padded with mask (B, T).

    Example b with n_b transcript tokens compares virtual tokens [Q - N_b, Q) with transcript
    tokens [0, N_b), N_b = min(n_b, Q). Examples with an empty transcript contribute 0.
    """
    B, Q, _ = virtual_tokens.shape
    T = transcript_embeds.shape[1]
    lengths = transcript_mask.long().sum(dim=1).clamp(max=Q)               # N_b
    # For each query position q: which transcript token (if any) it is aligned with.
    q = torch.arange(Q, device=virtual_tokens.device).unsqueeze(0)          # (1, Q)
    token_index = q - (Q - lengths.unsqueeze(1))                            # (B, Q); <0 = free
    active = token_index >= 0
    gathered = torch.gather(transcript_embeds.float(), 1,
                            token_index.clamp(0, max(T - 1, 0)).unsqueeze(-1)
                            .expand(-1, -1, transcript_embeds.shape[-1]))
    dist = (virtual_tokens.float() - gathered).norm(dim=-1) * active        # (B, Q)
    per_example = dist.sum(dim=1) / lengths.clamp(min=1)
    return per_example.mean()


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
