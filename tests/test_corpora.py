"""Real corpora by name, on local fixtures in CommonVoice's schema (never the network)."""
import io

import numpy as np
import pytest
import soundfile as sf

from train.corpora import KNOWN, load_asr_corpus
from train.data import audio_array


def _fixture_rows(n=3, rate=48_000):
    rows = []
    for i in range(n):
        t = np.arange(int(rate * (0.5 + 0.25 * i))) / rate
        buf = io.BytesIO()
        sf.write(buf, (0.3 * np.sin(2 * np.pi * 220 * (i + 1) * t)).astype(np.float32), rate, format="WAV")
        rows.append({"client_id": f"spk{i % 2}", "path": f"clip{i}.mp3", "sentence": f"Sentence number {i}.",
                     "audio": {"bytes": buf.getvalue(), "path": f"clip{i}.wav"}, "up_votes": i})
    return rows


@pytest.fixture
def common_voice_like(tmp_path):
    from datasets import Audio, Dataset
    ds = Dataset.from_list(_fixture_rows()).cast_column("audio", Audio(sampling_rate=48_000))
    ds.save_to_disk(str(tmp_path / "cv"))
    (tmp_path / "pq").mkdir()
    ds.to_parquet(str(tmp_path / "pq" / "train-00000.parquet"))
    return tmp_path


def test_common_voice_schema_from_saved_dataset(common_voice_like):
    spec = KNOWN["common_voice_17_en"]
    assert (spec.path, spec.config, spec.text_column) == ("mozilla-foundation/common_voice_17_0", "en", "sentence")
    ds = load_asr_corpus(str(common_voice_like / "cv"), text_column="sentence", speaker_column="client_id")
    assert set(ds.column_names) == {"audio", "transcript", "voice", "source"}
    assert ds["transcript"] == [f"Sentence number {i}." for i in range(3)]
    assert ds["voice"] == ["spk0", "spk1", "spk0"]
    audio = audio_array(ds[2]["audio"])          # 48 kHz stored -> 16 kHz float32
    assert audio.dtype == np.float32 and abs(audio.size - 16_000) < 50


def test_parquet_folder_and_max_examples(common_voice_like):
    ds = load_asr_corpus(str(common_voice_like / "pq"), text_column="sentence", max_examples=2)
    assert len(ds) == 2 and ds[0]["voice"] == "pq"


def test_missing_column_is_reported(common_voice_like):
    with pytest.raises(KeyError, match="no column 'text'"):
        load_asr_corpus(str(common_voice_like / "cv"))
