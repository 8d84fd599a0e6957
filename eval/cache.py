"""SQLite cache of model answers, keyed by a hash of everything that determines an answer.

The key covers the assistant (name and, when it has one, its checkpoint fingerprint), the task,
the item (id and a hash of its input: the transcript, or the audio samples), the modality, the
exact prompt text and the generation settings. Answers are written batch by batch, so an
interrupted run resumes where it stopped and recomputes nothing that was cached. Beside each
reply the cache keeps what the assistant heard, when it reads speech as text (`heard`).
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Iterable, NamedTuple

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
    created REAL NOT NULL,
    heard TEXT
)
"""


class Answer(NamedTuple):
    text: str
    heard: str | None = None   # the transcript the assistant read, when it reads speech as text


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
        if "heard" not in {row[1] for row in self.db.execute("PRAGMA table_info(answers)")}:
            self.db.execute("ALTER TABLE answers ADD COLUMN heard TEXT")  # a cache made before it
        self.db.commit()

    def get_answers(self, keys: Iterable[str]) -> dict[str, Answer]:
        keys = list(dict.fromkeys(keys))
        found: dict[str, Answer] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for key, response, heard in self.db.execute(
                    f"SELECT key, response, heard FROM answers WHERE key IN ({marks})", chunk):
                found[key] = Answer(response, heard)
        return found

    def get_many(self, keys: Iterable[str]) -> dict[str, str]:
        return {key: answer.text for key, answer in self.get_answers(keys).items()}

    def put_many(self, rows: Iterable[dict]) -> None:
        """rows: {key, assistant, task, item_id, modality, prompt_id, response[, heard]}."""
        now = time.time()
        self.db.executemany(
            "INSERT OR REPLACE INTO answers (key, assistant, task, item_id, modality, prompt_id, response, "
            "created, heard) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(r["key"], r["assistant"], r["task"], r["item_id"], r["modality"], r["prompt_id"],
              r["response"], now, r.get("heard")) for r in rows])
        self.db.commit()

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def close(self) -> None:
        self.db.close()
