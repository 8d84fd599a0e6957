"""The one audio loader: anything a user or Gradio hands us -> 16 kHz mono float32.

Accepted: a file path (wav, flac, mp3, ogg, ... via soundfile, with ffmpeg as fallback),
encoded file bytes, a 1-D/2-D numpy array (assumed 16 kHz), `(rate, array)` as Gradio gives it,
and what `datasets` gives: `{"array", "sampling_rate"}`, `{"bytes", "path"}` or a torchcodec
`AudioDecoder`. Bad input raises `AudioError`.
"""
from __future__ import annotations

import io
import shutil
import stat
import subprocess
import warnings
from pathlib import Path
from typing import Union

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16_000
WINDOW_SECONDS = 30.0  # Whisper's encoder window
MAX_FILE_BYTES = 200 * 1024 * 1024
MAX_DECODED_SECONDS = 3600  # ffmpeg decodes at most this much (a small file may hold hours)
SILENCE_PEAK = 1e-4  # peak amplitude below which we call a clip silent

AudioInput = Union[str, Path, bytes, np.ndarray, tuple, dict]


class AudioError(ValueError):
    """Audio that cannot be used, with a message meant for a person."""


class LongAudioWarning(UserWarning):
    """The clip is longer than a window that reads it whole; only the first part is heard."""


def _read_file(path: Path) -> tuple[np.ndarray, int]:
    """A regular file's bytes, decoded; at most MAX_FILE_BYTES + 1 bytes are ever read (a device
    or a pipe reports size 0, so the size alone proves nothing)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise AudioError(f"audio file not found: {path}") from None
    except OSError as error:
        raise AudioError(f"cannot open {path}: {error.strerror}") from None
    if stat.S_ISDIR(mode):
        raise AudioError(f"a folder, not an audio file: {path}")
    if not stat.S_ISREG(mode):
        raise AudioError(f"not a regular file (a device, pipe or socket?): {path}")
    try:
        with open(path, "rb") as f:
            encoded = f.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise AudioError(f"cannot read {path}: {error.strerror}") from None
    if len(encoded) > MAX_FILE_BYTES:
        raise AudioError(f"audio file is larger than {MAX_FILE_BYTES // 2**20} MB: {path}")
    return _decode(encoded, path.name)


def _decode(encoded: bytes, label: str) -> tuple[np.ndarray, int]:
    """Decode file bytes with soundfile, or ffmpeg for what it can't read (mp3 variants, m4a, webm)."""
    if len(encoded) == 0:
        raise AudioError(f"audio file is empty: {label}")
    if len(encoded) > MAX_FILE_BYTES:
        raise AudioError(f"audio is larger than {MAX_FILE_BYTES // 2**20} MB: {label}")
    try:
        data, rate = sf.read(io.BytesIO(encoded), dtype="float32", always_2d=False)
        return data, rate
    except Exception as sf_error:
        if shutil.which("ffmpeg") is None:
            raise AudioError(f"cannot read audio file {label}: {sf_error}") from None
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", "pipe:0", "-t", str(MAX_DECODED_SECONDS),
               "-f", "wav", "-ac", "1", "-ar", str(SAMPLE_RATE), "-"]
        done = subprocess.run(cmd, input=encoded, capture_output=True)
        if done.returncode != 0 or len(done.stdout) <= 44:
            raise AudioError(f"cannot read audio file {label}: not a supported audio format") from None
        data, rate = sf.read(io.BytesIO(done.stdout), dtype="float32")
        return data, rate


def _to_float(data: np.ndarray) -> np.ndarray:
    if data.dtype.kind == "i":
        return data.astype(np.float32) / float(np.iinfo(data.dtype).max + 1)
    if data.dtype.kind == "u":  # 8-bit PCM is unsigned, centred on 128
        half = (np.iinfo(data.dtype).max + 1) / 2
        return (data.astype(np.float32) - half) / half
    if data.dtype.kind == "f":
        return data.astype(np.float32)
    raise AudioError(f"audio samples must be numbers, got dtype {data.dtype}")


def _to_mono(data: np.ndarray) -> np.ndarray:
    if data.ndim == 1:
        return data
    if data.ndim == 2:
        # (samples, channels) from files; (channels, samples) when the short side is first
        channel_axis = 1 if data.shape[0] >= data.shape[1] else 0
        return data.mean(axis=channel_axis)
    raise AudioError(f"audio must be 1-D or 2-D, got shape {data.shape}")


def load_audio(source: AudioInput, *, sample_rate: int | None = None,
               long_audio: str = "truncate") -> np.ndarray:
    """Return 16 kHz mono float32 samples in [-1, 1].

    `sample_rate` is the rate of a bare array (default 16 kHz). Audio longer than 30 s is
    truncated with a `LongAudioWarning` (`long_audio="truncate"`) or rejected (`"error"`).
    """
    if isinstance(source, (str, Path)):
        data, rate = _read_file(Path(source))
    elif isinstance(source, (bytes, bytearray)):
        data, rate = _decode(bytes(source), "(bytes)")
    elif hasattr(source, "get_all_samples"):  # torchcodec AudioDecoder, as `datasets` decodes audio
        samples = source.get_all_samples()
        data, rate = samples.data.numpy().T, int(samples.sample_rate)
    elif isinstance(source, dict) and source.get("array") is None and source.get("bytes"):
        data, rate = _decode(source["bytes"], source.get("path") or "(bytes)")
    elif isinstance(source, dict) and source.get("array") is None and source.get("path"):
        data, rate = _read_file(Path(source["path"]))
    elif isinstance(source, tuple) and len(source) == 2:
        rate, data = source
        if not isinstance(rate, (int, np.integer)) and isinstance(data, (int, np.integer)):
            data, rate = rate, data  # (array, rate) order
    elif isinstance(source, dict) and "array" in source:
        data, rate = source["array"], source.get("sampling_rate", SAMPLE_RATE)
    elif isinstance(source, np.ndarray) or hasattr(source, "__array__"):
        data, rate = np.asarray(source), sample_rate or SAMPLE_RATE
    elif source is None:
        raise AudioError("no audio was given")
    else:
        raise AudioError(f"unsupported audio input of type {type(source).__name__}")

    data = np.asarray(data)
    rate = int(rate)
    if not 1000 <= rate <= 384_000:
        raise AudioError(f"implausible sample rate {rate} Hz")
    data = _to_mono(_to_float(data))
    if data.size == 0:
        raise AudioError("the audio is empty (0 samples)")
    if not np.all(np.isfinite(data)):
        raise AudioError("the audio contains NaN or infinite samples")
    peak = float(np.max(np.abs(data)))
    if peak < SILENCE_PEAK:
        raise AudioError("the audio is silent: nothing was recorded")
    if peak > 1.0:
        data = data / peak  # float input outside [-1, 1]: normalise instead of clipping
    if rate != SAMPLE_RATE:
        data = soxr.resample(data, rate, SAMPLE_RATE).astype(np.float32)
    if data.size < SAMPLE_RATE // 10:
        raise AudioError(f"the audio is too short ({data.size / SAMPLE_RATE:.2f} s; at least 0.1 s)")
    limit = int(WINDOW_SECONDS * SAMPLE_RATE)
    if data.size > limit:
        seconds = data.size / SAMPLE_RATE
        if long_audio == "error":
            raise AudioError(f"the audio is {seconds:.1f} s long; the limit is {WINDOW_SECONDS:.0f} s")
        warnings.warn(f"audio is {seconds:.1f} s long; only the first {WINDOW_SECONDS:.0f} s are used",
                      LongAudioWarning, stacklevel=2)
        data = data[:limit]
    return np.ascontiguousarray(data, dtype=np.float32)


def split_windows(samples: np.ndarray, seconds: float, search_seconds: float = 2.0,
                  frame_seconds: float = 0.05) -> list[np.ndarray]:
    """Consecutive pieces of at most `seconds` that together are `samples`: each piece ends at the
    quietest `frame_seconds` of its last `search_seconds`, so that a word is rarely cut in two."""
    size, hop = int(seconds * SAMPLE_RATE), max(1, int(frame_seconds * SAMPLE_RATE))
    search = min(int(search_seconds * SAMPLE_RATE), size)
    pieces, start = [], 0
    while samples.size - start > size:
        tail = samples[start + size - search:start + size]
        n = tail.size // hop
        energy = np.square(tail[:n * hop].reshape(n, hop)).mean(axis=1)
        cut = start + size - search + int(np.argmin(energy)) * hop + hop // 2
        pieces.append(samples[start:cut])
        start = cut
    return pieces + [samples[start:]]


def duration_s(samples: np.ndarray) -> float:
    return samples.size / SAMPLE_RATE
