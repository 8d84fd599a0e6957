"""Configs: one YAML file per recipe, plus `section.key=value` overrides from the command line.

    cfg = load_config("train/configs/mini.yaml", ["train.steps=200", "corpus.n_train=2000"])
    cfg["train"]["steps"]  # -> 200

Values in overrides are parsed as YAML (`lr=3e-4` is a float, `voices=[a,b]` a list).
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path

import yaml

NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


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
            raise ValueError(f"override {item!r} is not key=value")
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


def load_config(path: str | Path, overrides: list[str] | None = None) -> dict:
    """A YAML config; `base: other.yaml` (beside it) is loaded first and overlaid."""
    path = Path(path)
    cfg = yaml.safe_load(path.read_text()) or {}
    if "base" in cfg:
        cfg = merge(load_config(path.parent / cfg.pop("base")), cfg)
        cfg.pop("config_path", None)
    cfg = copy.deepcopy(cfg)
    for key, value in parse_overrides(overrides or []):
        _set(cfg, key, value)
    cfg.setdefault("config_path", str(path))
    return cfg


def fingerprint(obj) -> str:
    """A short stable hash of any JSON-able value."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
