"""Assistants by name. `load_assistant("cascade-mini")` and friends.

Local defaults run on the embedded small models (see `diva.assets`); the paper-scale entries
load by hub id and need the network (and, realistically, a GPU). `register()` adds more.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from diva.assistants.base import VoiceAssistant

REPO_ROOT = Path(__file__).resolve().parents[2]
CHECKPOINTS = REPO_ROOT / "checkpoints"
MINI_ENCODER, MINI_LLM, MINI_QUERIES = "whisper-tiny.en", "smollm2-135m-instruct", 32


@dataclass(frozen=True)
class AssistantSpec:
    backend: str                      # diva | cascade | text | qwen2-audio
    llm: str | None = None            # LLM name / hub id (cascade, text, untrained diva)
    encoder: str | None = None        # Whisper name / hub id (ASR for cascade, encoder for diva)
    checkpoint: str | None = None     # DiVA connector folder or hub id; Qwen2-Audio hub id
    n_queries: int = MINI_QUERIES     # only for an untrained DiVA
    train_hint: str = ""              # how to make a missing checkpoint
    options: dict = field(default_factory=dict)  # diva: DivaConfig inference options (load_diva)


ASSISTANTS: dict[str, AssistantSpec] = {
    "text-mini": AssistantSpec("text", llm=MINI_LLM),
    "cascade-mini": AssistantSpec("cascade", llm=MINI_LLM, encoder=MINI_ENCODER),
    "diva-mini": AssistantSpec("diva", checkpoint=str(CHECKPOINTS / "diva-mini"),
                               train_hint="train it with `make train-mini` "
                                          "(python -m train.distill --config train/configs/mini.yaml)"),
    "sft-mini": AssistantSpec("diva", checkpoint=str(CHECKPOINTS / "sft-mini"),
                              train_hint="train it with `python -m train.distill "
                                         "--config train/configs/sft-mini.yaml`"),
    # ablation: the connector read through Whisper's own head, handed to the LLM by the vocabulary bridge
    "diva-mini-whisper": AssistantSpec("diva", checkpoint=str(CHECKPOINTS / "diva-mini-whisper"),
                                       train_hint="train it with `python -m train.distill "
                                                  "--config train/configs/mini-align-whisper.yaml`, then "
                                                  "mini-whisper.yaml"),
    # the same connector, its slots read by the CTC beam that the frozen LLM rescores (diva/ctc_beam.py)
    "diva-mini-whisper-beam": AssistantSpec("diva", checkpoint=str(CHECKPOINTS / "diva-mini-whisper"),
                                            options={"bridge_decode": "llm-beam"},
                                            train_hint="see diva-mini-whisper"),
    # an untrained connector on the mini models: for speed benchmarks and as the untrained baseline
    "diva-mini-untrained": AssistantSpec("diva", llm=MINI_LLM, encoder=MINI_ENCODER),
    "diva-llama3-8b": AssistantSpec("diva", checkpoint="WillHeld/DiVA-llama-3-v0-8b"),
    "cascade-llama3-8b": AssistantSpec("cascade", llm="meta-llama/Meta-Llama-3-8B-Instruct",
                                       encoder="openai/whisper-large-v3"),
    "text-llama3-8b": AssistantSpec("text", llm="meta-llama/Meta-Llama-3-8B-Instruct"),
    "qwen2-audio-7b": AssistantSpec("qwen2-audio", checkpoint="Qwen/Qwen2-Audio-7B-Instruct"),
}


class AssistantNotAvailable(RuntimeError):
    """The assistant exists by name but cannot be loaded here (e.g. not trained yet)."""


def register(name: str, spec: AssistantSpec) -> None:
    ASSISTANTS[name] = spec
    load_assistant.cache_clear()


def available_assistants() -> list[str]:
    return list(ASSISTANTS)


def build(name: str, spec: AssistantSpec) -> VoiceAssistant:
    from diva.models import load_llm, load_whisper
    if spec.backend == "text":
        from diva.assistants.text import TextAssistant
        return TextAssistant(name, *load_llm(spec.llm))
    if spec.backend == "cascade":
        from diva.assistants.cascade import CascadeAssistant
        return CascadeAssistant(name, *load_whisper(spec.encoder), *load_llm(spec.llm))
    if spec.backend == "diva":
        from diva.assistants.diva import DivaAssistant
        from diva.checkpoint import load_diva
        from diva.model import DiVA, DivaConfig
        if spec.checkpoint is None:
            model = DiVA.from_config(DivaConfig(spec.encoder, spec.llm, spec.n_queries))
        else:
            local = not spec.checkpoint.count("/") == 1 or Path(spec.checkpoint).exists()
            if local and not (Path(spec.checkpoint) / "config.json").exists():
                raise AssistantNotAvailable(f"{name}: no trained checkpoint at {spec.checkpoint}; "
                                            f"{spec.train_hint}")
            model = load_diva(spec.checkpoint, encoder=spec.encoder, llm=spec.llm, **spec.options)
        return DivaAssistant(name, model)
    if spec.backend == "qwen2-audio":
        from diva.assistants.qwen2_audio import Qwen2AudioAssistant
        return Qwen2AudioAssistant.from_pretrained(name, spec.checkpoint)
    raise ValueError(f"unknown backend {spec.backend!r} for {name}")


@functools.lru_cache(maxsize=None)
def load_assistant(name: str) -> VoiceAssistant:
    """Load (once per process) the assistant registered under `name`."""
    if name not in ASSISTANTS:
        raise KeyError(f"unknown assistant {name!r}; known: {', '.join(ASSISTANTS)}")
    return build(name, ASSISTANTS[name])
