"""DiVA on tiny random models: shapes, masks, prompt layout, batching, streaming, checkpoints."""
import json
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from diva.assistants.diva import DivaAssistant
from diva.checkpoint import (CheckpointError, load_state_into, read_checkpoint, save_connector,
                             save_released_layout)
from diva.audio import LongAudioWarning
from diva.bridge import InferenceOptions
from diva.model import DiVA, DivaConfig, encode_window
from diva.padding import pad
from diva.testing import tiny_diva, tiny_llm, tiny_tokenizer, tiny_whisper


def clips(n, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(8000 + 4000 * i) * 0.1).astype(np.float32) for i in range(n)]


@pytest.fixture(scope="module")
def model():
    return tiny_diva(n_queries=8)


def test_virtual_tokens_have_fixed_count_and_llm_width(model):
    states = model.encode(model.features(clips(3)))
    assert states.shape == (3, 1500, 32)
    virtual = model.virtual_tokens(states)
    assert virtual.shape == (3, 8, model.llm.config.hidden_size)


def test_short_encoder_window_is_whispers_forward_on_fewer_frames(model):
    features = model.features(clips(2))
    full = model.encode(features)
    assert torch.allclose(encode_window(model.encoder, features, 1500), full, atol=1e-5)
    short = tiny_diva(n_queries=8, encoder_seconds=10)
    states = short.encode(short.features(clips(2)))
    assert states.shape == (2, 500, 32)
    assert short.virtual_tokens(states).shape == (2, 8, short.llm.config.hidden_size)
    with pytest.warns(LongAudioWarning, match="first 10 s"):
        short.speech_states([np.full(16000 * 12, 0.1, dtype=np.float32)])
    with pytest.raises(ValueError, match="encoder_seconds"):
        tiny_diva(encoder_seconds=31)


def test_audio_longer_than_the_window_is_heard_window_by_window():
    short = tiny_diva(n_queries=8, encoder_seconds=10)
    rng = np.random.default_rng(1)
    long_clip = (rng.standard_normal(16000 * 23) * 0.1).astype(np.float32)  # 3 windows
    first, second = long_clip[:16000 * 10], long_clip[16000 * 10:16000 * 19]
    with warnings.catch_warnings():
        warnings.simplefilter("error", LongAudioWarning)  # nothing is cut off
        virtual, keep, heard = short.hear([long_clip, first])
    assert virtual.shape[:2] == (2, 24) and heard is None
    assert keep[0].all() and keep[1].sum() == 8      # the short clip's tokens, then padding
    assert torch.allclose(virtual[1, :8], short.virtual_tokens(short.encode(short.features([first])))[0], atol=1e-5)
    embeds, mask = short.speech_inputs([long_clip, second])
    assert int(mask[0].sum()) - int(mask[1].sum()) == 24 - 8
    short.options = InferenceOptions(window_seconds=4)      # shorter pieces than the encoder window
    assert short.hear([second])[0].shape[1] == 3 * 8 and short.hear([second[:16000 * 4]])[0].shape[1] == 8
    with pytest.raises(ValueError, match="window_seconds"):
        InferenceOptions(window_seconds=0)


def test_connector_is_initialised_from_whisper_decoder_and_independent():
    whisper = tiny_whisper()
    from transformers import WhisperFeatureExtractor
    diva = DiVA(whisper, WhisperFeatureExtractor(feature_size=80), tiny_llm(), tiny_tokenizer(),
                DivaConfig("w", "l", n_queries=4))
    source = whisper.get_decoder().state_dict()
    for key, value in diva.connector.state_dict().items():
        assert torch.equal(value, source[key])
    with torch.no_grad():
        diva.connector.layers[0].fc1.weight.add_(1.0)  # a copy: the Whisper decoder is untouched
    assert not torch.equal(diva.connector.layers[0].fc1.weight, whisper.get_decoder().layers[0].fc1.weight)


def test_unused_connector_token_table_is_neither_trained_nor_saved(model):
    assert not model.connector.embed_tokens.weight.requires_grad
    assert not any(k.startswith("connector.embed_tokens") for k in model.connector_state_dict())
    assert "connector.embed_positions.weight" in model.connector_state_dict()


def test_only_connector_parts_are_trainable(model):
    trainable = {id(p) for p in model.trainable_parameters()}
    assert all(p.requires_grad for p in model.trainable_parameters())
    assert not any(p.requires_grad for p in model.llm.parameters())
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert all(id(p) not in trainable for p in model.llm.parameters())


def test_too_many_queries_is_refused():
    with pytest.raises(ValueError, match="n_queries"):
        tiny_diva(n_queries=65)  # tiny Whisper has 64 decoder positions


def test_audio_layout_is_prefix_prompt_virtual_suffix(model):
    virtual = torch.randn(1, 8, model.llm.config.hidden_size)
    embeds, mask = model.audio_inputs(virtual, ["Translate:"])
    before, after = model.layout.around_audio("Translate:")
    assert embeds.shape[1] == len(before) + 8 + len(after)
    assert torch.equal(embeds[0, len(before):len(before) + 8], virtual[0])
    assert torch.equal(embeds[0, :len(before)], model.embed_ids(before))
    rendered = model.tokenizer.decode(before + after)
    assert rendered.startswith("<|im_start|>user\nTranslate:\n") and rendered.endswith("<|im_start|>assistant\n")


def test_text_branch_matches_chat_template(model):
    ids = model.layout.text_ids("What is the capital of France?")
    expected = model.tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}], add_generation_prompt=True, tokenize=True)
    expected = expected["input_ids"] if hasattr(expected, "keys") else expected
    assert ids == list(expected)


def test_pad_masks_and_zeros_on_either_side():
    rows = [torch.ones(2, 3), torch.ones(4, 3) * 2]
    embeds, mask = pad(rows)
    assert mask.tolist() == [[0, 0, 1, 1], [1, 1, 1, 1]]
    assert embeds[0, :2].abs().sum() == 0 and torch.all(embeds[0, 2:] == 1)
    ids, mask = pad([[5, 6], [], [7]], side="right")
    assert ids.tolist() == [[5, 6], [0, 0], [7, 0]] and mask.tolist() == [[1, 1], [0, 0], [1, 0]]
    assert pad([[], []], side="right")[0].shape == (2, 1)      # empty rows still have a shape
    with pytest.raises(ValueError, match="side"):
        pad(rows, side="middle")


def test_last_hidden_ignores_left_padding(model):
    embeds, mask = model.text_inputs(["Hello there", "What is the capital of France? Tell me"])
    batched = model.last_hidden(embeds, mask)
    single = model.last_hidden(*model.text_inputs(["Hello there"]))
    torch.testing.assert_close(batched[0], single[0], atol=1e-5, rtol=1e-4)


def test_batched_greedy_equals_one_at_a_time(model):
    assistant = DivaAssistant("tiny", model)
    audios = clips(3)
    prompts = [None, "Translate this sentence into German.", "Hello"]
    batched = assistant.generate(audios, prompts, max_new_tokens=12)
    single = [assistant.generate([a], [p], max_new_tokens=12)[0] for a, p in zip(audios, prompts)]
    assert batched == single
    texts = ["What is the capital of France?", "Hello there, how are you?"]
    assert assistant.generate(transcripts=texts, max_new_tokens=10) == \
        [assistant.generate(transcripts=[t], max_new_tokens=10)[0] for t in texts]


def test_stream_concatenates_to_generated_text(model):
    assistant = DivaAssistant("tiny", model)
    audio = clips(1, seed=3)[0]
    stream = assistant.stream(audio, "Hello", max_new_tokens=16)
    deltas = list(stream)
    assert len(deltas) >= 1
    assert "".join(deltas).strip() == assistant.generate([audio], ["Hello"], max_new_tokens=16)[0]
    reply = stream.reply
    assert reply.ttft_s is not None and reply.ttft_s > 0 and reply.total_s >= reply.ttft_s


def test_our_checkpoint_round_trip(model, tmp_path):
    save_connector(model, tmp_path / "ours")
    config, state, raw = read_checkpoint(tmp_path / "ours")
    assert raw["projection_layout"] == "out_in" and config.n_queries == 8 and config.encoder_seconds == 30
    save_connector(tiny_diva(n_queries=8, encoder_seconds=10), tmp_path / "short")
    assert read_checkpoint(tmp_path / "short")[0].encoder_seconds == 10
    other = tiny_diva(n_queries=8, seed=1)
    load_state_into(other, state)
    for key, value in model.connector_state_dict().items():
        assert torch.equal(other.connector_state_dict()[key], value), key


def test_released_layout_round_trip_puts_every_tensor_in_place(model, tmp_path):
    folder = save_released_layout(model, tmp_path / "released")
    raw_state = load_file(str(folder / "model.safetensors"))
    d_llm, d_whisper = model.projection.weight.shape
    assert raw_state["projection.weight"].shape == (d_whisper, d_llm)  # stored transposed
    assert raw_state["query_tokens"].shape == (8, d_whisper)
    assert any(k.startswith("connector.layers.0.encoder_attn.") for k in raw_state)
    assert "connector.embed_tokens.weight" in raw_state  # the whole Whisper-decoder state dict
    config_json = json.loads((folder / "config.json").read_text())
    assert {"reference_encoder", "reference_decoder"} <= set(config_json)
    config, state, _ = read_checkpoint(folder)
    assert (config.encoder, config.llm, config.n_queries) == ("tiny-whisper", "tiny-llama", 8)
    other = tiny_diva(n_queries=8, seed=2)
    load_state_into(other, state)
    assert torch.equal(other.projection.weight, model.projection.weight)
    for key, value in model.connector_state_dict().items():
        assert torch.equal(other.connector_state_dict()[key], value), key


def test_checkpoint_errors_are_clear(model, tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint folder"):
        read_checkpoint(tmp_path / "missing")
    save_connector(model, tmp_path / "ok")
    _, state, _ = read_checkpoint(tmp_path / "ok")
    with pytest.raises(CheckpointError, match="does not fit"):
        load_state_into(tiny_diva(n_queries=8), {k: v for k, v in state.items() if k != "query_tokens"})
    with pytest.raises(CheckpointError, match="query_tokens"):
        load_state_into(tiny_diva(n_queries=4), state)
