"""DiVA training: context distillation (the paper's recipe), and the SFT and alignment stages.

    python -m train.distill --config train/configs/diva-mini.yaml [train.steps=200 ...]
    python -m train.distill --config train/configs/paper.yaml --dry-run     # the plan: data, models, memory
    accelerate launch --config_file train/configs/accelerate/ddp.yaml -m train.distill --config train/configs/paper.yaml

A config names its corpus, model, inference options and training settings, and may list
`stages`: each a partial config over the rest, run in order, each starting from the previous
stage's connector. Every stage's run folder holds metrics.csv, loss_curve.png, config.yaml and
ckpt/step-N/ checkpoints: rerunning the same command skips finished stages and resumes the
current one exactly where its last checkpoint left off, even after `kill -9`. Under
`accelerate launch` (DDP or FSDP; train/configs/accelerate/) train.batch_size is per process and
N processes compute what one process does with N times the batch (train/distributed.py).
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

from train.checkpoints import (init_connector, keep_part_of_update, latest_checkpoint, load_checkpoint, restore_rng,
                               save_checkpoint)
from diva.errors import ArgumentParser, fail
from train.config import TRAIN_DEFAULTS, ConfigError, load_config, select_stage, stages
from train.distributed import Ranks, ce_share, validation_batches
from train.frozen_cache import content_key
from train.objectives import Trainee
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
def validate(model, valid, n: int, batch: int, ranks: Ranks) -> dict:
    """Mean losses on the first n validation clips, and how often the LLM's first reply token on
    the audio equals its first reply token on the transcript; the clips are shared out over the
    processes and their sums added up."""
    n = min(n, len(valid))
    if n == 0:
        return {}
    was_training = model.training
    model.eval()
    totals: dict[str, float] = {"count": 0.0}
    for idx, counted in validation_batches(n, batch, ranks.rank, ranks.world):
        audios, keys, texts = unpack(valid.select(idx))
        out = model(audios, keys, texts, agreement=True)
        agree = out.pop("first_token_agreement")
        totals["first_token_agreement"] = totals.get("first_token_agreement", 0.0) + float(agree[:counted].sum())
        for k, v in out.items():  # batch means, weighted by the examples that count
            totals[k] = totals.get(k, 0.0) + float(v.detach()) * counted
        totals["count"] += counted
    model.train(was_training)
    totals = ranks.sum(totals)
    count = max(totals.pop("count"), 1)
    return {k: v / count for k, v in totals.items()}


# --- the loop ---------------------------------------------------------------------------------
def train(cfg: dict) -> Path:
    """One stage: train (or resume) until train.steps, then write run_dir/final (and export it).
    Under `accelerate launch` every process runs this; see train.distributed."""
    from accelerate import Accelerator
    tcfg = {**TRAIN_DEFAULTS, **cfg.get("train", {})}
    run = Path(tcfg["run_dir"])
    if tcfg["keep_update"] != 1.0 and not (0.0 < tcfg["keep_update"] < 1.0 and tcfg["init_from"]):
        raise ConfigError(f"train.keep_update {tcfg['keep_update']}: a fraction in (0, 1] of the update "
                          "from train.init_from (which must be set)")
    if not cfg.get("corpus", {}).get("hf"):
        from train.data import corpus_settings
        cfg = {**cfg, "corpus": corpus_settings(cfg)}
    # autocast follows train.precision, not accelerate's --mixed_precision
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision="no")
    if accelerator.is_main_process:
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.yaml").write_text(yaml.safe_dump({**cfg, "train": tcfg}, sort_keys=False))
    torch.manual_seed(tcfg["seed"])
    random.seed(tcfg["seed"])
    np.random.seed(tcfg["seed"])

    diva = build_model(cfg)
    core = Trainee(diva, tcfg).train()
    resume = latest_checkpoint(run)
    saved = load_checkpoint(resume, diva) if resume is not None else None  # before DDP/FSDP wrap it
    if saved is None and tcfg["init_from"]:
        init_connector(diva, tcfg["init_from"])
        accelerator.print(f"connector initialised from {tcfg['init_from']}")
    optimizer = torch.optim.AdamW(diva.trainable_parameters(), lr=tcfg["lr"], betas=tuple(tcfg["betas"]),
                                  eps=tcfg["eps"], weight_decay=tcfg["weight_decay"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(tcfg))  # stepped once per step
    trainee, optimizer = accelerator.prepare(core, optimizer)
    ranks = Ranks(accelerator, trainee, diva)
    params = diva.trainable_parameters()  # after prepare: FSDP replaces them with its shards
    step = position = 0
    if saved is not None:
        ranks.load_optimizer_state(optimizer, saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        restore_rng(saved["rng"], ranks.rank)
        step, position = saved["step"], saved["position"]
        accelerator.print(f"resumed from {resume} (step {step})")

    data = open_split(cfg, "train")
    try:
        valid = open_split(cfg, "valid")
    except (FileNotFoundError, ValueError):
        valid = None
    metrics = Metrics(run / "metrics.csv") if accelerator.is_main_process else None
    per_device, world, accum = tcfg["batch_size"], ranks.world, tcfg["grad_accum"]
    per_step = per_device * world * accum  # the global batch
    accelerator.print(f"{run}: {cfg['model']['encoder']} -> {cfg['model']['llm']}, {tcfg['loss']} loss, "
                      f"{len(data)} examples, {sum(p.numel() for p in params) / 1e6:.1f}M trainable, "
                      f"batch {per_step} = {per_device} x {world} processes x {accum}, steps {step} -> {tcfg['steps']}")
    from tqdm import tqdm
    bar = tqdm(total=tcfg["steps"], initial=step, desc="train", disable=not accelerator.is_main_process)
    model = trainee if ranks.fsdp else core  # validation: FSDP needs its wrapper, DDP must not sync
    started, window_start, window_examples = time.time(), time.time(), 0
    while step < tcfg["steps"]:
        logs: dict[str, float] = {}
        firsts = [position + micro * per_device * world for micro in range(accum)]
        micro_batches = [batch_indices(len(data), tcfg["seed"], first, per_device * world) for first in firsts]
        share = ce_share(core, data, micro_batches, world) if tcfg["loss"] == "sft" else None
        for micro, (global_idx, first) in enumerate(zip(micro_batches, firsts)):
            idx, stream = ranks.slice(global_idx, first)  # every process its own slice of the batch
            audios, keys, texts = unpack(data.select(idx))
            sync = micro == accum - 1
            with contextlib.nullcontext() if sync else accelerator.no_sync(trainee):
                out = trainee(audios, keys, texts, stream=stream, ce_denominator=share)
                accelerator.backward(out["loss"] / accum)
            for k, v in out.items():
                logs[k] = logs.get(k, 0.0) + float(v.detach()) / accum
        grad_norm = float(accelerator.clip_grad_norm_(params, tcfg["clip"]))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        logs = ranks.mean(logs)  # the global batch's losses
        step += 1
        position += per_step
        window_examples += per_step
        bar.update(1)
        bar.set_postfix(loss=f"{logs['loss']:.3f}")
        if step % tcfg["log_every"] == 0 or step == tcfg["steps"]:
            now, cache = time.time(), core.enc_cache
            counts = ranks.sum({"cache_hits": cache.hits, "cache_misses": cache.misses} if cache else {})
            if metrics:
                metrics.write({"step": step, "split": "train", **logs, "lr": scheduler.get_last_lr()[0],
                               "grad_norm": grad_norm, "examples_per_s": window_examples / (now - window_start),
                               "seconds": now - started, "peak_rss_mb": peak_rss_mb(),
                               **{k: int(v) for k, v in counts.items()}})
            window_start, window_examples = now, 0
        if valid is not None and (step % tcfg["eval_every"] == 0 or step == tcfg["steps"]):
            log_validation(accelerator, metrics, step, validate(model, valid, tcfg["eval_examples"], per_device, ranks),
                           started)
        if step % tcfg["save_every"] == 0 or step == tcfg["steps"]:
            connector, optim, rngs = ranks.connector_state(), ranks.optimizer_state(optimizer), ranks.rng_states()
            if accelerator.is_main_process:
                save_checkpoint(run, step, connector, optim, scheduler, position, tcfg["keep_checkpoints"], rngs)
                plot_curves(run)
    bar.close()
    if valid is not None and tcfg["steps"] == 0:  # a 0-step stage validates the connector it starts from
        log_validation(accelerator, metrics, 0, validate(model, valid, tcfg["eval_examples"], per_device, ranks),
                       started)
    connector = ranks.connector_state()
    if accelerator.is_main_process:
        finish(run, diva, tcfg, step, connector)
    accelerator.wait_for_everyone()  # a next stage starts from final/
    return run


def log_validation(accelerator, metrics: Metrics | None, step: int, row: dict, started: float) -> None:
    if metrics and row:
        metrics.write({"step": step, "split": "valid", **row, "seconds": time.time() - started})
    accelerator.print(f"step {step} valid: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()))


def finish(run: Path, diva, tcfg: dict, step: int, connector: dict | None = None) -> None:
    """Write the final connector (diva.checkpoint layout) and, if asked, export it with a card."""
    from diva.checkpoint import save_connector
    extra = {"trained_steps": step, "loss": tcfg["loss"]}
    if tcfg["keep_update"] != 1.0:
        connector = connector or {k: v.detach().cpu() for k, v in diva.connector_state_dict().items()}
        connector = keep_part_of_update(connector, tcfg["init_from"], tcfg["keep_update"])
        extra["keep_update"] = tcfg["keep_update"]
    save_connector(diva, run / "final", extra=extra, state=connector)
    if tcfg["export_dir"]:
        from train.export import export
        export(run, Path(tcfg["export_dir"]))


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m train.distill", description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="train/configs/diva-mini.yaml")
    parser.add_argument("--stage", help="run only this stage of the config")
    parser.add_argument("--dry-run", action="store_true", help="check the config, resolve its data and "
                        "models and print the plan (steps, tokens, memory per device); train nothing")
    parser.add_argument("overrides", nargs="*", help="section.key=value for every stage, e.g. train.steps=200")
    args = parser.parse_intermixed_args(argv)
    try:
        todo = stages(load_config(args.config), args.overrides)
        if args.stage:
            todo = [select_stage(todo, args.stage)]
    except ConfigError as error:
        return fail(error)
    if args.dry_run:
        from train.plan import print_plan
        return print_plan(todo)
    for cfg in todo:
        if not cfg.get("corpus", {}).get("hf"):
            from train.data import build, corpus_settings
            from train.distributed import main_process_first
            with main_process_first():
                build(corpus_settings(cfg))  # synthesises what the stage's corpus still lacks
        print(f"run folder: {train(cfg)}")
    return 0


if __name__ == "__main__":
    import os
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    raise SystemExit(main())
