"""Real speech corpora by name, in the same schema as the synthetic corpus.

    ds = load_asr_corpus("common_voice_17_en", split="train")          # CommonVoice 17 English
    ds = load_asr_corpus("some/dataset", audio_column="audio", text_column="text", config="clean")
    ds = load_asr_corpus("/path/to/saved_or_parquet", text_column="sentence")

Every result has `audio` (Audio @ 16 kHz), `transcript`, `voice` (the speaker column when the
dataset has one, else the dataset name) and `source`. Any `datasets.load_dataset` path works:
a hub id (needs the network and, for CommonVoice, accepting its terms), a folder saved with
`save_to_disk`, or a folder of parquet files.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from diva.audio import SAMPLE_RATE


@dataclass(frozen=True)
class CorpusSpec:
    path: str
    config: str | None = None
    audio_column: str = "audio"
    text_column: str = "text"
    speaker_column: str | None = None


KNOWN = {
    # the paper's training data: CommonVoice 17, English
    "common_voice_17_en": CorpusSpec("mozilla-foundation/common_voice_17_0", "en", "audio", "sentence",
                                     "client_id"),
    "librispeech_clean": CorpusSpec("openslr/librispeech_asr", "clean", "audio", "text", "speaker_id"),
}


def _open(path: str, config: str | None, split: str, streaming: bool):
    from datasets import load_dataset, load_from_disk
    local = Path(path)
    if (local / "state.json").exists():
        return load_from_disk(str(local))                           # one saved split
    if local.is_dir() and (local / split / "state.json").exists():
        return load_from_disk(str(local / split))                   # a saved DatasetDict
    if local.is_dir() and list(local.rglob("*.parquet")):
        files = sorted(str(p) for p in local.rglob("*.parquet") if split in p.stem or split in p.parent.name)
        files = files or sorted(str(p) for p in local.rglob("*.parquet"))
        return load_dataset("parquet", data_files={split: files}, split=split, streaming=streaming)
    return load_dataset(path, config, split=split, streaming=streaming)


def load_asr_corpus(name: str, split: str = "train", *, config: str | None = None,
                    audio_column: str | None = None, text_column: str | None = None,
                    speaker_column: str | None = None, streaming: bool = False,
                    max_examples: int | None = None):
    """A known corpus by short name, or any dataset path with its audio and text columns."""
    from datasets import Audio
    spec = KNOWN.get(name, CorpusSpec(name))
    spec = CorpusSpec(spec.path, config or spec.config, audio_column or spec.audio_column,
                      text_column or spec.text_column, speaker_column or spec.speaker_column)
    ds = _open(spec.path, spec.config, split, streaming)
    columns = ds.column_names if not streaming else list(ds.features or {})
    for column in (spec.audio_column, spec.text_column):
        if columns and column not in columns:
            raise KeyError(f"{spec.path} has no column {column!r}; it has {columns}")
    if max_examples is not None:
        ds = ds.take(max_examples) if streaming else ds.select(range(min(max_examples, len(ds))))
    speaker = spec.speaker_column if spec.speaker_column in (columns or []) else None
    source = Path(spec.path).name if Path(spec.path).exists() else spec.path

    def to_schema(item):
        return {"transcript": str(item[spec.text_column]).strip(),
                "voice": str(item[speaker]) if speaker else source, "source": source}

    ds = ds.cast_column(spec.audio_column, Audio(sampling_rate=SAMPLE_RATE, decode=False))
    keep = [c for c in columns if c not in (spec.audio_column,)]
    ds = ds.map(to_schema, remove_columns=keep)
    if spec.audio_column != "audio":
        ds = ds.rename_column(spec.audio_column, "audio")
    return ds
