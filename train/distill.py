"""DiVA training: context distillation (the paper's recipe), or the SFT / response-KL baselines.

    python -m train.distill --config train/configs/mini.yaml [train.steps=200 train.loss=sft ...]
    accelerate launch -m train.distill --config train/configs/paper.yaml     # multi-GPU DDP/FSDP

One step: cached Whisper encoder states -> connector -> virtual tokens -> frozen LLM (audio
branch); the text branch's target (the LLM's last prompt hidden state on the transcript) is
cached too. Losses (diva.losses): `distill` = distillation + token alignment (weights in the
config); `sft` = cross-entropy on the transcript after the audio prompt; `kl` = KL over the
text LLM's own greedy reply (generated once, cached) + token alignment; `align` = token alignment
alone (no LLM forward: a cheap warm-up stage, continued by a distill run with `train.init_from`).

The run folder holds metrics.csv, loss_curve.png, config.yaml and ckpt/step-N/ checkpoints
(connector, optimizer, scheduler, RNG states, data position): rerunning the same command resumes
exactly where the last checkpoint left off, even after `kill -9`.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import csv
import json
import math
import os
import random
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from diva.audio import SAMPLE_RATE
from diva.losses import (distillation_loss, response_kl_loss, token_alignment_ce_loss,
                         token_alignment_loss, transcript_ce_loss, whisper_token_ce_loss,
                         whisper_token_ctc_loss)
from train.config import load_config
from train.frozen_cache import FrozenCache, content_key

DEFAULT_TRAIN = dict(loss="distill", distill_weight=1.0, align_weight=1.0, align_ce_weight=0.0,
                     align_whisper_weight=0.0, align_whisper_blank=False, align_whisper_ctc=False,
                     sft_keeps_alignment=False, connector_dropout=0.0, time_masks=0, time_mask_frames=10,
                     kl_weight=1.0, kl_tokens=16,
                     batch_size=8, grad_accum=1, steps=1000, lr=1e-3, weight_decay=0.1, betas=[0.9, 0.999],
                     eps=1e-8, warmup=0.01, schedule="cosine", min_lr_ratio=0.0, clip=1.0, precision="bf16",
                     cache=True, cache_dir="cache/train", eval_every=500,
                     eval_examples=120, save_every=250, keep_checkpoints=2, log_every=20, seed=0,
                     run_dir="results/train/runs/diva-mini", export_dir=None, max_seconds=None,
                     init_from=None, trainable="all")


# --- model and data ---------------------------------------------------------------------------------
def build_model(model_cfg: dict):
    from diva.model import DiVA, DivaConfig
    options = dict(encoder_seconds=model_cfg.get("encoder_seconds", 30.0),
                   projection=model_cfg.get("projection", "linear"),
                   bridge_temperature=model_cfg.get("bridge_temperature", 1.0),
                   bridge_blank=model_cfg.get("bridge_blank", "zero"),
                   n_extra_slots=model_cfg.get("n_extra_slots", 0))
    if model_cfg.get("encoder") == "tiny-random":  # tests: tiny random Whisper and Llama
        from diva.testing import tiny_diva
        return tiny_diva(n_queries=model_cfg.get("n_queries", 8), seed=model_cfg.get("seed", 0), **options)
    return DiVA.from_config(DivaConfig(encoder=model_cfg["encoder"], llm=model_cfg["llm"],
                                       n_queries=model_cfg["n_queries"], **options))


def whisper_transcript_ids(tokenizer, text: str) -> list[int]:
    """The transcript as Whisper's decoder writes it: a leading space, no special tokens."""
    return tokenizer(" " + text.strip(), add_special_tokens=False).input_ids


def open_split(cfg: dict, split: str):
    """The training or validation examples: the synthetic corpus, or a real corpus by name."""
    corpus = cfg.get("corpus", {})
    if corpus.get("hf"):  # e.g. {hf: common_voice_17_en, splits: {train: train, valid: validation}}
        from train.corpora import load_asr_corpus
        split_name = corpus.get("splits", {}).get(split, split)
        return load_asr_corpus(corpus["hf"], split_name, text_column=corpus.get("text_column"),
                               audio_column=corpus.get("audio_column"), max_examples=corpus.get(f"max_{split}"))
    from train.data import corpus_dir, corpus_settings, first_clip, load_corpus, without_small_places
    settings = corpus_settings(cfg)
    start = first_clip(settings, split)
    data = load_corpus(corpus_dir(settings), split, start=start)
    n = settings["n_train" if split == "train" else "n_valid"] - start  # a grown corpus: up to the config's n
    data = data.select(range(n)) if len(data) > n else data
    if split == "train" and settings["min_place_population"]:
        data = without_small_places(data, settings["min_place_population"])
    return data


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def batch_indices(n: int, seed: int, position: int, size: int) -> list[int]:
    """Examples [position, position + size) of the endless stream of shuffled epochs."""
    out = []
    while len(out) < size:
        epoch, offset = divmod(position, n)
        take = min(size - len(out), n - offset)
        out += epoch_order(n, seed, epoch)[offset:offset + take].tolist()
        position += take
    return out


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


def _autocast(precision: str, device: torch.device):
    if precision == "bf16" and bf16_supported(device.type):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# --- the step ---------------------------------------------------------------------------------------
def set_connector_dropout(connector, p: float) -> None:
    """Dropout in the trainable decoder copy while training (each layer's residual and feed-forward
    dropout, Whisper's own `dropout` / `activation_dropout`); eval mode, hence inference, is unchanged."""
    connector.dropout = p
    for layer in connector.layers:
        layer.dropout = layer.activation_dropout = p


def mask_time_spans(enc: torch.Tensor, n_frames: list[int], spans: int, width: int) -> torch.Tensor:
    """SpecAugment-style time masking on (cached) encoder states: `spans` runs of up to `width`
    frames inside each clip's own audio (its first n_frames[b] frames) take the clip's mean state."""
    enc = enc.clone()
    for b, n in enumerate(n_frames):
        n = max(1, min(n, enc.shape[1]))
        mean = enc[b, :n].mean(0)
        for _ in range(spans):
            w = int(torch.randint(0, width + 1, ()))
            start = int(torch.randint(0, max(1, n - w + 1), ()))
            enc[b, start:start + w] = mean
    return enc


class Trainee(nn.Module):
    """Wraps DiVA so that one forward is one loss (what DDP/FSDP need to sync gradients)."""

    def __init__(self, diva, tcfg: dict, model_id: dict):
        super().__init__()
        self.diva = diva
        self.tcfg = tcfg
        on = tcfg["cache"]
        root = tcfg["cache_dir"]
        tag = f"{model_id['encoder']}|frames={diva.encoder_frames}"
        self.enc_cache = FrozenCache(root, "encoder", tag) if on else None
        effective = "bf16" if tcfg["precision"] == "bf16" and bf16_supported(diva.device.type) else "fp32"
        self.text_cache = FrozenCache(root, "teacher", f"{model_id['llm']}|{effective}",
                                      dtype=np.float32) if on else None
        self.reply_cache = FrozenCache(root, "reply", f"{model_id['llm']}|{tcfg['kl_tokens']}",
                                       dtype=np.int64) if on else None
        if tcfg["align_whisper_weight"] and diva.whisper_tokenizer is None:
            raise ValueError("train.align_whisper_weight needs a DiVA built with Whisper's tokenizer")
        if tcfg["connector_dropout"]:
            set_connector_dropout(diva.connector, tcfg["connector_dropout"])
        if tcfg["trainable"] not in ("all", "extra"):
            raise ValueError(f"train.trainable must be 'all' or 'extra', got {tcfg['trainable']!r}")
        if tcfg["trainable"] == "extra":
            if not diva.extra_parameters():
                raise ValueError("train.trainable: extra needs model.n_extra_slots > 0")
            diva.freeze_word_slots()

    # frozen parts -----------------------------------------------------------------------------
    @torch.no_grad()
    def encoder_states(self, audios: list[np.ndarray], keys: list[str]) -> torch.Tensor:
        diva = self.diva

        def compute(idx):
            return diva.encode(diva.features([audios[i] for i in idx])).float().cpu()
        if self.enc_cache is None:
            states = list(compute(range(len(audios))))
        else:
            states = self.enc_cache.get_or_compute(keys, compute)
        return torch.stack(states).to(diva.device, dtype=diva.query_tokens.dtype)

    @torch.no_grad()
    def teacher_states(self, transcripts: list[str]) -> torch.Tensor:
        diva = self.diva

        def compute(idx):
            embeds, mask = diva.text_inputs([transcripts[i] for i in idx])
            with _autocast(self.tcfg["precision"], diva.device):
                return diva.last_hidden(embeds, mask).float().cpu()
        keys = [content_key(t) for t in transcripts]
        states = compute(range(len(transcripts))) if self.text_cache is None else \
            torch.stack(self.text_cache.get_or_compute(keys, compute))
        return states.to(diva.device)

    @torch.no_grad()
    def teacher_replies(self, transcripts: list[str]) -> list[list[int]]:
        """The text LLM's greedy reply to each transcript (first kl_tokens tokens), cached."""
        from diva.assistants.base import TokenClock
        from diva.generation import generate_ids
        diva = self.diva

        def compute(idx):
            embeds, mask = diva.text_inputs([transcripts[i] for i in idx])
            ids = generate_ids(diva.llm, diva.tokenizer, {"inputs_embeds": embeds, "attention_mask": mask},
                               self.tcfg["kl_tokens"], TokenClock())
            return [torch.tensor(r or [diva.tokenizer.eos_token_id]) for r in ids]
        keys = [content_key(t) for t in transcripts]
        if self.reply_cache is None:
            return [r.tolist() for r in compute(range(len(transcripts)))]
        return [r.long().tolist() for r in self.reply_cache.get_or_compute(keys, compute)]

    # pieces -----------------------------------------------------------------------------------
    def transcript_tokens(self, transcripts: list[str]):
        """Right-padded transcript token ids (B, T), their LLM input embeddings (B, T, d), mask (B, T)."""
        diva = self.diva
        ids, mask = right_pad_ids([diva.layout.transcript_ids(t) for t in transcripts], diva.device)
        embeds = diva.llm.get_input_embeddings()(ids).detach().float()
        return ids, embeds, mask

    def with_continuation(self, prompt_embeds, prompt_mask, continuations: list[list[int]]):
        """Append token ids after a left-padded prompt (right-padded); labels for next-token CE."""
        diva = self.diva
        longest = max(len(c) for c in continuations)
        B, P, d = prompt_embeds.shape
        cont = torch.zeros(B, longest, d, device=diva.device, dtype=prompt_embeds.dtype)
        cmask = torch.zeros(B, longest, dtype=torch.long, device=diva.device)
        labels = torch.full((B, P + longest), -100, dtype=torch.long, device=diva.device)
        for b, ids in enumerate(continuations):
            cont[b, :len(ids)] = diva.embed_ids(ids).to(prompt_embeds.dtype)
            cmask[b, :len(ids)] = 1
            # the logit at position t predicts token t+1: prompt's last position predicts ids[0]
            labels[b, P - 1:P - 1 + len(ids)] = torch.tensor(ids, device=diva.device)
        return torch.cat([prompt_embeds, cont], 1), torch.cat([prompt_mask, cmask], 1), labels

    def logits(self, embeds, mask):
        return self.diva.llm(inputs_embeds=embeds, attention_mask=mask, use_cache=False).logits

    # the loss ---------------------------------------------------------------------------------
    def forward(self, audios, keys, transcripts) -> dict[str, torch.Tensor]:
        diva, cfg = self.diva, self.tcfg
        enc = self.encoder_states(audios, keys)
        if self.training and cfg["time_masks"]:  # against overfitting the training voices
            per_second = diva.encoder_frames / diva.config.encoder_seconds  # Whisper: 50 frames/s
            frames = [round(len(a) / SAMPLE_RATE * per_second) for a in audios]
            enc = mask_time_spans(enc, frames, cfg["time_masks"], cfg["time_mask_frames"])
        states = diva.connector_states(enc)
        virtual, keep = diva.project(states)
        # the alignment losses read the word slots (the extra slots, if any, come after them)
        words, word_virtual = diva.word_states(states), virtual[:, :diva.config.n_queries]
        if cfg["loss"] == "align":  # the words only: the LLM is not run at all
            out = self.alignment(word_virtual, transcripts, words)
            return {**out, "loss": out.pop("align_loss")}
        out: dict[str, torch.Tensor] = {}
        a_embeds, a_mask = diva.audio_inputs(virtual, keep=keep)
        with _autocast(cfg["precision"], diva.device):
            if cfg["loss"] == "sft":
                eos = diva.tokenizer.eos_token_id
                targets = [diva.layout.transcript_ids(t) + [eos] for t in transcripts]
                embeds, mask, labels = self.with_continuation(a_embeds, a_mask, targets)
                out["ce"] = transcript_ce_loss(self.logits(embeds, mask)[:, :-1], labels[:, :-1])
                out["loss"] = out["ce"]
                if cfg["sft_keeps_alignment"]:  # only the LLM-side objective differs from distillation
                    out.update(self.alignment(word_virtual, transcripts, words))
                    out["loss"] = out["ce"] + out.pop("align_loss")
                return out
            if cfg["loss"] == "kl":
                replies = self.teacher_replies(transcripts)
                s_embeds, s_mask, s_labels = self.with_continuation(a_embeds, a_mask, replies)
                with torch.no_grad():
                    t_embeds, t_mask = diva.text_inputs(transcripts)
                    t_embeds, t_mask, t_labels = self.with_continuation(t_embeds, t_mask, replies)
                    t_logits = self.logits(t_embeds, t_mask)
                s_logits = self.logits(s_embeds, s_mask)
                # compare the R reply positions of both (the prompt lengths differ)
                R = max(len(r) for r in replies)
                s_sel, t_sel = s_logits[:, -R - 1:-1], t_logits[:, -R - 1:-1]
                out["kl"] = response_kl_loss(s_sel, t_sel, (s_labels[:, -R - 1:-1] != -100))
                loss = cfg["kl_weight"] * out["kl"]
            else:
                audio_h = diva.last_hidden(a_embeds, a_mask)
                self.last_audio_hidden = audio_h.detach()
                out["distill"] = distillation_loss(audio_h, self.teacher_states(transcripts))
                loss = cfg["distill_weight"] * out["distill"]
        out.update(self.alignment(word_virtual, transcripts, words))
        out["loss"] = loss + out.pop("align_loss")
        return out

    def alignment(self, virtual, transcripts: list[str], states=None) -> dict[str, torch.Tensor]:
        """The paper's L2 token alignment ('align'); when align_ce_weight > 0, the
        nearest-embedding cross-entropy ablation ('align_ce'); when align_whisper_weight > 0, the
        connector states read through Whisper's own head ('align_whisper'). 'align_loss' is
        their weighted sum."""
        cfg = self.tcfg
        ids, embeds, mask = self.transcript_tokens(transcripts)
        out = {"align": token_alignment_loss(virtual, embeds, mask)}
        out["align_loss"] = cfg["align_weight"] * out["align"]
        if cfg["align_ce_weight"]:
            table = self.diva.llm.get_input_embeddings().weight
            out["align_ce"] = token_alignment_ce_loss(virtual, ids, mask, table)
            out["align_loss"] = out["align_loss"] + cfg["align_ce_weight"] * out["align_ce"]
        if cfg["align_whisper_weight"]:
            w_ids, w_mask = self.whisper_tokens(transcripts)
            table = self.diva.connector.embed_tokens.weight  # Whisper's token table = its tied head
            blank = self.diva.whisper_tokenizer.eos_token_id
            if cfg["align_whisper_ctc"]:  # CTC over all slots, <|endoftext|> as its blank
                out["align_whisper"] = whisper_token_ctc_loss(states, w_ids, w_mask, table, blank)
            else:
                out["align_whisper"] = whisper_token_ce_loss(states, w_ids, w_mask, table,
                                                             blank if cfg["align_whisper_blank"] else None)
            out["align_loss"] = out["align_loss"] + cfg["align_whisper_weight"] * out["align_whisper"]
        return out

    def whisper_tokens(self, transcripts: list[str]):
        """Right-padded Whisper token ids of the transcripts (B, T) and their mask (B, T)."""
        tokenizer = self.diva.whisper_tokenizer
        return right_pad_ids([whisper_transcript_ids(tokenizer, t) for t in transcripts], self.diva.device)


def right_pad_ids(rows: list[list[int]], device) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id rows -> right-padded ids (B, T) and a 0/1 mask (B, T); T >= 1."""
    ids = torch.zeros(len(rows), max(1, max(len(r) for r in rows)), dtype=torch.long, device=device)
    mask = torch.zeros_like(ids)
    for b, row in enumerate(rows):
        ids[b, :len(row)] = torch.tensor(row, dtype=torch.long)
        mask[b, :len(row)] = 1
    return ids, mask


# --- schedule, checkpoints, logs --------------------------------------------------------------------
def lr_lambda(tcfg: dict):
    total, warm = tcfg["steps"], max(1, round(tcfg["warmup"] * tcfg["steps"]))
    floor = tcfg["min_lr_ratio"]

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total - warm))
        if tcfg["schedule"] == "cosine":
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
        if tcfg["schedule"] == "linear":
            return floor + (1 - floor) * (1 - progress)
        return 1.0
    return f


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def trainable_state(diva) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in diva.connector_state_dict().items()}


def save_checkpoint(run: Path, step: int, diva, optimizer, scheduler, position: int, keep: int) -> Path:
    from safetensors.torch import save_file
    final = run / "ckpt" / f"step-{step:07d}"
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in trainable_state(diva).items()}, str(tmp / "connector.safetensors"))
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_state(),
                "step": step, "position": position}, tmp / "state.pt")
    os.sync() if hasattr(os, "sync") else None
    tmp.rename(final)
    for old in sorted((run / "ckpt").glob("step-???????"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run: Path) -> Path | None:
    done = sorted((run / "ckpt").glob("step-???????")) if (run / "ckpt").exists() else []
    return done[-1] if done else None


def load_checkpoint(path: Path, diva, optimizer, scheduler) -> tuple[int, int]:
    from safetensors.torch import load_file
    from diva.checkpoint import load_state_into
    load_state_into(diva, load_file(str(path / "connector.safetensors")))
    state = torch.load(path / "state.pt", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return state["step"], state["position"]


def init_connector(diva, source: str) -> None:
    """Start from another run's connector (a checkpoint folder, e.g. an `align` stage's final/)."""
    from diva.checkpoint import CheckpointError, load_state_into, read_checkpoint
    try:
        config, state, _ = read_checkpoint(source)
    except CheckpointError as exc:
        raise CheckpointError(f"train.init_from: {exc}. Train the stage that writes it first "
                              f"(for diva-mini: --config train/configs/mini-align.yaml)") from exc
    for field in ("encoder", "llm", "n_queries", "encoder_seconds"):
        if getattr(config, field) != getattr(diva.config, field):
            raise CheckpointError(f"init_from {source}: {field} is {getattr(config, field)!r}, "
                                  f"this run's model has {getattr(diva.config, field)!r}")
    if diva.extra_parameters() and "extra_query_tokens" not in state:  # extra slots start fresh
        print(f"init_from {source}: no extra slots there; this run's {diva.config.n_extra_slots} start "
              "fresh", file=sys.stderr)
        state = {**state, **{k: v for k, v in diva.connector_state_dict().items() if k.startswith("extra_")}}
    if config.projection != diva.config.projection:  # e.g. a Whisper-head stage 1 put behind the bridge
        print(f"init_from {source}: its {config.projection} projection is replaced by this run's "
              f"{diva.config.projection}", file=sys.stderr)
        state = {k: v for k, v in state.items() if not k.startswith("projection.")}
        state.update({f"projection.{k}": v for k, v in diva.projection.state_dict().items()})
    load_state_into(diva, state)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Metrics:
    FIELDS = ["step", "split", "loss", "distill", "align", "align_ce", "align_whisper", "ce", "kl",
              "first_token_agreement",
              "lr", "grad_norm", "examples_per_s", "seconds", "peak_rss_mb", "cache_hits", "cache_misses"]

    def __init__(self, path: Path):
        self.path = path
        self.new = not path.exists()
        if not self.new:  # a resumed run keeps the columns its file started with
            with path.open(newline="") as f:
                self.FIELDS = next(csv.reader(f), None) or self.FIELDS

    def write(self, row: dict) -> None:
        with self.path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.FIELDS, extrasaction="ignore")
            if self.new:
                w.writeheader()
                self.new = False
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def plot_curves(run: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    df = pd.read_csv(run / "metrics.csv")
    keys = [k for k in ("loss", "distill", "align", "align_ce", "align_whisper", "ce", "kl")
            if k in df and df[k].notna().any()]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for split, style in (("train", "-"), ("valid", "o-")):
        part = df[df.split == split]
        for k in keys:
            if part[k].notna().any():
                axes[0].plot(part.step, part[k], style, label=f"{split} {k}", markersize=3)
    axes[0].set_xlabel("step"), axes[0].set_ylabel("loss"), axes[0].set_yscale("log"), axes[0].legend(fontsize=7)
    valid = df[df.split == "valid"]
    if "first_token_agreement" in valid and valid.first_token_agreement.notna().any():
        axes[1].plot(valid.step, valid.first_token_agreement, "o-")
    axes[1].set_xlabel("step"), axes[1].set_ylabel("first-token agreement (valid voices)"), axes[1].set_ylim(0, 1)
    fig.suptitle(run.name)
    fig.tight_layout()
    fig.savefig(run / "loss_curve.png", dpi=110)
    plt.close(fig)


# --- validation -------------------------------------------------------------------------------------
@torch.no_grad()
def validate(trainee: Trainee, valid, n: int, batch: int) -> dict:
    from train.data import audio_array
    diva = trainee.diva
    was_training = trainee.training
    trainee.eval()
    totals: dict[str, float] = {}
    agree = count = 0
    for start in range(0, min(n, len(valid)), batch):
        items = valid.select(range(start, min(start + batch, n, len(valid))))
        audios, keys, texts = _unpack(items, audio_array)
        out = trainee(audios, keys, texts)
        for k, v in out.items():
            totals[k] = totals.get(k, 0.0) + float(v.detach()) * len(texts)
        if trainee.tcfg["loss"] == "distill":
            audio_h = trainee.last_audio_hidden
        else:
            enc = trainee.encoder_states(audios, keys)
            virtual, keep = diva.project(diva.connector_states(enc))
            a_embeds, a_mask = diva.audio_inputs(virtual, keep=keep)
            with _autocast(trainee.tcfg["precision"], diva.device):
                audio_h = diva.last_hidden(a_embeds, a_mask)
        head = diva.llm.get_output_embeddings()
        a_tok = head(audio_h.to(head.weight.dtype)).argmax(-1)
        t_tok = head(trainee.teacher_states(texts).to(head.weight.dtype)).argmax(-1)
        agree += int((a_tok == t_tok).sum())
        count += len(texts)
    trainee.train(was_training)
    row = {k: v / max(count, 1) for k, v in totals.items()}
    row["first_token_agreement"] = agree / max(count, 1)
    return row


def _unpack(items, audio_array):
    audios = [audio_array(a) for a in items["audio"]]
    keys = [content_key(a["bytes"] if a.get("bytes") else a["path"]) for a in items["audio"]]
    return audios, keys, list(items["transcript"])


# --- the loop ---------------------------------------------------------------------------------------
def train(cfg: dict) -> Path:
    from accelerate import Accelerator
    from train.data import audio_array
    tcfg = {**DEFAULT_TRAIN, **cfg.get("train", {})}
    mcfg = cfg["model"]
    run = Path(tcfg["run_dir"])
    run.mkdir(parents=True, exist_ok=True)
    if not cfg.get("corpus", {}).get("hf"):
        from train.data import corpus_settings
        cfg = {**cfg, "corpus": corpus_settings(cfg)}
    (run / "config.yaml").write_text(yaml.safe_dump({**cfg, "train": tcfg}, sort_keys=False))
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    torch.manual_seed(tcfg["seed"])
    random.seed(tcfg["seed"])
    np.random.seed(tcfg["seed"])

    diva = build_model(mcfg)
    core = Trainee(diva, tcfg, mcfg).train()
    params = diva.trainable_parameters()
    optimizer = torch.optim.AdamW(params, lr=tcfg["lr"], betas=tuple(tcfg["betas"]), eps=tcfg["eps"],
                                  weight_decay=tcfg["weight_decay"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(tcfg))
    trainee, optimizer = accelerator.prepare(core, optimizer)
    step = position = 0
    resume = latest_checkpoint(run)
    if resume is not None:
        step, position = load_checkpoint(resume, diva, optimizer, scheduler)
        accelerator.print(f"resumed from {resume} (step {step})")
    elif tcfg["init_from"]:
        init_connector(diva, tcfg["init_from"])
        accelerator.print(f"connector initialised from {tcfg['init_from']}")

    data = open_split(cfg, "train")
    try:
        valid = open_split(cfg, "valid")
    except (FileNotFoundError, ValueError):
        valid = None
    metrics = Metrics(run / "metrics.csv")
    per_step = tcfg["batch_size"] * tcfg["grad_accum"]
    world, rank = accelerator.num_processes, accelerator.process_index
    accelerator.print(f"training {mcfg.get('encoder')} -> {mcfg.get('llm')}, {tcfg['loss']} loss, "
                      f"{len(data)} examples, {sum(p.numel() for p in params) / 1e6:.1f}M trainable, "
                      f"steps {step} -> {tcfg['steps']}")
    from tqdm import tqdm
    bar = tqdm(total=tcfg["steps"], initial=step, desc="train", disable=not accelerator.is_main_process)
    started, window_start, window_examples = time.time(), time.time(), 0
    while step < tcfg["steps"]:
        if tcfg["max_seconds"] and time.time() - started > tcfg["max_seconds"]:
            if accelerator.is_main_process:  # a time-boxed run still ends on a checkpoint
                save_checkpoint(run, step, diva, optimizer, scheduler, position, tcfg["keep_checkpoints"])
            break
        logs: dict[str, float] = {}
        for micro in range(tcfg["grad_accum"]):
            # every rank takes its own slice of the same global batch
            idx = batch_indices(len(data), tcfg["seed"], position + micro * tcfg["batch_size"] * world,
                                tcfg["batch_size"] * world)[rank::world]
            audios, keys, texts = _unpack(data.select(idx), audio_array)
            sync = micro == tcfg["grad_accum"] - 1
            with contextlib.nullcontext() if sync else accelerator.no_sync(trainee):
                out = trainee(audios, keys, texts)
                accelerator.backward(out["loss"] / tcfg["grad_accum"])
            for k, v in out.items():
                logs[k] = logs.get(k, 0.0) + float(v.detach()) / tcfg["grad_accum"]
        grad_norm = float(accelerator.clip_grad_norm_(params, tcfg["clip"]))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        position += per_step * world
        window_examples += per_step * world
        bar.update(1)
        bar.set_postfix(loss=f"{logs['loss']:.3f}")
        if step % tcfg["log_every"] == 0 or step == tcfg["steps"]:
            now = time.time()
            cache = core.enc_cache
            metrics.write({"step": step, "split": "train", **logs, "lr": scheduler.get_last_lr()[0],
                           "grad_norm": grad_norm, "examples_per_s": window_examples / (now - window_start),
                           "seconds": now - started, "peak_rss_mb": peak_rss_mb(),
                           "cache_hits": cache.hits if cache else None, "cache_misses": cache.misses if cache else None})
            window_start, window_examples = now, 0
        if valid is not None and (step % tcfg["eval_every"] == 0 or step == tcfg["steps"]):
            row = validate(core, valid, tcfg["eval_examples"], tcfg["batch_size"])
            metrics.write({"step": step, "split": "valid", **row, "seconds": time.time() - started})
            accelerator.print(f"step {step} valid: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()))
        if accelerator.is_main_process and (step % tcfg["save_every"] == 0 or step == tcfg["steps"]):
            save_checkpoint(run, step, diva, optimizer, scheduler, position, tcfg["keep_checkpoints"])
            plot_curves(run)
    bar.close()
    if valid is not None and tcfg["steps"] == 0:  # a 0-step run validates the connector it starts from
        row = validate(core, valid, tcfg["eval_examples"], tcfg["batch_size"])
        metrics.write({"step": 0, "split": "valid", **row, "seconds": time.time() - started})
        accelerator.print("step 0 valid: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()))
    if accelerator.is_main_process and step >= tcfg["steps"]:
        finish(run, diva, cfg, tcfg, step)
    return run


def finish(run: Path, diva, cfg: dict, tcfg: dict, step: int) -> None:
    """Write the final connector (diva.checkpoint layout) and, if asked, export it with a card."""
    from diva.checkpoint import save_connector
    extra = {"trained_steps": step, "loss": tcfg["loss"]}
    save_connector(diva, run / "final", extra=extra)
    if tcfg.get("export_dir"):
        from train.export import export
        export(run, Path(tcfg["export_dir"]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="DiVA training (context distillation / SFT / KL).")
    parser.add_argument("--config", default="train/configs/mini.yaml")
    parser.add_argument("--loss", choices=["distill", "sft", "kl", "align"], help="shortcut for train.loss=...")
    parser.add_argument("overrides", nargs="*", help="section.key=value, e.g. train.steps=200")
    args = parser.parse_intermixed_args(argv)
    overrides = list(args.overrides) + ([f"train.loss={args.loss}"] if args.loss else [])
    cfg = load_config(args.config, overrides)
    run = train(cfg)
    print(f"run folder: {run}")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    main()
