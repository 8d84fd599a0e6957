"""Tiny random models with the real architectures, for fast offline unit tests.

Shapes, masks, batching and checkpoint layouts are exercised on these; behaviour is tested on
the real embedded models.
"""
from __future__ import annotations

import functools

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
from transformers import (LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, WhisperConfig,
                          WhisperFeatureExtractor, WhisperForConditionalGeneration)

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TINY_WHISPER, TINY_LLM = "tiny-whisper", "tiny-llama"
CORPUS = ["What is the capital of France?", "The capital of France is Paris.", "Hello there, how are you?",
          "Translate this sentence into German.", "user", "assistant", "system", "0123456789"] * 4


@functools.lru_cache(maxsize=None)
def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with a ChatML chat template (trained on a few sentences)."""
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   bos_token="<|im_start|>", chat_template=CHATML)


def tiny_llm(seed: int = 0, vocab_size: int | None = None) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    tok = tiny_tokenizer()
    config = LlamaConfig(vocab_size=vocab_size or len(tok), hidden_size=48, intermediate_size=96,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id)
    return LlamaForCausalLM(config).eval().requires_grad_(False)


def tiny_whisper(seed: int = 0) -> WhisperForConditionalGeneration:
    """A tiny random Whisper whose vocabulary is tiny_tokenizer()'s (so it can read text)."""
    torch.manual_seed(seed)
    config = WhisperConfig(vocab_size=len(tiny_tokenizer()), num_mel_bins=80, d_model=32, encoder_layers=2, decoder_layers=2,
                           encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                           decoder_ffn_dim=64, max_source_positions=1500, max_target_positions=64,
                           decoder_start_token_id=1, eos_token_id=2, pad_token_id=2, bos_token_id=1)
    return WhisperForConditionalGeneration(config).eval().requires_grad_(False)


def tiny_diva(n_queries: int = 8, seed: int = 0, encoder_seconds: float = 30.0, projection: str = "linear",
              options=None):
    """A DiVA on tiny random Whisper and Llama models (both speak tiny_tokenizer())."""
    from diva.model import DiVA, DivaConfig
    whisper, llm_model = tiny_whisper(seed), tiny_llm(seed)
    torch.manual_seed(seed)
    return DiVA(whisper, WhisperFeatureExtractor(feature_size=80), llm_model, tiny_tokenizer(),
                DivaConfig(encoder=TINY_WHISPER, llm=TINY_LLM, n_queries=n_queries,
                           encoder_seconds=encoder_seconds, projection=projection),
                whisper_tokenizer=tiny_tokenizer(), options=options)


def save_tiny_models(folder, seed: int = 0) -> tuple[str, str]:
    """Write the tiny Whisper and Llama (with their tokenizer and Whisper's feature extractor) as
    Hugging Face folders under `folder`, so configs and checkpoints can name them like any
    model: returns (whisper folder, llm folder)."""
    from pathlib import Path
    folder = Path(folder)
    whisper_dir, llm_dir = folder / TINY_WHISPER, folder / TINY_LLM
    if not (whisper_dir / "config.json").exists():
        tiny_whisper(seed).save_pretrained(whisper_dir)
        WhisperFeatureExtractor(feature_size=80).save_pretrained(whisper_dir)
        tiny_tokenizer().save_pretrained(whisper_dir)
    if not (llm_dir / "config.json").exists():
        tiny_llm(seed).save_pretrained(llm_dir)
        tiny_tokenizer().save_pretrained(llm_dir)
    return str(whisper_dir), str(llm_dir)
