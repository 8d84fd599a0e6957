"""Configs: one YAML file per recipe, its defaults, its stages, and `section.key=value` overrides.

    cfg = load_config("train/configs/diva-mini.yaml")
    for stage in stages(cfg, ["train.steps=200"]): ...      # each a complete config

A file may start from one other file (`base: mini.yaml`, beside it). Its `stages` list partial
configs run in order; each stage runs in `<train.run_dir>/<stage name>` and starts from the previous
stage's connector unless it says otherwise. Values in overrides are parsed as YAML (`lr=3e-4` is a
float, `voices=[a,b]` a list) and apply to every stage. Every key is checked against the known
ones: a misspelt key is an error, never silently ignored.
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import fields
from pathlib import Path

import yaml

from diva.errors import UsageError, unknown, unknown_key

NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")

CORPUS_DEFAULTS = dict(name="mini", root="data/corpus", n_train=2000, n_valid=200, seed=0,
                       text_weights={"wordnet-examples": 0.4, "wordnet-definitions": 0.2,
                                     "wordnet-questions": 0.4},
                       speed_range=[0.85, 1.2], pitch_range=[0.88, 1.15], noise_prob=0.3,
                       snr_db=[12, 35], shard_size=250, workers=2, exclude=[],
                       pack_chars=0, pack_from=0, train_from=0)
CORPUS_OTHER_KEYS = ("texts", "voices",                        # explicit texts / voices (tests, small runs)
                     "hf", "splits", "text_column", "audio_column", "max_train", "max_valid")  # a real corpus
TRAIN_DEFAULTS = dict(loss="distill", distill_weight=1.0, align_weight=1.0, align_whisper_weight=0.0,
                      align_whisper_blank=False, align_whisper_ctc=False, time_masks=0, time_mask_frames=10,
                      batch_size=8, grad_accum=1, steps=1000, lr=1e-3, weight_decay=0.1, betas=[0.9, 0.999],
                      eps=1e-8, warmup=0.01, schedule="cosine", clip=1.0, precision="bf16", cache=True,
                      cache_dir="cache/train", eval_every=500, eval_examples=120, save_every=250,
                      keep_checkpoints=2, log_every=20, seed=0, run_dir="results/train/runs/diva",
                      export_dir=None, init_from=None, keep_update=1.0)
TOP_KEYS = ("name", "corpus", "model", "inference", "train", "stages", "config_path")


class ConfigError(UsageError):
    """A config that cannot be read or names something unknown."""


def _set(cfg: dict, dotted: str, value) -> None:
    *path, last = dotted.split(".")
    node = cfg
    for key in path:
        node = node.setdefault(key, {})
    node[last] = value


def parse_overrides(items: list[str]) -> list[tuple[str, object]]:
    out = []
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not section.key=value")
        value = yaml.safe_load(raw) if raw != "" else ""
        if isinstance(value, str) and NUMBER.match(value):
            value = float(value)  # YAML 1.1 reads 3e-4 and 1e3 as strings
        out.append((key, value))
    return out


def merge(base: dict, top: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in top.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _read(path: Path) -> dict:
    try:
        cfg = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no config file {path}") from None
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{path} is not readable YAML: {str(error).splitlines()[0]}") from None
    if cfg is None:
        return {}
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path} holds a YAML {type(cfg).__name__}; a config is a mapping of sections")
    return cfg


def load_config(path: str | Path, overrides: list[str] | None = None) -> dict:
    """A YAML config, its `base:` (one level) loaded first and overlaid, then the overrides."""
    path = Path(path)
    cfg = _read(path)
    if "base" in cfg:
        base_path = path.parent / str(cfg.pop("base"))
        if not base_path.is_file():
            raise ConfigError(f"{path}: its base {base_path} does not exist")
        base = _read(base_path)
        if "base" in base:
            raise ConfigError(f"{base_path} has a base of its own: configs inherit one level only")
        cfg = merge(base, cfg)
    for key, value in parse_overrides(overrides or []):
        _set(cfg, key, value)
    cfg.setdefault("config_path", str(path))
    return cfg


def _known_keys() -> dict[str, set[str]]:
    from diva.bridge import InferenceOptions
    from diva.model import DivaConfig
    return {"corpus": set(CORPUS_DEFAULTS) | set(CORPUS_OTHER_KEYS), "train": set(TRAIN_DEFAULTS),
            "model": {f.name for f in fields(DivaConfig)}, "inference": {f.name for f in fields(InferenceOptions)}}


def _unknown(key: str, known, where: str) -> ConfigError:
    return ConfigError(unknown_key(key, sorted(known), where))


def check_keys(cfg: dict) -> None:
    """Every section and key must be one the code reads."""
    known = _known_keys()
    for key, value in cfg.items():
        if key not in TOP_KEYS:
            raise _unknown(key, TOP_KEYS, "")
        if key in known:
            if not isinstance(value, dict):
                raise ConfigError(f"section {key!r} must be a mapping, got {value!r}")
            for sub in value:
                if sub not in known[key]:
                    raise _unknown(sub, known[key], f"{key}.")


def stages(cfg: dict, overrides: list[str] | None = None) -> list[dict]:
    """The config's stages in order, each a complete, checked config with a `name`."""
    top = {k: v for k, v in cfg.items() if k != "stages"}
    listed = cfg.get("stages")
    if listed is not None and (not isinstance(listed, list) or not all(isinstance(s, dict) for s in listed)):
        raise ConfigError("`stages` must be a list of partial configs")
    parsed = parse_overrides(overrides or [])
    out, previous = [], None
    base_run = top.get("train", {}).get("run_dir", TRAIN_DEFAULTS["run_dir"])
    for i, stage in enumerate(listed or [{}]):
        name = stage.get("name") or (cfg.get("name", "run") if not listed else f"stage-{i + 1}")
        full = merge(top, {k: v for k, v in stage.items() if k != "name"})
        full["name"] = name
        own = stage.get("train", {})
        if listed and "run_dir" not in own:
            _set(full, "train.run_dir", f"{base_run}/{name}")
        if previous is not None and "init_from" not in own:
            _set(full, "train.init_from", f"{previous}/final")
        for key, value in parsed:
            _set(full, key, value)
        check_keys(full)
        out.append(full)
        previous = full["train"]["run_dir"] if "run_dir" in full.get("train", {}) else base_run
    return out


def select_stage(todo: list[dict], name: str) -> dict:
    """The stage called `name` among a config's stages."""
    for stage in todo:
        if stage["name"] == name:
            return stage
    raise ConfigError(unknown("stage", name, [s["name"] for s in todo]))


def fingerprint(obj) -> str:
    """A short stable hash of any JSON-able value."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
