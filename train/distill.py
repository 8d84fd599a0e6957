"""DiVA training: context distillation (the paper's recipe), and the SFT and alignment stages.

    python -m train.distill --config train/configs/diva-mini.yaml [train.steps=200 ...]
    accelerate launch -m train.distill --config train/configs/paper.yaml     # multi-GPU DDP/FSDP

A config names its corpus, model, inference options and training settings, and may list
`stages`: each a partial config over the rest, run in order, each starting from the previous
stage's connector. Every stage's run folder holds metrics.csv, loss_curve.png, config.yaml and
ckpt/step-N/ checkpoints: rerunning the same command skips finished stages and resumes the
current one exactly where its last checkpoint left off, even after `kill -9`.
"""
from __future__ import annotations

import contextlib
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from train.checkpoints import init_connector, latest_checkpoint, load_checkpoint, save_checkpoint
from diva.errors import ArgumentParser, fail
from train.config import TRAIN_DEFAULTS, ConfigError, load_config, select_stage, stages
from train.frozen_cache import content_key
from train.objectives import Trainee, autocast
from train.runlog import Metrics, peak_rss_mb, plot_curves

# --- model and data ---------------------------------------------------------------------------
def build_model(cfg: dict):
    from diva.bridge import InferenceOptions
    from diva.model import DiVA, DivaConfig
    return DiVA.from_config(DivaConfig(**cfg["model"]), InferenceOptions(**cfg.get("inference", {})))


def open_split(cfg: dict, split: str):
    """The training or validation examples: the synthetic corpus, or a real corpus by name."""
    corpus = cfg.get("corpus", {})
    if corpus.get("hf"):  # e.g. {hf: common_voice_17_en, splits: {train: train, valid: validation}}
        from train.corpora import load_asr_corpus
        split_name = corpus.get("splits", {}).get(split, split)
        return load_asr_corpus(corpus["hf"], split_name, text_column=corpus.get("text_column"),
                               audio_column=corpus.get("audio_column"), max_examples=corpus.get(f"max_{split}"))
    from train.data import corpus_dir, corpus_settings, first_clip, load_corpus
    settings = corpus_settings(cfg)
    start = first_clip(settings, split)
    data = load_corpus(corpus_dir(settings), split, start=start)
    n = settings["n_train" if split == "train" else "n_valid"] - start  # a grown corpus: up to the config's n
    return data.select(range(n)) if len(data) > n else data


def batch_indices(n: int, seed: int, position: int, size: int) -> list[int]:
    """Examples [position, position + size) of the endless stream of shuffled epochs."""
    out = []
    while len(out) < size:
        epoch, offset = divmod(position, n)
        take = min(size - len(out), n - offset)
        out += np.random.default_rng([seed, epoch]).permutation(n)[offset:offset + take].tolist()
        position += take
    return out


def unpack(items):
    from train.data import audio_array
    audios = [audio_array(a) for a in items["audio"]]
    keys = [content_key(a["bytes"] if a.get("bytes") else a["path"]) for a in items["audio"]]
    return audios, keys, list(items["transcript"])


def lr_lambda(tcfg: dict):
    """Linear warmup over `warmup` of the steps, then cosine or linear decay to 0 (or constant)."""
    total, warm = tcfg["steps"], max(1, round(tcfg["warmup"] * tcfg["steps"]))

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total - warm))
        if tcfg["schedule"] == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        if tcfg["schedule"] == "linear":
            return 1 - progress
        return 1.0
    return f


# --- validation -------------------------------------------------------------------------------
@torch.no_grad()
def validate(trainee: Trainee, valid, n: int, batch: int) -> dict:
    """Mean losses on the first n validation clips, and how often the LLM's first reply token on
    the audio equals its first reply token on the transcript."""
    diva = trainee.diva
    was_training = trainee.training
    trainee.eval()
    totals: dict[str, float] = {}
    agree = count = 0
    head = diva.llm.get_output_embeddings()
    for start in range(0, min(n, len(valid)), batch):
        audios, keys, texts = unpack(valid.select(range(start, min(start + batch, n, len(valid)))))
        out = trainee(audios, keys, texts)
        for k, v in out.items():
            totals[k] = totals.get(k, 0.0) + float(v.detach()) * len(texts)
        if trainee.tcfg["loss"] == "distill":
            audio_h = trainee.last_audio_hidden
        else:
            a_embeds, a_mask = diva.audio_inputs(*diva.project(diva.connector_states(trainee.encoder_states(audios, keys))))
            with autocast(trainee.tcfg["precision"], diva.device):
                audio_h = diva.last_hidden(a_embeds, a_mask)
        a_tok = head(audio_h.to(head.weight.dtype)).argmax(-1)
        t_tok = head(trainee.teacher_states(texts).to(head.weight.dtype)).argmax(-1)
        agree += int((a_tok == t_tok).sum())
        count += len(texts)
    trainee.train(was_training)
    row = {k: v / max(count, 1) for k, v in totals.items()}
    row["first_token_agreement"] = agree / max(count, 1)
    return row


# --- the loop ---------------------------------------------------------------------------------
def train(cfg: dict) -> Path:
    """One stage: train (or resume) until train.steps, then write run_dir/final (and export it)."""
    from accelerate import Accelerator
    tcfg = {**TRAIN_DEFAULTS, **cfg.get("train", {})}
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

    diva = build_model(cfg)
    core = Trainee(diva, tcfg).train()
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
    accelerator.print(f"{run}: {cfg['model']['encoder']} -> {cfg['model']['llm']}, {tcfg['loss']} loss, "
                      f"{len(data)} examples, {sum(p.numel() for p in params) / 1e6:.1f}M trainable, "
                      f"steps {step} -> {tcfg['steps']}")
    from tqdm import tqdm
    bar = tqdm(total=tcfg["steps"], initial=step, desc="train", disable=not accelerator.is_main_process)
    started, window_start, window_examples = time.time(), time.time(), 0
    while step < tcfg["steps"]:
        logs: dict[str, float] = {}
        for micro in range(tcfg["grad_accum"]):
            # every rank takes its own slice of the same global batch
            idx = batch_indices(len(data), tcfg["seed"], position + micro * tcfg["batch_size"] * world,
                                tcfg["batch_size"] * world)[rank::world]
            audios, keys, texts = unpack(data.select(idx))
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
            now, cache = time.time(), core.enc_cache
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
    if valid is not None and tcfg["steps"] == 0:  # a 0-step stage validates the connector it starts from
        row = validate(core, valid, tcfg["eval_examples"], tcfg["batch_size"])
        metrics.write({"step": 0, "split": "valid", **row, "seconds": time.time() - started})
        accelerator.print("step 0 valid: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()))
    if accelerator.is_main_process:
        finish(run, diva, tcfg, step)
    return run


def finish(run: Path, diva, tcfg: dict, step: int) -> None:
    """Write the final connector (diva.checkpoint layout) and, if asked, export it with a card."""
    from diva.checkpoint import save_connector
    save_connector(diva, run / "final", extra={"trained_steps": step, "loss": tcfg["loss"]})
    if tcfg["export_dir"]:
        from train.export import export
        export(run, Path(tcfg["export_dir"]))


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m train.distill", description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="train/configs/diva-mini.yaml")
    parser.add_argument("--stage", help="run only this stage of the config")
    parser.add_argument("overrides", nargs="*", help="section.key=value for every stage, e.g. train.steps=200")
    args = parser.parse_intermixed_args(argv)
    try:
        todo = stages(load_config(args.config), args.overrides)
        if args.stage:
            todo = [select_stage(todo, args.stage)]
    except ConfigError as error:
        return fail(error)
    for cfg in todo:
        if not cfg.get("corpus", {}).get("hf"):
            from train.data import build, corpus_settings
            build(corpus_settings(cfg))  # synthesises what the stage's corpus still lacks
        print(f"run folder: {train(cfg)}")
    return 0


if __name__ == "__main__":
    import os
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    raise SystemExit(main())
