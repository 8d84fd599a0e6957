"""A run's resumable checkpoints: ckpt/step-N/ holds the connector, optimizer, scheduler, RNG
states (one per process) and the data position, written atomically (tmp folder + rename), so a `kill -9` never
leaves half a checkpoint and a rerun continues exactly where the last one left off."""
from __future__ import annotations

import os
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from diva.checkpoint import CheckpointError, load_state_into, read_checkpoint


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def restore_rng(saved: dict | list[dict], rank: int) -> None:
    """This process' RNG states from a checkpoint (one dict from a one-process run, else a list
    in rank order; a process the saving run did not have takes rank 0's)."""
    states = saved if isinstance(saved, list) else [saved]
    set_rng_state(states[rank] if rank < len(states) else states[0])


def save_checkpoint(run: Path, step: int, connector: dict[str, torch.Tensor], optimizer_state: dict, scheduler,
                    position: int, keep: int, rng_states: list[dict] | None = None) -> Path:
    """`connector`: the trained weights as CPU tensors; `rng_states`: every process' (default this one's)."""
    final = run / "ckpt" / f"step-{step:07d}"
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(connector, str(tmp / "connector.safetensors"))
    torch.save({"optimizer": optimizer_state, "scheduler": scheduler.state_dict(),
                "rng": rng_states or [rng_state()], "step": step, "position": position}, tmp / "state.pt")
    os.sync()
    tmp.rename(final)
    for old in sorted((run / "ckpt").glob("step-???????"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run: Path) -> Path | None:
    done = sorted((run / "ckpt").glob("step-???????")) if (run / "ckpt").exists() else []
    return done[-1] if done else None


def load_checkpoint(path: Path, diva) -> dict:
    """Put the checkpoint's connector into `diva` (before the model is wrapped for DDP/FSDP);
    returns the rest: optimizer, scheduler, rng, step, position."""
    load_state_into(diva, load_file(str(path / "connector.safetensors")))
    return torch.load(path / "state.pt", weights_only=False)


def keep_part_of_update(state: dict, source: str, keep: float) -> dict:
    """Weight-space interpolation between the stage's start and its end (WiSE-FT, Wortsman et al.
    2022): start + keep * (end - start) for every tensor the start checkpoint shares (train()
    checks `keep` before the stage runs)."""
    _, start, _ = read_checkpoint(source)
    return {k: (start[k].double() + keep * (v.double() - start[k].double())).to(v.dtype)
            if k in start and start[k].shape == v.shape else v for k, v in state.items()}


def init_connector(diva, source: str) -> None:
    """Start from another run's connector (a checkpoint folder, e.g. an earlier stage's final/)."""
    try:
        config, state, _ = read_checkpoint(source)
    except CheckpointError as exc:
        raise CheckpointError(f"train.init_from: {exc}. Run the stage that writes it first "
                              "(the configs with several stages run them in order)") from exc
    for field in ("encoder", "llm", "n_queries", "encoder_seconds"):
        if getattr(config, field) != getattr(diva.config, field):
            raise CheckpointError(f"init_from {source}: {field} is {getattr(config, field)!r}, "
                                  f"this run's model has {getattr(diva.config, field)!r}")
    if config.projection != diva.config.projection:  # e.g. a Whisper-head stage put behind the bridge
        print(f"init_from {source}: its {config.projection} projection is replaced by this run's "
              f"{diva.config.projection}", file=sys.stderr)
        state = {k: v for k, v in state.items() if not k.startswith("projection.")}
        state.update({f"projection.{k}": v for k, v in diva.projection.state_dict().items()})
    load_state_into(diva, state)
