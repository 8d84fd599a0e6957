"""Vote logs in and out. Every reader returns one frame with COLUMNS, None where the log is silent:

    battle_id, time (UTC ISO), model_a, model_b (left and right as shown), outcome (model_a | model_b |
    tie | both_bad), voter (a pseudonym: a clear IP or session id is hashed on reading), audio (the
    question's key: its audio sha256, or a hash of a typed question), prompt, response_a, response_b,
    reply_failed (the log says a side failed or answered nothing), sided (False when the log does not
    say which answer was on the left).

Formats: `csv` (our votes.csv, or any CSV with model_a, model_b, outcome), `talk-arena` (Talk Arena's
TinyDB JSON), `fastchat` (FastChat battle JSONL; lines of other types are skipped and counted in
`frame.attrs["skipped"]`), `diva-study` (the DiVA user study's JSON). `write_fastchat` writes FastChat
battle JSONL, which `read_fastchat` reads back unchanged.
"""
from __future__ import annotations

import hashlib
import json
import re
import secrets
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

COLUMNS = ["battle_id", "time", "model_a", "model_b", "outcome", "voter", "audio", "prompt",
           "response_a", "response_b", "reply_failed", "sided"]
OUTCOMES = ("model_a", "model_b", "tie", "both_bad")
FORMATS = ("csv", "talk-arena", "fastchat", "diva-study")
FASTCHAT_TYPES = {"leftvote": "model_a", "rightvote": "model_b", "tievote": "tie", "bothbad_vote": "both_bad"}
TALK_ARENA_OUTCOMES = {0: "model_a", 1: "model_b", 0.5: "tie"}
STUDY_MODELS = ("diva", "qwen2")
FASTCHAT_ERROR_MARK = "NETWORK ERROR"  # how FastChat's server words a failed reply
HEX64 = re.compile(r"[0-9a-f]{64}")
_SALT = secrets.token_hex(16)  # for clear voter ids found in logs; pseudonyms need only be stable per run

EXPECTED = {
    "csv": "a CSV with columns model_a, model_b, outcome (model_a|model_b|tie|both_bad)",
    "talk-arena": 'Talk Arena TinyDB JSON: {"_default": {id: {"model_a", "model_b", "outcome": 0|1|0.5, ...}}}',
    "fastchat": 'FastChat battle JSONL: one {"tstamp", "type": "leftvote"|..., "models": [left, right], '
                '"states": [...]} per line',
    "diva-study": 'DiVA user-study JSON: {"_default": {id: {"audio_hash", "best": "diva"|"qwen2"}}}',
}


class VoteLogError(ValueError):
    """A vote log that cannot be read; the message names the file and what was expected."""


def pseudonym(voter) -> str | None:
    """A voter id as stored: kept when already a SHA-256 hex, hashed with a salt otherwise."""
    if voter is None or pd.isna(voter) or str(voter) == "":
        return None
    voter = str(voter)
    return voter if HEX64.fullmatch(voter) else hashlib.sha256(f"{_SALT}\0{voter}".encode()).hexdigest()


def normalise(df: pd.DataFrame, source: str = "votes", fmt: str = "csv") -> pd.DataFrame:
    """Columns in order (missing ones added), None for missing values, a check of models and outcomes."""
    df = df.reindex(columns=COLUMNS).astype(object)
    df = df.where(df.notna(), None)
    df["reply_failed"] = [str(v).lower() in ("true", "1") for v in df["reply_failed"]]
    df["sided"] = [v is None or str(v).lower() not in ("false", "0") for v in df["sided"]]
    for i, row in df.iterrows():
        where = f"{source}: vote {row['battle_id'] if row['battle_id'] is not None else i}"
        if row["outcome"] not in OUTCOMES:
            raise VoteLogError(f"{where}: outcome {row['outcome']!r} is not one of {', '.join(OUTCOMES)}; "
                               f"expected {EXPECTED[fmt]}")
        if not all(isinstance(row[c], str) and row[c].strip() for c in ("model_a", "model_b")):
            raise VoteLogError(f"{where}: model_a and model_b must be model names; expected {EXPECTED[fmt]}")
    return df.reset_index(drop=True)


def _load_json(path: Path, fmt: str) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise VoteLogError(f"{path}: not JSON ({error}); expected {EXPECTED[fmt]}") from None
    table = doc.get("_default") if isinstance(doc, dict) else None
    if not isinstance(table, dict) or not all(isinstance(e, dict) for e in table.values()):
        raise VoteLogError(f"{path}: expected {EXPECTED[fmt]}")
    return table


def read_csv(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise VoteLogError(f"{path}: not a readable CSV ({error}); expected {EXPECTED['csv']}") from None
    missing = [c for c in ("model_a", "model_b", "outcome") if c not in df]
    if missing:
        raise VoteLogError(f"{path}: no column {', '.join(missing)}; expected {EXPECTED['csv']}")
    df = df.rename(columns={"audio_sha256": "audio"})
    if "voter" in df:
        df["voter"] = df["voter"].map(pseudonym)
    return normalise(df, str(path), "csv")


def read_talk_arena(path: Path) -> pd.DataFrame:
    rows = []
    for key, entry in _load_json(path, "talk-arena").items():
        outcome = entry.get("outcome")
        if isinstance(outcome, bool) or not isinstance(outcome, (int, float)) or outcome not in TALK_ARENA_OUTCOMES:
            raise VoteLogError(f"{path}: entry {key}: outcome {outcome!r} is not 0 (model_a better), "
                               f"1 (model_b better) or 0.5 (tie); expected {EXPECTED['talk-arena']}")
        latency = [entry.get(f"model_{side}_latency") for side in "ab"]
        rows.append({"battle_id": str(key), "model_a": entry.get("model_a"), "model_b": entry.get("model_b"),
                     "outcome": TALK_ARENA_OUTCOMES[outcome], "audio": entry.get("audio_hash"),
                     "reply_failed": any(isinstance(t, dict) and t.get("response_length") == 0 for t in latency)})
    return normalise(pd.DataFrame(rows), str(path), "talk-arena")


def _turns(state, assistant: bool) -> list | None:
    """The user's (or the assistant's) texts in a FastChat conversation state; None when it has none."""
    messages = state.get("messages") if isinstance(state, dict) else None
    if not isinstance(messages, list):
        return None
    turns = [m for m in messages[state.get("offset") or 0:] if isinstance(m, (list, tuple)) and len(m) == 2]
    return [t[1] for t in turns[int(assistant)::2]]


def _reply(state) -> str | None:
    texts = _turns(state, assistant=True)
    if texts is None or (texts and all(t is None for t in texts)):
        return None  # not logged
    return "\n".join(t or "" for t in texts)


def _text_key(text) -> str | None:
    return hashlib.sha256(text.encode()).hexdigest() if isinstance(text, str) and text.strip() else None


def read_fastchat(path: Path) -> pd.DataFrame:
    rows, skipped = [], 0
    with path.open(encoding="utf-8") as lines:
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as error:
                raise VoteLogError(f"{path}: line {n} is not JSON ({error.msg}); expected {EXPECTED['fastchat']}") from None
            if not isinstance(entry, dict) or "type" not in entry:
                raise VoteLogError(f"{path}: line {n} has no 'type'; expected {EXPECTED['fastchat']}")
            if entry["type"] not in FASTCHAT_TYPES:
                skipped += 1
                continue
            states = entry.get("states") or [{}, {}]
            models = entry.get("models") or ["", ""]
            if len(states) != 2 or len(models) != 2:
                raise VoteLogError(f"{path}: line {n}: expected two models and two states")
            names = [(s.get("model_name") if isinstance(s, dict) else None) or m for s, m in zip(states, models)]
            conv = [s.get("conv_id") if isinstance(s, dict) else None for s in states]
            replies = [_reply(s) for s in states]
            asked = _turns(states[0], assistant=False) or [None]
            tstamp = entry.get("tstamp")
            rows.append({
                "battle_id": conv[0] if conv[0] == conv[1] else "|".join(map(str, conv)) if all(conv) else None,
                "time": (datetime.fromtimestamp(float(tstamp), timezone.utc).isoformat(timespec="seconds")
                         if tstamp is not None else None),
                "model_a": names[0], "model_b": names[1], "outcome": FASTCHAT_TYPES[entry["type"]],
                "voter": pseudonym(entry.get("ip")), "prompt": asked[0] or None,
                "audio": (states[0].get("audio_sha256") if isinstance(states[0], dict) else None) or _text_key(asked[0]),
                "response_a": replies[0], "response_b": replies[1],
                "reply_failed": any(r is not None and FASTCHAT_ERROR_MARK in r for r in replies)})
    df = normalise(pd.DataFrame(rows), str(path), "fastchat")
    df.attrs["skipped"] = skipped
    return df


def read_diva_study(path: Path) -> pd.DataFrame:
    """Each entry is one preference between DiVA and Qwen 2 Audio; which side was shown left is not kept."""
    rows = []
    for key, entry in _load_json(path, "diva-study").items():
        best = entry.get("best")
        if best not in STUDY_MODELS:
            raise VoteLogError(f"{path}: entry {key}: 'best' is {best!r}, not 'diva' or 'qwen2'; "
                               f"expected {EXPECTED['diva-study']}")
        rows.append({"battle_id": str(key), "model_a": STUDY_MODELS[0], "model_b": STUDY_MODELS[1],
                     "outcome": "model_a" if best == STUDY_MODELS[0] else "model_b",
                     "audio": entry.get("audio_hash"), "sided": False})
    return normalise(pd.DataFrame(rows), str(path), "diva-study")


READERS = {"csv": read_csv, "talk-arena": read_talk_arena, "fastchat": read_fastchat, "diva-study": read_diva_study}


def read(path: str | Path, fmt: str) -> pd.DataFrame:
    """Read a vote log of format `fmt` (one of FORMATS); VoteLogError with a one-line reason otherwise."""
    path = Path(path)
    if fmt not in READERS:
        raise VoteLogError(f"unknown vote log format {fmt!r}; expected one of {', '.join(FORMATS)}")
    try:
        return READERS[fmt](path)
    except OSError as error:
        raise VoteLogError(f"{path}: cannot be read ({error.strerror or error}); expected {EXPECTED[fmt]}") from None


def from_store(store) -> pd.DataFrame:
    """Every vote in a VoteStore, in the same frame as the readers return."""
    df = store.voted_battles()
    return normalise(pd.DataFrame({
        "battle_id": df["id"], "model_a": df["model_a"], "model_b": df["model_b"], "outcome": df["outcome"],
        "time": [t.replace(tzinfo=t.tzinfo or timezone.utc).isoformat(timespec="seconds") for t in df["voted_at"]],
        "voter": df["voter"], "audio": df["audio_sha256"], "prompt": df["prompt"],
        "response_a": df["response_a"], "response_b": df["response_b"]}), store.url, "csv")


def write_fastchat(votes: pd.DataFrame, path: str | Path) -> Path:
    """One FastChat battle object per vote (replies as assistant turns; the audio's sha256 and the battle
    id kept in each state), so FastChat-style tooling reads our votes and `read_fastchat` gets them back."""
    side_type = {outcome: kind for kind, outcome in FASTCHAT_TYPES.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for v in votes.to_dict("records"):
            states = [{"conv_id": v["battle_id"], "model_name": v[f"model_{side}"], "roles": ["user", "assistant"],
                       "offset": 0, "audio_sha256": v["audio"],
                       "messages": [["user", v["prompt"] or ""],
                                    ["assistant", v[f"response_{side}"] if v[f"response_{side}"] is not None
                                     else ("" if v["reply_failed"] else None)]]} for side in "ab"]
            out.write(json.dumps({
                "tstamp": pd.Timestamp(v["time"]).timestamp() if v["time"] else None,
                "type": side_type[v["outcome"]], "models": [v["model_a"], v["model_b"]],
                "states": states, "ip": v["voter"] or ""}) + "\n")
    return path
