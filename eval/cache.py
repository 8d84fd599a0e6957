"""SQLite cache of model answers, keyed by a hash of everything that determines an answer.

The key covers the assistant (name and, when it has one, its checkpoint fingerprint), the task,
the item (id and a hash of its input: the transcript, or the audio samples), the modality, the
exact prompt text and the generation settings. Answers are written batch by batch, so an
interrupted run resumes where it stopped and recomputes nothing that was cached.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Iterable

import numpy as np

SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    assistant TEXT NOT NULL,
    task TEXT NOT NULL,
    item_id TEXT NOT NULL,
    modality TEXT NOT NULL,
    prompt_id TEXT NOT NULL,
    response TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def input_hash(transcript: str | None = None, audio: np.ndarray | None = None) -> str:
    h = hashlib.sha256()
    if audio is not None:
        h.update(np.ascontiguousarray(audio, dtype=np.float32).tobytes())
    else:
        h.update((transcript or "").encode())
    return h.hexdigest()[:16]


def answer_key(*, assistant: str, task: str, item_id: str, modality: str, prompt: str | None,
               content: str, settings: dict, options=None) -> str:
    """`content` is `input_hash(...)` of what the model hears or reads. `options`
    (diva.generation.GenerationOptions) enter the key by the settings that differ from greedy
    decoding's defaults (the length is in `settings`), so sampled and greedy answers never share
    a key, and greedy keys stay what they were."""
    fields = {"assistant": assistant, "task": task, "item": item_id, "modality": modality,
              "prompt": prompt, "content": content, "settings": settings}
    changed = options.changed() if options is not None else {}
    changed.pop("max_new_tokens", None)
    if changed:
        fields["generation"] = {k: list(v) if isinstance(v, tuple) else v for k, v in changed.items()}
    payload = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


class AnswerCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), timeout=60)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(SCHEMA)
        self.db.commit()

    def get_many(self, keys: Iterable[str]) -> dict[str, str]:
        keys = list(dict.fromkeys(keys))
        found: dict[str, str] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for key, response in self.db.execute(
                    f"SELECT key, response FROM answers WHERE key IN ({marks})", chunk):
                found[key] = response
        return found

    def put_many(self, rows: Iterable[dict]) -> None:
        """rows: {key, assistant, task, item_id, modality, prompt_id, response}."""
        now = time.time()
        self.db.executemany(
            "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(r["key"], r["assistant"], r["task"], r["item_id"], r["modality"], r["prompt_id"],
              r["response"], now) for r in rows])
        self.db.commit()

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def close(self) -> None:
        self.db.close()
