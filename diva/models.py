"""The one model loader: Whisper (encoder/ASR) and the text LLM, by embedded name, hub id or folder.

Embedded names (`whisper-tiny.en`, `whisper-base`, `smollm2-135m-instruct`) resolve to the
converted copies in $DIVA_HOME (see `diva.assets`); anything else goes to `from_pretrained`
unchanged, so `openai/whisper-large-v3` or `meta-llama/Meta-Llama-3-8B-Instruct` work for users
with the network. Loaded models are cached per process and shared (they are frozen).
"""
from __future__ import annotations

import functools

import torch
from transformers import (AutoModelForCausalLM, AutoTokenizer, WhisperFeatureExtractor,
                          WhisperForConditionalGeneration, WhisperTokenizerFast)

from diva.assets import resolve


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype() -> torch.dtype:
    """float32 on CPU (bf16 matmuls are slow there); bf16 on GPUs, as in the paper."""
    return torch.bfloat16 if torch.cuda.is_available() else torch.float32


def _frozen(model: torch.nn.Module) -> torch.nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@functools.lru_cache(maxsize=None)
def load_whisper(name: str) -> tuple[WhisperForConditionalGeneration, WhisperFeatureExtractor,
                                     WhisperTokenizerFast]:
    """Whisper model (frozen), its feature extractor and tokenizer."""
    path = resolve(name)
    model = WhisperForConditionalGeneration.from_pretrained(path, dtype=default_dtype())
    model = _frozen(model).to(default_device())
    features = WhisperFeatureExtractor.from_pretrained(path)
    tokenizer = WhisperTokenizerFast.from_pretrained(path)
    return model, features, tokenizer


@functools.lru_cache(maxsize=None)
def load_llm(name: str):
    """Causal LM (frozen) and its tokenizer (with chat template)."""
    path = resolve(name)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=default_dtype())
    model = _frozen(model).to(default_device())
    tokenizer = AutoTokenizer.from_pretrained(path)
    return model, tokenizer


def quiet_transformers() -> None:
    """For command-line tools: no weight-loading bars or deprecation chatter from transformers."""
    from transformers.utils import logging
    logging.set_verbosity_error()
    logging.disable_progress_bar()
