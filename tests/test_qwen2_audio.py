"""The Qwen2-Audio backend on a tiny random Qwen2AudioForConditionalGeneration."""
import copy

import numpy as np
import pytest
import torch
from transformers import (Qwen2AudioConfig, Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor,
                          WhisperFeatureExtractor)

from diva.assistants.qwen2_audio import Qwen2AudioAssistant
from diva.testing import tiny_tokenizer


@pytest.fixture(scope="module")
def assistant():
    tokenizer = copy.deepcopy(tiny_tokenizer())
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]})
    processor = Qwen2AudioProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=128), tokenizer=tokenizer)
    torch.manual_seed(0)
    config = Qwen2AudioConfig(
        audio_config=dict(d_model=32, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=64,
                          num_mel_bins=128, max_source_positions=1500),
        text_config=dict(model_type="qwen2", vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id),
        audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"))
    model = Qwen2AudioForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return Qwen2AudioAssistant("qwen2-audio-tiny", model, processor)


def test_audio_reaches_the_model(assistant):
    rng = np.random.default_rng(0)
    noise = (rng.standard_normal(16000) * 0.3).astype(np.float32)
    t = np.arange(32000) / 16000
    chirp = (0.5 * np.sin(2 * np.pi * (200 + 1500 * t) * t)).astype(np.float32)
    inputs, _ = assistant._audio_inputs([noise], [None])
    assert (inputs["input_ids"] == assistant.processor.audio_token_id).sum() > 0
    assert "input_features" in inputs
    # different audio -> different hidden states -> different greedy outputs
    a, b = assistant.generate([noise, chirp], max_new_tokens=12)
    logits = [assistant.model(**assistant._audio_inputs([x], [None])[0]).logits[0, -1] for x in (noise, chirp)]
    assert not torch.allclose(logits[0], logits[1])
    assert a != b


def test_batched_equals_single_and_text_modality(assistant):
    rng = np.random.default_rng(1)
    audios = [(rng.standard_normal(16000 + 8000 * i) * 0.2).astype(np.float32) for i in range(2)]
    batched = assistant.generate(audios, ["hi", None], max_new_tokens=8)
    single = [assistant.generate([a], [p], max_new_tokens=8)[0] for a, p in zip(audios, ["hi", None])]
    assert batched == single
    text = assistant.generate(transcripts=["What is the capital of France?"], max_new_tokens=6)
    assert isinstance(text[0], str)
