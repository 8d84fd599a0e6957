"""The datasets and splits the paper's evaluation used, in their hub schemas.

`data_dir=` reads local parquet copies in the same schema (eval.loaders.open_split), as the
offline tests do with tests/fixtures/paper/. Item ids follow the paper's per-item output files
(eval.released): the row's `id` for QA and CoVoST 2 (with ":<dialect>" / ":<lang>" appended
here), the row index for the classification sets.

- HeySQuAD  yijingwu/HeySQuAD_human, validation: items without answers dropped; golds = the
            `text` of each answer
- SD-QA     WillHeld/SD-QA, dev: one audio column per dialect; `answers`
- IEMOCAP   Zahra99/IEMOCAP_Audio, session5: label 0-3 = angry, happy, neutral, sad
- MELD      DavidCombei/Wav2Vec_MELD_Audio, test: label 0-6 = anger, disgust, fear, joy,
            neutral, sadness, surprise
- MUStARD   SALT-NLP/Mustard_sarcasm, train (the whole set): boolean `sarcasm`
- URFunny   SALT-NLP/URFunny_humor, train: `label`
- CoVoST 2  WillHeld/covost2, config en_<lang>, validation: `translation`
"""
from __future__ import annotations

from typing import Any, Iterable

from eval.item import Item
from eval.loaders import SDQA_DIALECTS, open_split

# target language code -> (hub config, the name the paper's prompt uses)
COVOST_LANGUAGES = {"ar": ("en_ar", "Arabic"), "de": ("en_de", "German"), "id": ("en_id", "Indonesian"),
                    "ja": ("en_ja", "Japanese"), "ta": ("en_ta", "Tamil"), "tr": ("en_tr", "Turkish"),
                    "zh": ("en_zh-CN", "Simplified Chinese")}
IEMOCAP_LABELS = ("angry", "happy", "neutral", "sad")
MELD_LABELS = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")


def _first(rows: Iterable[dict], limit: int | None) -> list[dict]:
    out = []
    for row in rows:
        if limit is not None and len(out) >= limit:
            break
        out.append(row)
    return out


def heysquad(limit: int | None = None, data_dir: str | None = None) -> list[Item]:
    ds = open_split("yijingwu/HeySQuAD_human", "validation", data_dir=data_dir)
    rows = _first((r for r in ds if r["answers"]), limit)
    return [Item(item_id=str(r["id"]), reference=[a["text"] for a in r["answers"]],
                 transcript=r["question"], audio=r["audio"], fields={"question": r["question"]})
            for r in rows]


def sdqa(limit: int | None = None, data_dir: str | None = None) -> list[Item]:
    """One item per question and dialect (subset = dialect); `limit` counts questions."""
    ds = open_split("WillHeld/SD-QA", "dev", data_dir=data_dir)
    return [Item(item_id=f"{r['id']}:{d}", reference=list(r["answers"]), transcript=r["question"],
                 audio=r[d], subset=d, fields={"question": r["question"]})
            for r in _first((r for r in ds if r["answers"]), limit) for d in SDQA_DIALECTS
            if r.get(d) is not None]


def _indexed_labels(hub_id: str, split: str, names: tuple[str, ...], limit, data_dir) -> list[Item]:
    ds = open_split(hub_id, split, data_dir=data_dir)
    return [Item(item_id=str(i), reference=names[int(r["label"])], audio=r["audio"])
            for i, r in enumerate(_first(ds, limit))]


def iemocap(limit: int | None = None, data_dir: str | None = None) -> list[Item]:
    return _indexed_labels("Zahra99/IEMOCAP_Audio", "session5", IEMOCAP_LABELS, limit, data_dir)


def meld(limit: int | None = None, data_dir: str | None = None) -> list[Item]:
    return _indexed_labels("DavidCombei/Wav2Vec_MELD_Audio", "test", MELD_LABELS, limit, data_dir)


def _is_yes(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "humor")
    return bool(value)


def mustard(limit: int | None = None, data_dir: str | None = None) -> list[Item]:
    ds = open_split("SALT-NLP/Mustard_sarcasm", "train", data_dir=data_dir)
    return [Item(item_id=str(i), reference="Yes" if _is_yes(r["sarcasm"]) else "No", audio=r["audio"])
            for i, r in enumerate(_first(ds, limit))]


def urfunny(limit: int | None = None, data_dir: str | None = None) -> list[Item]:
    ds = open_split("SALT-NLP/URFunny_humor", "train", data_dir=data_dir)
    return [Item(item_id=str(i), reference="Yes" if _is_yes(r["label"]) else "No", audio=r["audio"])
            for i, r in enumerate(_first(ds, limit))]


def covost2(limit: int | None = None, data_dir: str | None = None,
            languages: Iterable[str] | None = None) -> list[Item]:
    """English speech -> each target language (default: all of COVOST_LANGUAGES); subset =
    "en-<lang>"; `limit` is per language."""
    items = []
    for lang in languages or tuple(COVOST_LANGUAGES):
        config, name = COVOST_LANGUAGES[lang]
        ds = open_split("WillHeld/covost2", "validation", config=config, data_dir=data_dir)
        items += [Item(item_id=f"{r['id']}:{lang}", reference=r["translation"], transcript=r["sentence"],
                       audio=r["audio"], subset=f"en-{lang}", fields={"target": lang, "language": name})
                  for r in _first(ds, limit)]
    return items
