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


def held_out_voices(split: str = "test") -> list[tuple[str, float, float]]:
    """The held-out (voice, speed, pitch) renderings of a split ("test": the suites; "valid": the
    selection set; "unheard": spoken-qa-unheard) that can speak on this machine, in order."""
    from diva.voices import TEST_VOICES, UNHEARD_RENDERINGS, VALID_VOICES, get_voice
    renderings = {"test": [(v, 1.0, 1.0) for v in TEST_VOICES], "valid": [(v, 1.0, 1.0) for v in VALID_VOICES],
                  "unheard": list(UNHEARD_RENDERINGS)}[split]
    renderings = [r for r in renderings if get_voice(r[0]).available]
    if not renderings:
        raise RuntimeError(f"none of the {split.upper()} voices can run here (see diva/voices.py; "
                           "scripts/setup.sh installs the engines)")
    return renderings


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
    renderings = held_out_voices(split)
    changed = False
    for clip_id, text, position in clips:
        voice, speed, pitch = renderings[position % len(renderings)]
        want = {"text": text, "voice": voice, "seed": stable_seed(clip_id), "file": f"{clip_id}.wav"}
        if (speed, pitch) != (1.0, 1.0):
            want.update(speed=speed, pitch=pitch)
        if manifest.get(clip_id) == want and (folder / want["file"]).exists():
            continue
        audio = synthesize(text, voice, speed=speed, pitch=pitch, seed=want["seed"])
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


def spoken_qa_unheard(limit: int | None = None, data_dir: str | None = None) -> list[Item]:
    """Questions made from bsdgames' quiz facts (eval/quiz.py), spoken by the UNHEARD renderings:
    a speaker and espeak variants no other split has, at speeds and pitches training never used."""
    return spoken_qa(limit, data_dir, set_name="spoken_qa_unheard", split="unheard")


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
