"""The vote store: one row per battle, at most one vote per battle, in SQLite (WAL) or PostgreSQL.

    store = VoteStore("sqlite:///results/arena/arena.db", audio_dir="results/arena/audio")
    battle_id = store.add_battle(Battle(...))
    store.record_vote(battle_id, "model_a", reason="clearer", voter=client_ip_or_session)

`votes.battle_id` is the primary key of the votes table, so the database itself refuses a second
vote on a battle, however many clients race. Audio is kept content-addressed by its sha256.
A voter (session or IP) is kept only as a salted SHA-256 (`votes.voter`), for the leaderboard's
per-voter rules; the salt comes from `voter_salt=`, else $ARENA_VOTER_SALT, else is drawn per
process (then the same voter is not recognised across restarts).
"""
from __future__ import annotations

import hashlib
import io
import os
import secrets
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from sqlalchemy import (CheckConstraint, Column, DateTime, Float, ForeignKey, MetaData, String, Table,
                        Text, create_engine, event, func, insert, inspect, select, text)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, OperationalError

from diva.errors import UsageError

OUTCOMES = ("model_a", "model_b", "tie", "both_bad")

metadata = MetaData()

battles = Table(
    "battles", metadata,
    Column("id", String(32), primary_key=True),
    Column("session_id", String(64), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("audio_sha256", String(64), nullable=False),
    Column("audio_path", Text),                 # None when audio storage is off
    Column("audio_s", Float),
    Column("prompt", Text),
    Column("model_a", String(128), nullable=False),   # shown on the left, as "Model A"
    Column("model_b", String(128), nullable=False),   # shown on the right, as "Model B"
    Column("response_a", Text, nullable=False),
    Column("response_b", Text, nullable=False),
    Column("ttft_a_s", Float), Column("total_a_s", Float),
    Column("ttft_b_s", Float), Column("total_b_s", Float),
    Column("options_a", Text), Column("options_b", Text),  # each side's generation options, JSON
    Column("heard_a", Text), Column("heard_b", Text),      # what each side heard, when it reads text
)

votes = Table(
    "votes", metadata,
    Column("battle_id", String(32), ForeignKey("battles.id"), primary_key=True),  # one vote per battle
    Column("outcome", String(16), nullable=False),
    Column("reason", Text),
    Column("voted_at", DateTime(timezone=True), nullable=False),
    Column("voter", String(64)),                # salted SHA-256 hex of a session/IP; never the clear value
    CheckConstraint("outcome IN ('model_a', 'model_b', 'tie', 'both_bad')", name="valid_outcome"),
)


class VoteError(ValueError):
    """A vote the store refuses (unknown battle, second vote, bad outcome)."""


class StoreError(UsageError):
    """A vote database that cannot be opened as asked: a bad URL, a missing SQLite file, no server."""


@dataclass
class Battle:
    session_id: str
    audio_sha256: str
    model_a: str
    model_b: str
    response_a: str
    response_b: str
    prompt: str | None = None
    audio_path: str | None = None
    audio_s: float | None = None
    ttft_a_s: float | None = None
    total_a_s: float | None = None
    ttft_b_s: float | None = None
    total_b_s: float | None = None
    options_a: str | None = None   # JSON of the side's GenerationOptions (diva.generation)
    options_b: str | None = None
    heard_a: str | None = None     # the transcript or bridge reading a side answered
    heard_b: str | None = None


def wav_bytes(samples: np.ndarray, rate: int = 16_000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def voter_hash(identity: str, salt: str) -> str:
    """The pseudonym stored for a voter: hex SHA-256 of salt and identity."""
    return hashlib.sha256(f"{salt}\0{identity}".encode()).hexdigest()


def sqlite_file(url: str) -> Path | None:
    """The file behind a SQLite URL; None for in-memory SQLite and other databases."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"not a database URL: {url!r}; expected e.g. sqlite:///results/arena/arena.db "
                         "or postgresql+psycopg://user:password@host/db") from None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite files get WAL, a busy timeout and their folder created."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    return engine


class VoteStore:
    """`create=False`: a SQLite file that does not exist is a StoreError instead of a new, empty store."""

    def __init__(self, url: str, audio_dir: str | Path | None = None, store_audio: bool = True,
                 voter_salt: str | None = None, create: bool = True):
        path = sqlite_file(url)
        if not create and path is not None and not path.is_file():
            raise StoreError(f"no vote database at {path}; check the path (a new one is made only when asked, "
                             "e.g. python -m demo.app --db URL --create-db)")
        self.url = url
        self.engine = make_engine(url)
        self.audio_dir = Path(audio_dir) if audio_dir else None
        self.store_audio = store_audio and self.audio_dir is not None
        self.voter_salt = voter_salt or os.environ.get("ARENA_VOTER_SALT") or secrets.token_hex(16)
        try:
            metadata.create_all(self.engine)
        except OperationalError as error:
            shown = make_url(url).render_as_string(hide_password=True)
            raise StoreError(f"cannot open the vote database {shown}: {str(error.orig).strip()}") from None
        self._add_column("votes", "voter", "VARCHAR(64)")
        for column in ("options_a", "options_b", "heard_a", "heard_b"):
            self._add_column("battles", column, "TEXT")

    def pseudonym(self, identity: str) -> str:
        """How a voter (a client address or session) is kept: its salted hash, never the clear value."""
        return voter_hash(identity, self.voter_salt)

    def _add_column(self, table: str, column: str, sql_type: str) -> None:
        """Stores made before a (nullable) column existed get it added."""
        def present() -> bool:
            return column in {c["name"] for c in inspect(self.engine).get_columns(table)}
        if present():
            return
        try:
            with self.engine.begin() as conn:
                conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}"))
        except DBAPIError:  # another process added it first
            if not present():
                raise

    # ---- writing ---------------------------------------------------------------------------
    def save_audio(self, samples: np.ndarray, rate: int = 16_000) -> tuple[str, str | None]:
        """Hash a clip (as 16-bit wav) and, unless storage is off, keep it. Returns (sha256, path)."""
        data = wav_bytes(samples, rate)
        sha = hashlib.sha256(data).hexdigest()
        if not self.store_audio:
            return sha, None
        path = self.audio_dir / sha[:2] / f"{sha}.wav"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)  # atomic: a reader never sees half a file
        return sha, str(path)

    def add_battle(self, battle: Battle) -> str:
        battle_id = uuid.uuid4().hex
        row = asdict(battle) | {"id": battle_id, "created_at": datetime.now(timezone.utc)}
        with self.engine.begin() as conn:
            conn.execute(insert(battles).values(**row))
        return battle_id

    def record_vote(self, battle_id: str, outcome: str, reason: str | None = None,
                    voter: str | None = None) -> None:
        """Store the vote on a battle. `voter` (a session id or IP) is kept only as its salted hash."""
        if outcome not in OUTCOMES:
            raise VoteError(f"outcome must be one of {OUTCOMES}, not {outcome!r}")
        reason = (reason or "").strip() or None
        voter = self.pseudonym(voter) if voter else None
        try:
            with self.engine.begin() as conn:
                if conn.execute(select(battles.c.id).where(battles.c.id == battle_id)).first() is None:
                    raise VoteError(f"no battle {battle_id!r}")
                conn.execute(insert(votes).values(battle_id=battle_id, outcome=outcome, reason=reason,
                                                  voted_at=datetime.now(timezone.utc), voter=voter))
        except IntegrityError:
            raise VoteError(f"battle {battle_id} already has a vote") from None

    # ---- reading ---------------------------------------------------------------------------
    def battle(self, battle_id: str) -> dict | None:
        query = (select(battles, votes.c.outcome, votes.c.reason, votes.c.voted_at)
                 .outerjoin(votes, votes.c.battle_id == battles.c.id).where(battles.c.id == battle_id))
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return dict(row) if row else None

    def count(self) -> tuple[int, int]:
        """(battles, votes)."""
        with self.engine.connect() as conn:
            n_battles = conn.execute(select(func.count()).select_from(battles)).scalar_one()
            n_votes = conn.execute(select(func.count()).select_from(votes)).scalar_one()
        return n_battles, n_votes

    def voted_battles(self) -> pd.DataFrame:
        """Every voted battle, oldest vote first, all battle columns plus outcome, reason, voted_at, voter."""
        query = (select(battles, votes.c.outcome, votes.c.reason, votes.c.voted_at, votes.c.voter)
                 .join(votes, votes.c.battle_id == battles.c.id).order_by(votes.c.voted_at, battles.c.id))
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        columns = [c.name for c in battles.columns] + ["outcome", "reason", "voted_at", "voter"]
        return pd.DataFrame([dict(r) for r in rows], columns=columns)

    def votes_frame(self) -> pd.DataFrame:
        """The compact export: battle_id, time (UTC ISO of the vote), model_a, model_b, outcome."""
        df = self.voted_battles()
        out = pd.DataFrame({
            "battle_id": df["id"],
            "time": [t.replace(tzinfo=t.tzinfo or timezone.utc).isoformat(timespec="seconds")
                     for t in df["voted_at"]],
            "model_a": df["model_a"], "model_b": df["model_b"], "outcome": df["outcome"],
        })
        return out

    def close(self) -> None:
        self.engine.dispose()
