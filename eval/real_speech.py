"""Real human speech, offline: Asterisk's English core prompts.

Debian's `asterisk-core-sounds-en-g722` (CC-BY-SA-3.0) holds 568 telephone prompts (~25 min) read
by one professional female speaker (Allison Smith), as G.722 files (16 kHz) under
/usr/share/asterisk/sounds/en_US_f_Allison/; `asterisk-core-sounds-en` holds their transcripts
(`name: text` lines in /usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz). The audio
is decoded once with ffmpeg into data/eval/real_speech/ (gitignored) and never committed.

Two sets:
- `real_speech_asr`: every prompt with words in it; the reference is its transcript (non-speech
  marks such as "[beep tone]" removed). Subsets: `word` (digits/, letters/, phonetic/: one word
  or a few), `prompt` (the other prompts up to 10 s, what DiVA-mini's encoder window holds),
  `long` (over 10 s).
- `real_speech_instructions`: the prompts that ask something or tell the caller to do something
  (a question mark, or a sentence that opens with an imperative such as "Please" or "Press"),
  of three words or more and up to 10 s, to be answered as spoken instructions.

`data_dir` is a root folder laid out as / is (tests use a small one under tests/fixtures/); a
folder may hold .wav files in place of the .g722 ones.
"""
from __future__ import annotations

import gzip
import re
import subprocess
from pathlib import Path

import soundfile as sf

from eval.item import Item

SOUNDS = Path("usr/share/asterisk/sounds/en_US_f_Allison")
TRANSCRIPTS = Path("usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
APT = "apt-get install -y asterisk-core-sounds-en-g722 asterisk-core-sounds-en ffmpeg"
WORD_FOLDERS = ("digits", "letters", "phonetic")
SKIP_FOLDERS = ("silence",)
WINDOW_S = 10.0
IMPERATIVES = ("please", "press", "dial", "enter", "record", "say", "leave", "hang", "check", "try",
               "stay", "remain", "hold", "wait", "listen", "choose", "select", "speak", "call", "use")


class NotAvailable(FileNotFoundError):
    """The data is not installed here (the message says how to install it)."""


def read_transcripts(path: Path) -> dict[str, str]:
    """`name: text` lines (";" comments) -> {name: text}."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        lines = [line for line in f if line.strip() and not line.startswith(";")]
    return {name.strip(): text.strip() for name, sep, text in (l.partition(":") for l in lines) if sep}


def spoken_text(text: str) -> str:
    """The words of a transcript: bracketed marks ("[ascending tones]", "at [@]") and <...>
    notes left out, single spaces."""
    return " ".join(re.sub(r"\[[^\]]*\]|<[^>]*>", " ", text).split())


def is_instruction(text: str) -> bool:
    sentences = re.split(r"(?<=[.?!])\s+", text)
    return len(text.split()) >= 3 and ("?" in text or any(
        s.split()[0].lower().strip(",.") in IMPERATIVES for s in sentences if s.split()))


def _source(sounds: Path, name: str) -> Path | None:
    for suffix in (".wav", ".g722"):
        if (sounds / f"{name}{suffix}").exists():
            return sounds / f"{name}{suffix}"
    return None


def decoded(source: Path, name: str) -> Path:
    """A 16 kHz wav of the prompt: a .wav as it is, a .g722 decoded once with ffmpeg."""
    if source.suffix == ".wav":
        return source
    from eval.offline import build_root
    out = build_root() / "real_speech" / f"{name}.wav"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp.wav")
        try:
            subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "g722", "-i", str(source),
                            "-ar", "16000", "-ac", "1", str(tmp)], check=True, capture_output=True)
        except FileNotFoundError:
            raise NotAvailable(f"ffmpeg is not installed: {APT}") from None
        tmp.replace(out)
    return out


def prompts(data_dir: str | None = None) -> list[dict]:
    """Every prompt with words in it: [{name, text, path, seconds, subset}], in a fixed shuffled
    order (by a hash of the name), so that the first N are a sample across folders."""
    from eval.offline import stable_seed
    root = Path(data_dir or "/")
    sounds, transcripts = root / SOUNDS, root / TRANSCRIPTS
    if not sounds.is_dir() or not transcripts.exists():
        raise NotAvailable(f"Asterisk's English prompts are not installed (no {sounds} or {transcripts}): {APT}")
    out = []
    for name, text in sorted(read_transcripts(transcripts).items(), key=lambda kv: stable_seed(kv[0])):
        words, source = spoken_text(text), _source(sounds, name)
        if not words or source is None or name.split("/")[0] in SKIP_FOLDERS:
            continue
        path = decoded(source, name)
        seconds = sf.info(str(path)).duration
        subset = ("long" if seconds > WINDOW_S else
                  "word" if name.split("/")[0] in WORD_FOLDERS else "prompt")
        out.append({"name": name, "text": words, "path": str(path), "seconds": seconds, "subset": subset})
    return out


def real_speech_asr(limit: int | None = None, data_dir: str | None = None) -> list[Item]:
    """Transcription: the reference is the transcript; no text modality (transcript=None)."""
    return [Item(item_id=p["name"], reference=p["text"], audio=p["path"], subset=p["subset"],
                 fields={"seconds": p["seconds"]})
            for p in prompts(data_dir)[:limit]]


def real_speech_instructions(limit: int | None = None, data_dir: str | None = None) -> list[Item]:
    """Spoken instructions and questions; no gold answer (agreement with text-mini only)."""
    chosen = [p for p in prompts(data_dir) if p["subset"] == "prompt" and is_instruction(p["text"])]
    return [Item(item_id=p["name"], reference=[], transcript=p["text"], audio=p["path"],
                 fields={"question": p["text"], "seconds": p["seconds"]})
            for p in chosen[:limit]]
