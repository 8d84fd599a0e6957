"""Arena configuration: which models battle, how often, where votes go, and the safety limits.

Read from a TOML file (default `demo/arena.toml`); command-line flags override single values.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from diva.errors import UsageError, unknown_key
from diva.generation import GenerationOptions

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = Path(__file__).with_name("arena.toml")


class ConfigError(UsageError):
    """An arena config that cannot be read, names an unknown key or holds a bad value."""


@dataclass(frozen=True)
class ModelSpec:
    """One contestant: a local registry assistant or a remote OpenAI-compatible endpoint."""
    name: str
    kind: str = "local"            # "local" | "remote"
    weight: float = 1.0
    base_url: str | None = None    # remote only, e.g. http://127.0.0.1:8001/v1
    model: str | None = None       # remote model id (defaults to `name`)
    api_key_env: str | None = None
    generation: GenerationOptions | None = None   # how its replies are decoded (None: greedy)

    def __post_init__(self):
        if self.kind not in ("local", "remote"):
            raise ConfigError(f"model {self.name!r}: kind must be 'local' or 'remote', not {self.kind!r}")
        if self.kind == "remote" and not self.base_url:
            raise ConfigError(f"remote model {self.name!r} needs base_url")
        if self.weight < 0:
            raise ConfigError(f"model {self.name!r}: weight must be >= 0")

    @property
    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None


@dataclass(frozen=True)
class Limits:
    max_upload_mb: float = 10.0
    max_audio_s: float = 30.0
    battles_per_minute: int = 6
    max_prompt_chars: int = 500
    keep_uploads_s: int = 3600   # uploaded and recorded clips are deleted from Gradio's cache after this


@dataclass(frozen=True)
class ArenaConfig:
    models: tuple[ModelSpec, ...]
    db: str = "sqlite:///results/arena/arena.db"
    audio_dir: str = "results/arena/audio"
    store_audio: bool = True
    max_new_tokens: int = 96
    limits: Limits = field(default_factory=Limits)
    pair_weights: dict[tuple[str, str], float] = field(default_factory=dict)
    fallbacks: tuple[str, ...] = ()   # local assistants that step in while fewer than two models load
    processes: bool = True            # each local model in its own server process (demo.workers)

    def __post_init__(self):
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ConfigError(f"model names must be unique: {names}")
        for a, b in self.pair_weights:
            for n in (a, b):
                if n not in names:
                    raise ConfigError(f"pair_weights names unknown model {n!r}; the models are {', '.join(names)}")

    def pair_weight(self, a: ModelSpec, b: ModelSpec) -> float:
        """Relative chance of drawing the (unordered) pair a, b."""
        for key in ((a.name, b.name), (b.name, a.name)):
            if key in self.pair_weights:
                return self.pair_weights[key]
        return a.weight * b.weight

    def options(self, spec: ModelSpec) -> GenerationOptions:
        """How `spec` decodes: its own generation options, else greedy up to max_new_tokens."""
        return spec.generation or GenerationOptions(max_new_tokens=self.max_new_tokens)

    def resolved(self, root: Path) -> "ArenaConfig":
        """The same config with a relative SQLite path and audio folder taken from `root`."""
        db = self.db
        prefix = "sqlite:///"
        if db.startswith(prefix) and not db.startswith(prefix + "/") and db != prefix + ":memory:":
            db = prefix + str(root / db[len(prefix):])
        audio = self.audio_dir if Path(self.audio_dir).is_absolute() else str(root / self.audio_dir)
        return replace(self, db=db, audio_dir=audio)


def parse_pair(key: str) -> tuple[str, str]:
    parts = [p.strip() for p in key.split(" vs ")]
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"pair_weights key must look like 'a vs b', got {key!r}")
    return parts[0], parts[1]


SCALARS = ("db", "audio_dir", "store_audio", "max_new_tokens", "processes")
TOP_KEYS = (*SCALARS, "models", "limits", "pair_weights", "fallbacks")


def check_keys(raw: dict, known, where: str = "") -> None:
    """A misspelt key is an error (with the closest known ones), never silently ignored."""
    for key in raw:
        if key not in known:
            raise ConfigError(unknown_key(key, known, where))


def config_from_dict(raw: dict) -> ArenaConfig:
    check_keys(raw, TOP_KEYS)
    check_keys(raw.get("limits", {}), [f.name for f in fields(Limits)], "limits.")
    for model in raw.get("models", []):
        check_keys(model, [f.name for f in fields(ModelSpec)], "models.")
        if "name" not in model:
            raise ConfigError(f"a [[models]] entry has no name: {model}")
    max_new_tokens = raw.get("max_new_tokens", ArenaConfig.max_new_tokens)
    models = tuple(ModelSpec(**{**m, "generation": generation_options(m, max_new_tokens)})
                   for m in raw.get("models", []))
    limits = Limits(**raw.get("limits", {}))
    pairs = {parse_pair(k): float(v) for k, v in raw.get("pair_weights", {}).items()}
    scalars = {k: raw[k] for k in SCALARS if k in raw}
    return ArenaConfig(models=models, limits=limits, pair_weights=pairs,
                       fallbacks=tuple(raw.get("fallbacks", ())), **scalars)


def generation_options(model: dict, max_new_tokens: int) -> GenerationOptions | None:
    """A [[models]] entry's `generation` table as options (max_new_tokens from the arena's own)."""
    raw = model.get("generation")
    if raw is None:
        return None
    where = f"models.{model['name']}.generation."
    if not isinstance(raw, dict):
        raise ConfigError(f"{where[:-1]} must be a table, e.g. {{ temperature = 0.7, seed = 1 }}")
    check_keys(raw, [f.name for f in fields(GenerationOptions)], where)
    try:
        return GenerationOptions(**{"max_new_tokens": max_new_tokens, **raw})
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where[:-1]}: {error}") from None


def load_config(path: str | Path = DEFAULT_CONFIG) -> ArenaConfig:
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"no arena config file {path}") from None
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{path} is not a readable TOML file: {error}") from None
    try:
        return config_from_dict(raw)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
