"""The one audio loader: formats, channels, rates, sample types, and clear errors."""
import shutil
import subprocess
import warnings

import numpy as np
import pytest
import soundfile as sf

from diva.audio import SAMPLE_RATE, AudioError, LongAudioWarning, load_audio, split_windows


def tone(seconds=1.0, rate=SAMPLE_RATE, freq=440.0):
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg"])
def test_reads_files_and_resamples(tmp_path, fmt):
    path = tmp_path / f"clip.{fmt}"
    sf.write(path, tone(1.0, 44_100), 44_100)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.size - SAMPLE_RATE) <= 2


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
def test_reads_mp3_through_ffmpeg(tmp_path):
    wav, mp3 = tmp_path / "a.wav", tmp_path / "a.mp3"
    sf.write(wav, tone(1.0, 22_050), 22_050)
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(wav), str(mp3)], check=True)
    audio = load_audio(mp3)
    assert 0.9 * SAMPLE_RATE < audio.size < 1.2 * SAMPLE_RATE
    assert np.max(np.abs(audio)) > 0.1


def test_gradio_tuple_stereo_int16():
    stereo = (np.stack([tone(), tone()], axis=1) * 32767).astype(np.int16)
    audio = load_audio((48_000, stereo))
    assert audio.ndim == 1 and abs(audio.size - SAMPLE_RATE / 3) <= 2
    assert 0.45 < np.max(np.abs(audio)) <= 0.51  # int16 scaled to [-1, 1]


def test_channels_first_array_and_dataset_dict():
    audio = load_audio({"array": np.stack([tone(), tone()]), "sampling_rate": SAMPLE_RATE})
    assert audio.shape == (SAMPLE_RATE,)


@pytest.mark.parametrize("bad, message", [
    (np.zeros(0, np.float32), "empty"),
    (np.zeros(SAMPLE_RATE, np.float32), "silent"),
    (np.full(SAMPLE_RATE, np.nan, np.float32), "NaN"),
    (np.array([np.inf] * 100, np.float32), "NaN or infinite"),
    (tone(0.01), "too short"),
])
def test_bad_arrays_raise_clear_errors(bad, message):
    with pytest.raises(AudioError, match=message):
        load_audio(bad)


def test_bad_files_raise_clear_errors(tmp_path):
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "nope.wav")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        load_audio(empty)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00garbage" * 50)
    with pytest.raises(AudioError, match="cannot read"):
        load_audio(corrupt)


def test_bad_rate_and_types():
    with pytest.raises(AudioError, match="sample rate"):
        load_audio((5, tone()))
    with pytest.raises(AudioError, match="unsupported"):
        load_audio(12345)


def test_long_audio_is_truncated_with_a_warning_or_refused():
    long = tone(31.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        audio = load_audio(long)
    assert audio.size == 30 * SAMPLE_RATE
    assert any(issubclass(w.category, LongAudioWarning) for w in caught)
    with pytest.raises(AudioError, match="31.0 s long"):
        load_audio(long, long_audio="error")


def test_encoded_bytes_and_dataset_dicts(tmp_path):
    path = tmp_path / "clip.flac"
    sf.write(path, tone(0.5, 22_050), 22_050)
    from_bytes = load_audio(path.read_bytes())
    assert from_bytes.shape == (SAMPLE_RATE // 2,)
    assert np.allclose(load_audio({"bytes": path.read_bytes(), "path": "clip.flac"}), from_bytes)
    assert np.allclose(load_audio({"bytes": None, "path": str(path)}), from_bytes)
    with pytest.raises(AudioError, match="empty"):
        load_audio(b"")


def test_torchcodec_decoder_as_datasets_gives_it(tmp_path):
    decoders = pytest.importorskip("torchcodec.decoders")
    path = tmp_path / "clip.wav"
    sf.write(path, np.stack([tone(1.0, 8000)] * 2, axis=1), 8000)
    audio = load_audio(decoders.AudioDecoder(str(path)))
    assert audio.shape == (SAMPLE_RATE,) and np.max(np.abs(audio)) > 0.4


def test_only_regular_files_are_read_and_never_past_the_limit(tmp_path, monkeypatch):
    import os
    import threading
    import diva.audio
    with pytest.raises(AudioError, match="a folder, not an audio file"):
        load_audio(tmp_path)
    with pytest.raises(AudioError, match="not a regular file"):
        load_audio("/dev/null")  # a device reports size 0, whatever it holds
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    refused = []  # a pipe without a writer would block a reader forever: it is never opened
    reader = threading.Thread(target=lambda: refused.append(pytest.raises(AudioError, load_audio, fifo)), daemon=True)
    reader.start()
    reader.join(10)
    assert refused and "not a regular file" in str(refused[0].value)
    monkeypatch.setattr(diva.audio, "MAX_FILE_BYTES", 100)  # /proc files are regular, of size 0, and not empty
    with pytest.raises(AudioError, match="audio file is larger than"):
        load_audio("/proc/self/maps")


def test_long_audio_splits_into_windows_at_quiet_points():
    rng = np.random.default_rng(0)
    speech = lambda s: (rng.standard_normal(int(s * SAMPLE_RATE)) * 0.3).astype(np.float32)
    pause = np.zeros(int(0.3 * SAMPLE_RATE), dtype=np.float32)
    audio = np.concatenate([speech(8.9), pause, speech(8.0), pause, speech(2.0)])  # 19.5 s
    pieces = split_windows(audio, 10.0)
    assert len(pieces) == 3 and np.array_equal(np.concatenate(pieces), audio)
    ends = np.cumsum([p.size for p in pieces]) / SAMPLE_RATE
    assert 8.9 <= ends[0] <= 9.2 and 17.2 <= ends[1] <= 17.5  # cut inside the pauses
    assert [p.size for p in split_windows(audio[:SAMPLE_RATE * 10], 10.0)] == [SAMPLE_RATE * 10]
    noise = speech(25.0)                                    # no pause: still at most 10 s each
    assert all(p.size <= 10 * SAMPLE_RATE for p in split_windows(noise, 10.0))
    assert sum(p.size for p in split_windows(noise, 10.0)) == noise.size
