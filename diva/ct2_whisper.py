"""CTranslate2 Whisper (`model.bin`, format version 6) -> `transformers.WhisperForConditionalGeneration`.

The binary is read with numpy alone (no CTranslate2 library). Layout, little-endian:
u32 version; str spec; u32 revision; u32 count; per variable: str name, u8 rank, rank x u32 dims,
u8 dtype, u32 byte count, raw bytes; then u32 alias count and (alias, target) string pairs.
A string is a u16 length (counting a trailing NUL) followed by its bytes.
"""
from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

SUPPORTED_VERSION = 6
_GELU = 3  # CTranslate2's ActivationType enum value for exact GELU
_BF16 = 5
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, _BF16: np.uint16}


class CT2FormatError(ValueError):
    """The file is not a CTranslate2 Whisper model this reader understands."""


@dataclass
class CT2Model:
    """Variables of a CTranslate2 model; `model[name]` follows aliases."""

    spec: str
    revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.variables[self.aliases.get(name, name)]

    def __contains__(self, name: str) -> bool:
        return self.aliases.get(name, name) in self.variables

    def scalar(self, name: str) -> int:
        return int(self[name].reshape(()))

    def count_layers(self, stack: str) -> int:
        pattern = re.compile(rf"^{stack}/layer_(\d+)/")
        found = {int(m.group(1)) for n in self.variables if (m := pattern.match(n))}
        return len(found)


class _Cursor:
    """Sequential little-endian reader over a bytes buffer."""

    def __init__(self, buf: bytes):
        self.buf, self.pos = buf, 0

    def unpack(self, fmt: str):
        value = struct.unpack_from("<" + fmt, self.buf, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        length = self.unpack("H")
        raw = self.buf[self.pos:self.pos + length]
        self.pos += length
        return raw.rstrip(b"\0").decode("utf-8")

    def array(self, dims: list[int], dtype_code: int, nbytes: int) -> np.ndarray:
        if dtype_code not in _DTYPES:
            raise CT2FormatError(f"unknown dtype code {dtype_code} at byte {self.pos}")
        if self.pos + nbytes > len(self.buf):
            raise CT2FormatError("file ends inside a variable: truncated model.bin?")
        data = np.frombuffer(self.buf, dtype=_DTYPES[dtype_code], count=nbytes // np.dtype(_DTYPES[dtype_code]).itemsize,
                             offset=self.pos)
        self.pos += nbytes
        if dtype_code == _BF16:  # bfloat16 = the top half of a float32
            data = (data.astype(np.uint32) << 16).view(np.float32)
        return data.reshape(dims)


def read_model_bin(parts: str | Path | Iterable[str | Path] | bytes) -> CT2Model:
    """Parse a CTranslate2 `model.bin`; a list of paths is read as one file split into chunks, in order."""
    if isinstance(parts, bytes):
        buf = parts
    elif isinstance(parts, (str, Path)):
        buf = Path(parts).read_bytes()
    else:
        buf = b"".join(Path(p).read_bytes() for p in parts)
    cur = _Cursor(buf)
    version = cur.unpack("I")
    if version != SUPPORTED_VERSION:
        raise CT2FormatError(f"model.bin format version {version}; this reader handles {SUPPORTED_VERSION}")
    spec, revision = cur.string(), cur.unpack("I")
    variables = {}
    for _ in range(cur.unpack("I")):
        name = cur.string()
        dims = [cur.unpack("I") for _ in range(cur.unpack("B"))]
        dtype_code, nbytes = cur.unpack("B"), cur.unpack("I")
        variables[name] = cur.array(dims, dtype_code, nbytes)
    aliases = dict((cur.string(), cur.string()) for _ in range(cur.unpack("I")))
    if cur.pos != len(buf):
        raise CT2FormatError(f"{len(buf) - cur.pos} trailing bytes after the alias table")
    return CT2Model(spec, revision, variables, aliases)


# ---------------------------------------------------------------- weights: CTranslate2 names -> HF names

def _f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


def _linear(ct2: CT2Model, src: str, dst: str, out: dict) -> None:
    out[f"{dst}.weight"] = _f32(ct2[f"{src}/weight"])
    out[f"{dst}.bias"] = _f32(ct2[f"{src}/bias"])


def _norm(ct2: CT2Model, src: str, dst: str, out: dict) -> None:
    out[f"{dst}.weight"] = _f32(ct2[f"{src}/gamma"])
    out[f"{dst}.bias"] = _f32(ct2[f"{src}/beta"])


def _split_fused(ct2: CT2Model, src: str, dst: str, names: tuple[str, ...], out: dict) -> None:
    """Un-fuse a stacked projection ([q;]k;v). Whisper's k has no bias: CTranslate2 stores zeros there."""
    weights = np.split(_f32(ct2[f"{src}/weight"]), len(names))
    biases = np.split(_f32(ct2[f"{src}/bias"]), len(names))
    for name, w, b in zip(names, weights, biases):
        out[f"{dst}.{name}_proj.weight"] = w
        if name == "k":
            if np.any(b != 0):
                raise CT2FormatError(f"{src}: the key bias is not zero; unexpected fused layout")
        else:
            out[f"{dst}.{name}_proj.bias"] = b


def _layer(ct2: CT2Model, src: str, dst: str, cross: bool, out: dict) -> None:
    _norm(ct2, f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm", out)
    _split_fused(ct2, f"{src}/self_attention/linear_0", f"{dst}.self_attn", ("q", "k", "v"), out)
    _linear(ct2, f"{src}/self_attention/linear_1", f"{dst}.self_attn.out_proj", out)
    if cross:
        _norm(ct2, f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm", out)
        _linear(ct2, f"{src}/attention/linear_0", f"{dst}.encoder_attn.q_proj", out)
        _split_fused(ct2, f"{src}/attention/linear_1", f"{dst}.encoder_attn", ("k", "v"), out)
        _linear(ct2, f"{src}/attention/linear_2", f"{dst}.encoder_attn.out_proj", out)
    _norm(ct2, f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm", out)
    _linear(ct2, f"{src}/ffn/linear_0", f"{dst}.fc1", out)
    _linear(ct2, f"{src}/ffn/linear_1", f"{dst}.fc2", out)


def whisper_state_dict(ct2: CT2Model) -> dict[str, np.ndarray]:
    """The `WhisperForConditionalGeneration` state dict (float32 numpy arrays), output projection tied."""
    out: dict[str, np.ndarray] = {}
    for conv in ("conv1", "conv2"):
        _linear(ct2, f"encoder/{conv}", f"model.encoder.{conv}", out)
    out["model.encoder.embed_positions.weight"] = _f32(ct2["encoder/position_encodings/encodings"])
    for i in range(ct2.count_layers("encoder")):
        _layer(ct2, f"encoder/layer_{i}", f"model.encoder.layers.{i}", False, out)
    _norm(ct2, "encoder/layer_norm", "model.encoder.layer_norm", out)

    out["model.decoder.embed_tokens.weight"] = _f32(ct2["decoder/embeddings/weight"])
    out["model.decoder.embed_positions.weight"] = _f32(ct2["decoder/position_encodings/encodings"])
    for i in range(ct2.count_layers("decoder")):
        _layer(ct2, f"decoder/layer_{i}", f"model.decoder.layers.{i}", True, out)
    _norm(ct2, "decoder/layer_norm", "model.decoder.layer_norm", out)
    return out


# ---------------------------------------------------------------- configs

@dataclass(frozen=True)
class SpecialTokens:
    """Whisper's control tokens, looked up by text in the shipped tokenizer.json."""

    sot: int
    eot: int
    no_timestamps: int
    prev_sot: int
    transcribe: int
    translate: int
    by_id: dict

    @classmethod
    def from_tokenizer_json(cls, path: str | Path) -> "SpecialTokens":
        added = json.loads(Path(path).read_text())["added_tokens"]
        by_text = {t["content"]: t["id"] for t in added}
        return cls(sot=by_text["<|startoftranscript|>"], eot=by_text["<|endoftext|>"],
                   no_timestamps=by_text["<|notimestamps|>"], prev_sot=by_text["<|startofprev|>"],
                   transcribe=by_text["<|transcribe|>"], translate=by_text["<|translate|>"],
                   by_id={i: t for t, i in by_text.items()})


def _id_list(value) -> list[int]:
    """CTranslate2's config.json stores some id lists as JSON text."""
    return [int(x) for x in (json.loads(value) if isinstance(value, str) else value)]


def whisper_config(ct2: CT2Model, ct2_config: dict, tokens: SpecialTokens):
    """A `WhisperConfig` matching the weights; decoding defaults come from CTranslate2's config.json."""
    from transformers import WhisperConfig

    if ct2.spec != "WhisperSpec":
        raise CT2FormatError(f"spec {ct2.spec!r} is not a Whisper model")
    for stack in ("encoder", "decoder"):
        if f"{stack}/activation" in ct2 and ct2.scalar(f"{stack}/activation") != _GELU:
            raise CT2FormatError(f"{stack}: activation is not GELU")
    vocab_size, d_model = ct2["decoder/embeddings/weight"].shape
    return WhisperConfig(
        vocab_size=int(vocab_size),
        num_mel_bins=int(ct2["encoder/conv1/weight"].shape[1]),
        d_model=int(d_model),
        encoder_layers=ct2.count_layers("encoder"),
        decoder_layers=ct2.count_layers("decoder"),
        encoder_attention_heads=ct2.scalar("encoder/num_heads"),
        decoder_attention_heads=ct2.scalar("decoder/num_heads"),
        encoder_ffn_dim=int(ct2["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        decoder_ffn_dim=int(ct2["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_source_positions=int(ct2["encoder/position_encodings/encodings"].shape[0]),
        max_target_positions=int(ct2["decoder/position_encodings/encodings"].shape[0]),
        decoder_start_token_id=tokens.sot,
        bos_token_id=tokens.eot, eos_token_id=tokens.eot, pad_token_id=tokens.eot,
        suppress_tokens=_id_list(ct2_config["suppress_ids"]),
        begin_suppress_tokens=_id_list(ct2_config["suppress_ids_begin"]),
        tie_word_embeddings=True,
    )


def generation_config(config, ct2_config: dict, tokens: SpecialTokens):
    """Whisper decoding settings: prompt tokens, suppression, languages and tasks, alignment heads."""
    from transformers import GenerationConfig

    multilingual = config.vocab_size >= 51865  # openai/whisper's own rule: .en models have 51864
    gen = GenerationConfig(
        decoder_start_token_id=tokens.sot, bos_token_id=tokens.eot, eos_token_id=tokens.eot,
        pad_token_id=tokens.eot, max_length=config.max_target_positions,
        suppress_tokens=config.suppress_tokens, begin_suppress_tokens=config.begin_suppress_tokens,
        no_timestamps_token_id=tokens.no_timestamps, prev_sot_token_id=tokens.prev_sot,
        max_initial_timestamp_index=50, return_timestamps=False,
        alignment_heads=[list(map(int, h)) for h in ct2_config.get("alignment_heads", [])],
        is_multilingual=multilingual,
    )
    if multilingual:
        gen.lang_to_id = {tokens.by_id[i]: i for i in _id_list(ct2_config["lang_ids"])}
        gen.task_to_id = {"transcribe": tokens.transcribe, "translate": tokens.translate}
        gen.task = "transcribe"  # else, with no language given, the prompt lacks the task token
    return gen


# ---------------------------------------------------------------- the whole conversion

def convert(model_bin_parts: list[Path], ct2_config_path: Path, tokenizer_json: Path, out_dir: Path) -> None:
    """Write a Hugging Face Whisper folder: weights, config, generation config, tokenizer, processor."""
    import torch
    from transformers import (WhisperFeatureExtractor, WhisperForConditionalGeneration,
                              WhisperProcessor, WhisperTokenizer)

    ct2 = read_model_bin(model_bin_parts)
    ct2_config = json.loads(Path(ct2_config_path).read_text())
    tokens = SpecialTokens.from_tokenizer_json(tokenizer_json)
    config = whisper_config(ct2, ct2_config, tokens)
    state = {k: torch.from_numpy(v) for k, v in whisper_state_dict(ct2).items()}
    del ct2

    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    model.load_state_dict(state, strict=False, assign=True)
    model.tie_weights()
    missing = [n for n, p in model.named_parameters() if p.is_meta]
    if missing:
        raise CT2FormatError(f"weights missing after conversion: {missing[:5]}")
    model.generation_config = generation_config(config, ct2_config, tokens)
    model.save_pretrained(out_dir)

    tokenizer = WhisperTokenizer(tokenizer_file=str(tokenizer_json))
    extractor = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
    WhisperProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(out_dir)
    extractor.save_pretrained(out_dir)  # preprocessor_config.json, for loaders that read only the extractor
