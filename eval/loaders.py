"""The paper's evaluation sets, loaded by public hub id with `datasets` (network needed).

Each loader turns rows of one dataset schema into `Item`s. `data_dir=` reads local parquet
files in the same schema instead (a downloaded copy, or the fixtures under
tests/fixtures/eval/); audio columns then decode through torchcodec exactly as from the hub.

Hub ids and schemas (checked against each dataset card):
- HeySQuAD human   yijingwu/HeySQuAD_human, split validation: audio, transcription, question,
                   context, answers [{answer_start, text}], is_impossible, id, plausible_answers
                   (fixie-ai/HeySQuAD_human is the same data in more shards)
- SD-QA            WillHeld/SD-QA, split dev: id, one audio column per English dialect (aus, gbr,
                   ind_n, ind_s, irl, kenya, nga, nzl, phl, usa, zaf), answers [str], question
- IEMOCAP          Zahra99/IEMOCAP_Audio, splits session1..5: audio, label (ang, hap, neu, sad);
                   no transcripts, so no text modality. We test on session5.
- MELD             TwinkStart/MELD, split test: Utterance, Speaker, Emotion (neutral, joy, sadness,
                   anger, fear, disgust, surprise), Sentiment, Dialogue_ID, Utterance_ID, audio
                   (ajyy/MELD_audio needs a loading script, which datasets 5 no longer runs)
- MUStARD          DynamicSuperb/SarcasmDetection_Mustard, split test: file, audio, utterance,
                   speaker, context [str], context_speakers, show, label (bool), instruction
- URFunny          SALT-NLP/URFunny_humor, split test: audio, label, punchline, context, file_id
- CoVoST 2         fixie-ai/covost2, configs en_ar, en_de, en_id, en_ja, en_ta, en_tr, en_zh-CN,
                   split test: client_id, file, audio, sentence, translation, id.
                   (facebook/covost2 is a loading script that needs a local CommonVoice 4 copy
                   passed as data_dir; datasets 5 cannot run it.)
"""
from __future__ import annotations

import glob
import os
from typing import Any, Iterable

import numpy as np

from diva.audio import load_audio
from eval.item import Item

SDQA_DIALECTS = ("aus", "gbr", "ind_n", "ind_s", "irl", "kenya", "nga", "nzl", "phl", "usa", "zaf")
COVOST_TARGETS = {"ar": "en_ar", "de": "en_de", "id": "en_id", "ja": "en_ja", "ta": "en_ta",
                  "tr": "en_tr", "zh": "en_zh-CN"}
LANGUAGE_NAMES = {"ar": "Arabic", "de": "German", "id": "Indonesian", "ja": "Japanese",
                  "ta": "Tamil", "tr": "Turkish", "zh": "Chinese", "fr": "French", "es": "Spanish"}


# ---- reading rows and audio -----------------------------------------------------------------
def open_split(hub_id: str, split: str, config: str | None = None, data_dir: str | None = None):
    """A `datasets.Dataset`: from the hub, or from local parquet files in `data_dir`.

    With a local copy of several configs, `data_dir/<config>/` is used when it exists.
    """
    from datasets import load_dataset
    if data_dir:
        root = os.path.join(data_dir, config) if config and os.path.isdir(
            os.path.join(data_dir, config)) else data_dir
        files = sorted(glob.glob(os.path.join(root, "**", "*.parquet"), recursive=True))
        named = [f for f in files if os.path.basename(f).startswith(split)]
        if not (named or files):
            raise FileNotFoundError(f"no parquet files under {root}")
        return load_dataset("parquet", data_files=named or files, split="train")
    return load_dataset(hub_id, config, split=split)


def audio_array(value: Any) -> np.ndarray:
    """16 kHz mono float32 from whatever a dataset holds (AudioDecoder, {array, sampling_rate},
    {bytes, path}, a path or an array): `diva.audio.load_audio` reads them all."""
    return load_audio(value)


def _limited(rows: Iterable[dict], limit: int | None) -> Iterable[dict]:
    for i, row in enumerate(rows):
        if limit is not None and i >= limit:
            return
        yield row


# ---- spoken QA ------------------------------------------------------------------------------
def heysquad(limit: int | None = None, data_dir: str | None = None) -> list[Item]:
    """Answerable HeySQuAD human questions; the passage goes in the text prompt."""
    ds = open_split("yijingwu/HeySQuAD_human", "validation", data_dir=data_dir)
    answerable = (row for row in ds if not row.get("is_impossible") and row["answers"])
    return [Item(item_id=str(row["id"]), reference=sorted({a["text"] for a in row["answers"]}),
                 transcript=row["question"], audio=row["audio"],
                 fields={"context": row["context"], "question": row["question"]})
            for row in _limited(answerable, limit)]


def sdqa(limit: int | None = None, data_dir: str | None = None) -> list[Item]:
    """SD-QA dev (English): each question once per dialect; subset = dialect. `limit` counts
    questions, so every dialect gets the same ones."""
    ds = open_split("WillHeld/SD-QA", "dev", data_dir=data_dir)
    items = []
    for row in _limited((r for r in ds if r["answers"]), limit):
        for dialect in SDQA_DIALECTS:
            if row.get(dialect) is None:
                continue
            items.append(Item(item_id=f"{row['id']}:{dialect}", reference=list(row["answers"]),
                              transcript=row["question"], audio=row[dialect], subset=dialect,
                              fields={"question": row["question"]}))
    return items


# ---- emotion, sarcasm, humour ---------------------------------------------------------------
def iemocap(limit: int | None = None, data_dir: str | None = None,
            split: str = "session5") -> list[Item]:
    ds = open_split("Zahra99/IEMOCAP_Audio", split, data_dir=data_dir)
    names = ds.features["label"].names
    return [Item(item_id=f"{split}-{i}", reference=names[row["label"]], audio=row["audio"])
            for i, row in enumerate(_limited(ds, limit))]


def meld(limit: int | None = None, data_dir: str | None = None) -> list[Item]:
    ds = open_split("TwinkStart/MELD", "test", data_dir=data_dir)
    return [Item(item_id=f"{row['Dialogue_ID']}_{row['Utterance_ID']}",
                 reference=row["Emotion"].strip().lower(), transcript=row["Utterance"],
                 audio=row["audio"])
            for row in _limited(ds, limit)]


def _yes_no(value: Any) -> str:
    if isinstance(value, str):
        return "yes" if value.strip().lower() in ("1", "true", "yes", "humor", "funny") else "no"
    return "yes" if bool(value) else "no"


def mustard(limit: int | None = None, data_dir: str | None = None) -> list[Item]:
    ds = open_split("DynamicSuperb/SarcasmDetection_Mustard", "test", data_dir=data_dir)
    return [Item(item_id=str(row["file"]), reference=_yes_no(row["label"]),
                 transcript=row["utterance"], audio=row["audio"],
                 fields={"context": " ".join(row.get("context") or [])})
            for row in _limited(ds, limit)]


def urfunny(limit: int | None = None, data_dir: str | None = None) -> list[Item]:
    ds = open_split("SALT-NLP/URFunny_humor", "test", data_dir=data_dir)
    return [Item(item_id=str(row["file_id"]), reference=_yes_no(row["label"]),
                 transcript=row["punchline"], audio=row["audio"],
                 fields={"context": row.get("context") or ""})
            for row in _limited(ds, limit)]


# ---- speech translation ---------------------------------------------------------------------
def covost2(limit: int | None = None, data_dir: str | None = None,
            targets: Iterable[str] = tuple(COVOST_TARGETS)) -> list[Item]:
    """CoVoST 2 English -> each target; subset = target language code. `limit` is per target."""
    items = []
    for lang in targets:
        ds = open_split("fixie-ai/covost2", "test", config=COVOST_TARGETS[lang], data_dir=data_dir)
        items += [Item(item_id=f"{row['id']}:{lang}", reference=row["translation"],
                       transcript=row["sentence"], audio=row["audio"], subset=lang,
                       fields={"language": LANGUAGE_NAMES[lang], "target": lang})
                  for row in _limited(ds, limit)]
    return items
