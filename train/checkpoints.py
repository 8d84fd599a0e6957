"""A run's resumable checkpoints: ckpt/step-N/ holds the connector, optimizer, scheduler, RNG
states and the data position, written atomically (tmp folder + rename), so a `kill -9` never
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
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(run: Path, step: int, diva, optimizer, scheduler, position: int, keep: int) -> Path:
    final = run / "ckpt" / f"step-{step:07d}"
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = {k: v.detach().cpu().clone().contiguous() for k, v in diva.connector_state_dict().items()}
    save_file(state, str(tmp / "connector.safetensors"))
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_state(),
                "step": step, "position": position}, tmp / "state.pt")
    os.sync()
    tmp.rename(final)
    for old in sorted((run / "ckpt").glob("step-???????"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run: Path) -> Path | None:
    done = sorted((run / "ckpt").glob("step-???????")) if (run / "ckpt").exists() else []
    return done[-1] if done else None


def load_checkpoint(path: Path, diva, optimizer, scheduler) -> tuple[int, int]:
    """Restore everything a checkpoint holds; returns (step, data position)."""
    load_state_into(diva, load_file(str(path / "connector.safetensors")))
    state = torch.load(path / "state.pt", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return state["step"], state["position"]


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
