"""Assistants by name. `load_assistant("cascade-mini")` and friends.

Local defaults run on the embedded small models (see `diva.assets`); the paper-scale entries
load by hub id and need the network (and, realistically, a GPU). `register()` adds more.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from diva.assistants.base import VoiceAssistant
from diva.errors import UnknownName

REPO_ROOT = Path(__file__).resolve().parents[2]
CHECKPOINTS = REPO_ROOT / "checkpoints"
MINI_ENCODER, MINI_LLM = "whisper-tiny.en", "smollm2-135m-instruct"


@dataclass(frozen=True)
class AssistantSpec:
    backend: str                      # diva | cascade | text | qwen2-audio
    description: str = ""             # one line for `python -m diva list`: what it is, how good
    llm: str | None = None            # LLM name / hub id (cascade, text)
    encoder: str | None = None        # Whisper name / hub id (ASR for cascade)
    checkpoint: str | None = None     # DiVA connector folder or hub id; Qwen2-Audio hub id
    options: dict = field(default_factory=dict)  # diva: changes to its stored InferenceOptions;
                                                  # cascade: n-best LLM rescoring (rescored_cascade)


ASSISTANTS: dict[str, AssistantSpec] = {
    "text-mini": AssistantSpec(
        "text", "SmolLM2-135M on the true transcript: the ceiling a speech LLM is measured against",
        llm=MINI_LLM),
    "cascade-mini": AssistantSpec(
        "cascade", "Whisper tiny.en transcribes, SmolLM2-135M answers: 73.7% of spoken questions answered",
        llm=MINI_LLM, encoder=MINI_ENCODER),
    "cascade-mini-rescored": AssistantSpec(
        "cascade", "the cascade with diva-mini-whisper-beam's LLM rescoring of Whisper's 8-best (the fair "
        "control): 73.6% vs 48.6% answered on unheard voices", llm=MINI_LLM, encoder=MINI_ENCODER,
        options={"n_best": 8}),
    "diva-mini": AssistantSpec(
        "diva", "the paper's recipe at CPU scale: replies start like the teacher's, but the content words "
        "do not come through (0% answered)", checkpoint=str(CHECKPOINTS / "diva-mini")),
    "diva-mini-whisper": AssistantSpec(
        "diva", "connector trained with CTC behind the vocabulary bridge, read greedily: 65.8% answered "
        "(cascade 73.7%)", checkpoint=str(CHECKPOINTS / "diva-mini-whisper")),
    "diva-mini-whisper-beam": AssistantSpec(
        "diva", "the same connector read by an LLM-rescored CTC beam: 78.9% answered on the test voices "
        "(cascade 73.7%), fewer on unheard ones", checkpoint=str(CHECKPOINTS / "diva-mini-whisper"),
        options={"bridge_decode": "llm-beam"}),
    "diva-llama3-8b": AssistantSpec(
        "diva", "the released DiVA (whisper-large-v3 + Llama 3 8B Instruct); needs the network and a GPU",
        checkpoint="WillHeld/DiVA-llama-3-v0-8b"),
    "cascade-llama3-8b": AssistantSpec(
        "cascade", "whisper-large-v3 -> Llama 3 8B Instruct; needs the network and a GPU",
        llm="meta-llama/Meta-Llama-3-8B-Instruct", encoder="openai/whisper-large-v3"),
    "text-llama3-8b": AssistantSpec(
        "text", "Llama 3 8B Instruct on the true transcript; needs the network and a GPU",
        llm="meta-llama/Meta-Llama-3-8B-Instruct"),
    "qwen2-audio-7b": AssistantSpec(
        "qwen2-audio", "Qwen2-Audio-7B-Instruct through transformers; needs the network and a GPU",
        checkpoint="Qwen/Qwen2-Audio-7B-Instruct"),
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
        from diva.assistants.rescored_cascade import RescoredCascadeAssistant
        cls = RescoredCascadeAssistant if spec.options else CascadeAssistant  # options: its n-best rescoring
        return cls(name, *load_whisper(spec.encoder), *load_llm(spec.llm), **spec.options)
    if spec.backend == "diva":
        from diva.assistants.diva import DivaAssistant
        from diva.checkpoint import load_diva
        local = spec.checkpoint.count("/") != 1 or Path(spec.checkpoint).exists()
        if local and not (Path(spec.checkpoint) / "config.json").exists():
            raise AssistantNotAvailable(f"{name}: no trained checkpoint at {spec.checkpoint}; "
                                        "train/configs/ holds the config that trains each one")
        return DivaAssistant(name, load_diva(spec.checkpoint, options=spec.options))
    if spec.backend == "qwen2-audio":
        from diva.assistants.qwen2_audio import Qwen2AudioAssistant
        return Qwen2AudioAssistant.from_pretrained(name, spec.checkpoint)
    raise ValueError(f"unknown backend {spec.backend!r} for {name}")


def find_assistant(name: str) -> AssistantSpec:
    """The spec registered under `name`, or one for the DiVA connector in the folder `name`;
    an unknown name raises UnknownName (nothing is loaded)."""
    if name in ASSISTANTS:
        return ASSISTANTS[name]
    if (Path(name) / "config.json").exists():
        return AssistantSpec("diva", checkpoint=name)
    raise UnknownName("assistant", name, ASSISTANTS, extra=", or a DiVA checkpoint folder")


@functools.lru_cache(maxsize=None)
def load_assistant(name: str) -> VoiceAssistant:
    """Load (once per process) the assistant registered under `name`, or the DiVA connector in
    the folder `name` (a research variant, or a run's `final/`)."""
    return build(name, find_assistant(name))
