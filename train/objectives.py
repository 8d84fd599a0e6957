"""What DiVA is trained to do: the losses, and one training forward that returns them.

Losses, on plain tensors so they test on hand-computable cases:
- distillation_loss (the paper): unsquared L2 between the LLM's final hidden state (after the final
  norm) at the last prompt position for the audio and the text branch; batch mean.
- token_alignment_loss (the paper): L2 between the last N virtual tokens and the LLM input
  embeddings of the first N transcript tokens, N = the transcript's length capped at the query
  count; averaged over the N tokens, then over the batch. The other queries stay free.
- whisper_token_ce_loss / whisper_token_ctc_loss: the connector's own output read through Whisper's
  tied output head against the transcript's Whisper tokens, right-aligned or by CTC over all slots
  (the training of the vocabulary-bridge connector, diva.bridge).
- transcript_ce_loss: the SFT baseline's cross-entropy on the transcript after the audio.

`Trainee.forward` runs one batch: cached Whisper encoder states -> connector -> virtual tokens ->
frozen LLM, with the text branch's target cached too. `train.loss`: `distill` = distillation +
alignment; `sft` = transcript cross-entropy; `align` = the alignment terms alone (no LLM forward).
"""
from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from diva.audio import SAMPLE_RATE
from diva.padding import pad
from train.frozen_cache import FrozenCache, content_key

LOSSES = ("distill", "sft", "align")


# --- the losses -------------------------------------------------------------------------------
def distillation_loss(audio_last_hidden: torch.Tensor, text_last_hidden: torch.Tensor) -> torch.Tensor:
    """(B, d), (B, d) -> scalar: mean_b ||audio_b - text_b||_2."""
    return (audio_last_hidden.float() - text_last_hidden.float()).norm(dim=-1).mean()


def aligned_slots(n_queries: int, transcript_mask: torch.Tensor):
    """Which transcript token each query slot is aligned with: the last N_b of the Q slots take
    tokens [0, N_b), N_b = min(n_b, Q). Returns token_index (B, Q) (clamped to >= 0), active (B, Q)
    and N_b (B,)."""
    lengths = transcript_mask.long().sum(dim=1).clamp(max=n_queries)
    q = torch.arange(n_queries, device=transcript_mask.device).unsqueeze(0)
    token_index = q - (n_queries - lengths.unsqueeze(1))                    # <0 = free slot
    return token_index.clamp(min=0), token_index >= 0, lengths


def token_alignment_loss(virtual_tokens, transcript_embeds, transcript_mask) -> torch.Tensor:
    """virtual_tokens (B, Q, d); transcript_embeds (B, T, d) right-padded with mask (B, T).
    Examples with an empty transcript contribute 0."""
    token_index, active, lengths = aligned_slots(virtual_tokens.shape[1], transcript_mask)
    T, d = transcript_embeds.shape[1:]
    gathered = torch.gather(transcript_embeds.float(), 1,
                            token_index.clamp(max=max(T - 1, 0)).unsqueeze(-1).expand(-1, -1, d))
    dist = (virtual_tokens.float() - gathered).norm(dim=-1) * active        # (B, Q)
    return (dist.sum(dim=1) / lengths.clamp(min=1)).mean()


def _mean_over_selected_slots(per_slot: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
    """per_slot (M,) values at the True entries of selected (B, Q) -> mean over each example's
    selected slots, then over the batch (an example with none contributes 0)."""
    rows = selected.nonzero()[:, 0]
    per_example = torch.zeros(selected.shape[0], device=per_slot.device).index_add(0, rows, per_slot)
    return (per_example / selected.sum(1).clamp(min=1)).mean()


def whisper_token_ce_loss(connector_states, whisper_ids, whisper_mask, whisper_table,
                          blank_id: int | None = None) -> torch.Tensor:
    """Slot Q - N + i read through Whisper's frozen tied head (the token table) is asked for the
    transcript's Whisper token i; with `blank_id`, each free slot for that token (a second term
    averaged over the free slots: the bridge hands the LLM zeros there)."""
    table = whisper_table.detach().float()
    token_index, active, _ = aligned_slots(connector_states.shape[1], whisper_mask)
    states = connector_states.float()
    total = connector_states.sum() * 0.0
    if bool(active.any()):
        targets = torch.gather(whisper_ids, 1, token_index.clamp(max=max(whisper_ids.shape[1] - 1, 0)))[active]
        per_slot = F.cross_entropy(states[active] @ table.T, targets, reduction="none")
        total = total + _mean_over_selected_slots(per_slot, active)
    free = ~active
    if blank_id is not None and bool(free.any()):
        h = states[free]
        per_slot = F.cross_entropy(h @ table.T, torch.full((h.shape[0],), blank_id, device=h.device),
                                   reduction="none")
        total = total + _mean_over_selected_slots(per_slot, free)
    return total


def whisper_token_ctc_loss(connector_states, whisper_ids, whisper_mask, whisper_table, blank_id: int):
    """The slots read through Whisper's tied head, trained with CTC (blank = `blank_id`) over ALL Q
    slots: any monotonic placement of the words counts, so no slot has to know how many words come
    before it. Transcripts are capped at Q tokens; one that cannot fit contributes 0. Per-example
    loss divided by its target length, batch mean."""
    table = whisper_table.detach().float()
    log_probs = (connector_states.float() @ table.T).log_softmax(-1).transpose(0, 1)     # (Q, B, V)
    Q, B = log_probs.shape[:2]
    lengths = whisper_mask.long().sum(1).clamp(max=Q)
    if not bool((lengths > 0).any()):
        return connector_states.sum() * 0.0
    targets = whisper_ids[:, :max(int(lengths.max()), 1)]
    return F.ctc_loss(log_probs, targets, torch.full((B,), Q, dtype=torch.long), lengths,
                      blank=blank_id, reduction="mean", zero_infinity=True)


def transcript_ce_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100,
                       denominator: float | None = None) -> torch.Tensor:
    """Next-token cross-entropy: logits (B, T, V) predict labels (B, T) at the same positions.
    Mean over the labelled tokens, or their sum / `denominator` (a token-weighted mean over a
    batch split across processes and micro-batches: see train.distributed.ce_share)."""
    flat_logits, flat_labels = logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1)
    if denominator is None:
        return F.cross_entropy(flat_logits, flat_labels, ignore_index=ignore_index)
    return F.cross_entropy(flat_logits, flat_labels, ignore_index=ignore_index, reduction="sum") / denominator


# --- precision and augmentation --------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def bf16_supported(device_type: str) -> bool:
    """bf16 pays off on GPUs that have it and on CPUs with AVX-512 BF16 / AMX; elsewhere it is
    several times slower than fp32 (measured: 9x on an AVX2-only CPU), so we stay in fp32."""
    if device_type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def stream_generator(seed: int, stream_position: int) -> torch.Generator:
    """The random draws for the example at this position of the training stream: the same
    whichever process, micro-batch or resumed run takes it."""
    state = np.random.SeedSequence([seed, stream_position]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def autocast(precision: str, device: torch.device):
    if precision == "bf16" and bf16_supported(device.type):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def mask_time_spans(enc: torch.Tensor, n_frames: list[int], spans: int, width: int,
                    generators: list[torch.Generator] | None = None) -> torch.Tensor:
    """SpecAugment-style time masking on (cached) encoder states: `spans` runs of up to `width`
    frames inside each clip's own audio (its first n_frames[b] frames) take the clip's mean state.
    `generators`: one per clip (draws that do not depend on how a batch is split); default torch's."""
    enc = enc.clone()
    for b, n in enumerate(n_frames):
        n = max(1, min(n, enc.shape[1]))
        mean = enc[b, :n].mean(0)
        g = generators[b] if generators is not None else None
        for _ in range(spans):
            w = int(torch.randint(0, width + 1, (), generator=g))
            start = int(torch.randint(0, max(1, n - w + 1), (), generator=g))
            enc[b, start:start + w] = mean
    return enc


# --- one training forward --------------------------------------------------------------------
class Trainee(nn.Module):
    """Wraps DiVA so that one forward is one loss (what DDP/FSDP need to sync gradients)."""

    def __init__(self, diva, tcfg: dict):
        super().__init__()
        if tcfg["loss"] not in LOSSES:
            raise ValueError(f"train.loss must be one of {LOSSES}, got {tcfg['loss']!r}")
        if tcfg["align_whisper_weight"] and diva.whisper_tokenizer is None:
            raise ValueError("train.align_whisper_weight needs a DiVA built with Whisper's tokenizer")
        self.diva, self.tcfg = diva, tcfg
        on, root = tcfg["cache"], tcfg["cache_dir"]
        self.enc_cache = FrozenCache(root, "encoder", f"{diva.config.encoder}|frames={diva.encoder_frames}") \
            if on else None
        effective = "bf16" if tcfg["precision"] == "bf16" and bf16_supported(diva.device.type) else "fp32"
        self.text_cache = FrozenCache(root, "teacher", f"{diva.config.llm}|{effective}", dtype=np.float32) \
            if on else None

    @torch.no_grad()
    def encoder_states(self, audios: list[np.ndarray], keys: list[str]) -> torch.Tensor:
        diva = self.diva

        def compute(idx):
            return diva.encode(diva.features([audios[i] for i in idx])).float().cpu()
        states = list(compute(range(len(audios)))) if self.enc_cache is None else \
            self.enc_cache.get_or_compute(keys, compute)
        return torch.stack(states).to(diva.device, dtype=diva.query_tokens.dtype)

    @torch.no_grad()
    def teacher_states(self, transcripts: list[str]) -> torch.Tensor:
        """The text branch: the LLM's last prompt hidden state on each transcript."""
        diva = self.diva

        def compute(idx):
            embeds, mask = diva.text_inputs([transcripts[i] for i in idx])
            with autocast(self.tcfg["precision"], diva.device):
                return diva.last_hidden(embeds, mask).float().cpu()
        keys = [content_key(t) for t in transcripts]
        states = compute(range(len(transcripts))) if self.text_cache is None else \
            torch.stack(self.text_cache.get_or_compute(keys, compute))
        return states.to(diva.device)

    def forward(self, audios, keys, transcripts, stream: list[int] | None = None,
                ce_denominator: float | None = None, agreement: bool = False) -> dict[str, torch.Tensor]:
        """The losses on one batch. `stream`: each example's position in the training stream
        (seeds its time masks); `ce_denominator`: see transcript_ce_loss; `agreement`: also
        return 'first_token_agreement' per example (validation). Everything runs in here, so a
        DDP- or FSDP-wrapped Trainee computes it with its parameters in place."""
        diva, cfg = self.diva, self.tcfg
        enc = self.encoder_states(audios, keys)
        if self.training and cfg["time_masks"]:  # against overfitting the training voices
            per_second = diva.encoder_frames / diva.config.encoder_seconds  # Whisper: 50 frames/s
            frames = [round(len(a) / SAMPLE_RATE * per_second) for a in audios]
            generators = None if stream is None else [stream_generator(cfg["seed"], p) for p in stream]
            enc = mask_time_spans(enc, frames, cfg["time_masks"], cfg["time_mask_frames"], generators)
        states = diva.connector_states(enc)
        virtual, keep = diva.project(states)
        if cfg["loss"] == "align":  # the words only: the LLM is not run at all
            out = self.alignment(virtual, transcripts, states)
            out["loss"] = out.pop("align_loss")
        else:
            out = self.through_llm(virtual, keep, transcripts, states, ce_denominator)
        if agreement:
            out["first_token_agreement"] = self.first_token_agreement(virtual, keep, transcripts,
                                                                      out.pop("audio_hidden", None))
        out.pop("audio_hidden", None)
        return out

    def through_llm(self, virtual, keep, transcripts, states, ce_denominator) -> dict[str, torch.Tensor]:
        diva, cfg = self.diva, self.tcfg
        a_embeds, a_mask = diva.audio_inputs(virtual, keep=keep)
        with autocast(cfg["precision"], diva.device):
            if cfg["loss"] == "sft":
                eos = diva.tokenizer.eos_token_id
                targets = [diva.layout.transcript_ids(t) + [eos] for t in transcripts]
                embeds, mask, labels = self.with_continuation(a_embeds, a_mask, targets)
                logits = diva.llm(inputs_embeds=embeds, attention_mask=mask, use_cache=False).logits
                out = {"ce": transcript_ce_loss(logits[:, :-1], labels[:, :-1], denominator=ce_denominator)}
                return {**out, "loss": out["ce"]}
            audio_h = diva.last_hidden(a_embeds, a_mask)
            distill = distillation_loss(audio_h, self.teacher_states(transcripts))
        out = {"distill": distill, **self.alignment(virtual, transcripts, states)}
        out["loss"] = cfg["distill_weight"] * distill + out.pop("align_loss")
        out["audio_hidden"] = audio_h.detach()
        return out

    def ce_targets(self, transcripts: list[str]) -> int:
        """How many tokens the SFT cross-entropy scores on these transcripts (each + EOS)."""
        return sum(len(self.diva.layout.transcript_ids(t)) + 1 for t in transcripts)

    @torch.no_grad()
    def first_token_agreement(self, virtual, keep, transcripts, audio_hidden=None) -> torch.Tensor:
        """Per example, 1.0 where the LLM's first reply token on the audio equals its first reply
        token on the transcript."""
        diva = self.diva
        if audio_hidden is None:
            a_embeds, a_mask = diva.audio_inputs(virtual, keep=keep)
            with autocast(self.tcfg["precision"], diva.device):
                audio_hidden = diva.last_hidden(a_embeds, a_mask)
        head = diva.llm.get_output_embeddings()
        a_tok = head(audio_hidden.to(head.weight.dtype)).argmax(-1)
        t_tok = head(self.teacher_states(transcripts).to(head.weight.dtype)).argmax(-1)
        return (a_tok == t_tok).float()

    def with_continuation(self, prompt_embeds, prompt_mask, continuations: list[list[int]]):
        """Append token ids after a left-padded prompt (right-padded); labels for next-token CE."""
        P = prompt_embeds.shape[1]
        cont, cmask = pad([self.diva.embed_ids(ids).to(prompt_embeds.dtype) for ids in continuations], "right")
        labels = torch.full((len(continuations), P + cont.shape[1]), -100, dtype=torch.long, device=cont.device)
        for b, ids in enumerate(continuations):
            # the logit at position t predicts token t+1: the prompt's last position predicts ids[0]
            labels[b, P - 1:P - 1 + len(ids)] = torch.tensor(ids, device=cont.device)
        return torch.cat([prompt_embeds, cont], 1), torch.cat([prompt_mask, cmask], 1), labels

    def alignment(self, virtual, transcripts: list[str], states) -> dict[str, torch.Tensor]:
        """The paper's L2 token alignment ('align') and, when align_whisper_weight > 0, the
        connector states read through Whisper's own head ('align_whisper'); 'align_loss' is their
        weighted sum."""
        diva, cfg = self.diva, self.tcfg
        ids, mask = pad([diva.layout.transcript_ids(t) for t in transcripts], "right", device=diva.device)
        embeds = diva.llm.get_input_embeddings()(ids).detach().float()
        out = {"align": token_alignment_loss(virtual, embeds, mask)}
        out["align_loss"] = cfg["align_weight"] * out["align"]
        if cfg["align_whisper_weight"]:
            tokenizer = diva.whisper_tokenizer
            rows = [tokenizer(" " + t.strip(), add_special_tokens=False).input_ids for t in transcripts]
            w_ids, w_mask = pad(rows, "right", device=diva.device)
            table = diva.connector.embed_tokens.weight  # Whisper's token table = its tied head
            blank = tokenizer.eos_token_id              # <|endoftext|> is the blank
            if cfg["align_whisper_ctc"]:
                out["align_whisper"] = whisper_token_ctc_loss(states, w_ids, w_mask, table, blank)
            else:
                out["align_whisper"] = whisper_token_ce_loss(
                    states, w_ids, w_mask, table, blank if cfg["align_whisper_blank"] else None)
            out["align_loss"] = out["align_loss"] + cfg["align_whisper_weight"] * out["align_whisper"]
        return out
