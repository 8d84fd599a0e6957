"""Offline counterparts of the paper's suites, spoken by the held-out TEST voices.

The text (questions and answers, sentences and labels, sentences and translations) is committed
in eval/data/*.jsonl. The audio is synthesised on first use into data/eval/<set>/ (gitignored;
override with $DIVA_EVAL_DATA) and reused afterwards. Each clip's voice is fixed by its position
in the file (round robin over `diva.voices.TEST_VOICES`) and its seed by its id, so a rebuild
gives the same clips (Piper samples noise inside its model, so piper:joe clips vary very slightly).
A clip is re-synthesised when its text, voice or seed changes.

    python -m eval.offline            # build every set now (otherwise built lazily by the runner)
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import soundfile as sf

from diva.audio import SAMPLE_RATE
from eval.item import Item
from eval.loaders import LANGUAGE_NAMES

DATA_DIR = Path(__file__).resolve().parent / "data"
REPO_ROOT = Path(__file__).resolve().parents[1]
TRANSLATION_TARGETS = ("fr", "es", "de")


def build_root() -> Path:
    return Path(os.environ.get("DIVA_EVAL_DATA", REPO_ROOT / "data" / "eval"))


def read_jsonl(name: str) -> list[dict]:
    with open(DATA_DIR / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def stable_seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def held_out_voices(split: str = "test") -> list[str]:
    """The held-out voices of a split ("test": the suites; "valid": the selection set) that can
    speak on this machine, in registry order."""
    from diva.voices import TEST_VOICES, VALID_VOICES, get_voice
    voices = [v for v in {"test": TEST_VOICES, "valid": VALID_VOICES}[split] if get_voice(v).available]
    if not voices:
        raise RuntimeError(f"none of the {split.upper()} voices can run here (see diva/voices.py)")
    return voices


def _write_json(path: Path, obj) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False)
    os.replace(tmp, path)


def build_clips(set_name: str, clips: list[tuple[str, str, int]], split: str = "test") -> dict[str, dict]:
    """Synthesise (clip_id, text, position) clips that are missing or stale, spoken by the `split`
    voices; return the manifest entries {clip_id: {text, voice, seed, file}} for the requested clips."""
    from diva.voices import synthesize
    folder = build_root() / set_name
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    voices = held_out_voices(split)
    changed = False
    for clip_id, text, position in clips:
        want = {"text": text, "voice": voices[position % len(voices)], "seed": stable_seed(clip_id),
                "file": f"{clip_id}.wav"}
        if manifest.get(clip_id) == want and (folder / want["file"]).exists():
            continue
        audio = synthesize(text, want["voice"], seed=want["seed"])
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".wav")
        os.close(fd)
        sf.write(tmp, audio, SAMPLE_RATE, subtype="PCM_16")
        os.replace(tmp, folder / want["file"])
        manifest[clip_id] = want
        changed = True
    if changed:
        _write_json(manifest_path, manifest)
    return {clip_id: {**manifest[clip_id], "path": str(folder / manifest[clip_id]["file"])}
            for clip_id, _, _ in clips}


def _take(rows: list[dict], limit: int | None) -> list[tuple[int, dict]]:
    return list(enumerate(rows))[:limit] if limit is not None else list(enumerate(rows))


# ---- the three sets -------------------------------------------------------------------------
def spoken_qa(limit: int | None = None, data_dir: str | None = None, set_name: str = "spoken_qa",
              split: str = "test") -> list[Item]:
    """Factual questions with short answers (aliases accepted) that SmolLM2-135M-Instruct
    answers correctly as text."""
    rows = _take(read_jsonl(f"{set_name}.jsonl"), limit)
    clips = build_clips(set_name, [(r["id"], r["question"], i) for i, r in rows], split)
    return [Item(item_id=r["id"], reference=list(r["answers"]), transcript=r["question"],
                 audio=clips[r["id"]]["path"], subset=r.get("subset", "all"),
                 fields={"question": r["question"], "voice": clips[r["id"]]["voice"]})
            for _, r in rows]


def spoken_qa_select(limit: int | None = None, data_dir: str | None = None) -> list[Item]:
    """The selection set: other questions of the same kinds, spoken by the VALID voices, on which
    training options and checkpoints are chosen (the test set's voices and questions never are)."""
    return spoken_qa(limit, data_dir, set_name="spoken_qa_select", split="valid")


def spoken_sentiment(limit: int | None = None, data_dir: str | None = None) -> list[Item]:
    """Sentences whose words alone make them positive or negative."""
    rows = _take(read_jsonl("spoken_sentiment.jsonl"), limit)
    clips = build_clips("spoken_sentiment", [(r["id"], r["text"], i) for i, r in rows])
    return [Item(item_id=r["id"], reference=r["label"], transcript=r["text"],
                 audio=clips[r["id"]]["path"], fields={"voice": clips[r["id"]]["voice"]})
            for _, r in rows]


def spoken_translation(limit: int | None = None, data_dir: str | None = None) -> list[Item]:
    """English sentences with our reference translations; one item per sentence x target
    (subset = target). `limit` counts sentences."""
    rows = _take(read_jsonl("spoken_translation.jsonl"), limit)
    clips = build_clips("spoken_translation", [(r["id"], r["en"], i) for i, r in rows])
    return [Item(item_id=f"{r['id']}:{lang}", reference=r[lang], transcript=r["en"],
                 audio=clips[r["id"]]["path"], subset=lang,
                 fields={"language": LANGUAGE_NAMES[lang], "target": lang,
                         "voice": clips[r["id"]]["voice"]})
            for lang in TRANSLATION_TARGETS for _, r in rows]


def main() -> int:
    for build in (spoken_qa, spoken_sentiment, spoken_translation):
        items = build()
        print(f"{build.__name__}: {len(items)} items in {build_root()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
