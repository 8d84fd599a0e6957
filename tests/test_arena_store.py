"""The vote store on SQLite (WAL) and on a throwaway PostgreSQL server: one vote per battle enforced
by the database, votes survive a restart, nothing is lost under concurrent voting."""
from __future__ import annotations

import json

import threading
from datetime import datetime
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import IntegrityError

from arena_helpers import throwaway_postgres
from demo.store import Battle, VoteError, VoteStore, votes


@pytest.fixture(scope="module")
def postgres_url():
    with throwaway_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/votes.db"
    url = request.getfixturevalue("postgres_url")
    with VoteStore(url).engine.begin() as conn:  # a clean database per test
        conn.execute(text("DROP TABLE IF EXISTS votes, battles"))
    return url


def clip(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(16_000)).astype(np.float32)


def add_battle(store: VoteStore, i: int = 0, **kw) -> str:
    sha, path = store.save_audio(clip(i))
    fields = dict(session_id=f"s{i}", audio_sha256=sha, audio_path=path, audio_s=1.0, prompt="hi",
                  model_a="alpha", model_b="beta", response_a=f"a{i}", response_b=f"b{i}",
                  ttft_a_s=0.1, total_a_s=1.0, ttft_b_s=0.2, total_b_s=2.0) | kw
    return store.add_battle(Battle(**fields))


def test_battle_and_vote_round_trip(store_url, tmp_path):
    store = VoteStore(store_url, audio_dir=tmp_path / "audio")
    battle_id = add_battle(store, response_a="<script>alert(1)</script>")
    store.record_vote(battle_id, "model_b", "  clearer  ")
    row = store.battle(battle_id)
    assert (row["outcome"], row["reason"], row["model_a"], row["model_b"]) == ("model_b", "clearer", "alpha", "beta")
    assert row["response_a"] == "<script>alert(1)</script>"  # stored verbatim, escaped only when shown
    assert (row["ttft_a_s"], row["total_b_s"]) == (0.1, 2.0)
    assert row["audio_path"].endswith(f"{row['audio_sha256']}.wav")
    exported = store.votes_frame()
    assert list(exported.columns) == ["battle_id", "time", "model_a", "model_b", "outcome"]
    assert exported.iloc[0]["battle_id"] == battle_id and exported.iloc[0]["outcome"] == "model_b"


def test_one_vote_per_battle_is_enforced_by_the_database(store_url):
    store = VoteStore(store_url)
    battle_id = add_battle(store)
    store.record_vote(battle_id, "tie")
    with pytest.raises(VoteError, match="already has a vote"):
        store.record_vote(battle_id, "model_a")
    with pytest.raises(IntegrityError), store.engine.begin() as conn:  # even bypassing the Python API
        conn.execute(insert(votes).values(battle_id=battle_id, outcome="model_a", voted_at=datetime.now()))
    with pytest.raises(VoteError, match="no battle"):
        store.record_vote("0" * 32, "tie")
    with pytest.raises(VoteError, match="outcome"):
        store.record_vote(battle_id, "A")
    assert store.count() == (1, 1)


def test_votes_survive_a_restart(store_url):
    first = VoteStore(store_url)
    ids = [add_battle(first, i) for i in range(3)]
    for battle_id, outcome in zip(ids, ["model_a", "both_bad", "tie"]):
        first.record_vote(battle_id, outcome)
    first.close()
    second = VoteStore(store_url)
    assert second.count() == (3, 3)
    assert sorted(second.votes_frame()["outcome"]) == ["both_bad", "model_a", "tie"]


def test_concurrent_voting_loses_nothing(store_url):
    store = VoteStore(store_url)
    ids = [add_battle(store, i) for i in range(20)]
    outcomes = ["model_a", "model_b", "tie", "both_bad"]
    barrier = threading.Barrier(20)

    def vote(i: int) -> None:
        barrier.wait()  # all 20 at the same instant
        store.record_vote(ids[i], outcomes[i % 4], f"reason {i}")

    with ThreadPoolExecutor(20) as pool:
        list(pool.map(vote, range(20)))
    assert store.count() == (20, 20)
    got = store.voted_battles().set_index("id")
    for i, battle_id in enumerate(ids):
        assert got.loc[battle_id, "outcome"] == outcomes[i % 4]
        assert got.loc[battle_id, "reason"] == f"reason {i}"

    # 20 clients racing to vote on one battle: exactly one wins
    contested = add_battle(store, 99)
    barrier = threading.Barrier(20)

    def race(i: int) -> bool:
        barrier.wait()
        try:
            store.record_vote(contested, outcomes[i % 4])
            return True
        except VoteError:
            return False

    with ThreadPoolExecutor(20) as pool:
        assert sum(pool.map(race, range(20))) == 1
    assert store.count() == (21, 21)


def test_sqlite_uses_wal(tmp_path):
    store = VoteStore(f"sqlite:///{tmp_path}/wal.db")
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_audio_is_content_addressed_and_can_be_opted_out(tmp_path):
    keep = VoteStore(f"sqlite:///{tmp_path}/a.db", audio_dir=tmp_path / "audio")
    sha1, path1 = keep.save_audio(clip(1))
    sha2, path2 = keep.save_audio(clip(1))
    assert sha1 == sha2 and path1 == path2 and len(list((tmp_path / "audio").rglob("*.wav"))) == 1
    off = VoteStore(f"sqlite:///{tmp_path}/b.db", audio_dir=tmp_path / "audio2", store_audio=False)
    sha3, path3 = off.save_audio(clip(1))
    assert sha3 == sha1 and path3 is None and not (tmp_path / "audio2").exists()


def test_leaderboard_cli_reads_the_database_url(store_url, tmp_path):
    from demo import leaderboard
    store = VoteStore(store_url)
    for i, outcome in enumerate(["model_a", "model_a", "model_b", "tie"]):
        store.record_vote(add_battle(store, i), outcome)
    leaderboard.main(["--db", store_url, "--out", str(tmp_path / "out"), "--rounds", "20"])
    exported = (tmp_path / "out" / "votes.csv").read_text().splitlines()
    assert exported[0] == "battle_id,time,model_a,model_b,outcome" and len(exported) == 5
    assert (tmp_path / "out" / "leaderboard.png").exists()


def test_arena_records_battles_and_votes_in_the_store(store_url, tmp_path):
    """The arena's own record/vote path (no model needed) on SQLite and PostgreSQL."""
    from demo.arena import Arena, ArenaError, BattleState, Side
    from demo.config import ArenaConfig
    arena = Arena(ArenaConfig(models=(), db=store_url), store=VoteStore(store_url, tmp_path / "audio"))
    sides = [Side("alpha", "Paris.", 0.4, 1.2), Side("beta", "<b>Lyon</b>", 0.3, 0.9)]
    state = BattleState(battle_id=arena.record("session-1", clip(5), None, sides), sides=sides)
    arena.vote(state, "model_a", "correct")
    with pytest.raises(ArenaError, match="already voted"):
        arena.vote(state, "model_b", None)
    row = arena.store.battle(state.battle_id)
    assert (row["session_id"], row["model_a"], row["model_b"], row["outcome"]) == ("session-1", "alpha", "beta", "model_a")
    assert (row["ttft_a_s"], row["total_b_s"], row["response_b"], row["audio_s"]) == (0.4, 0.9, "<b>Lyon</b>", 1.0)
    stored = json.loads(row["options_a"])  # how each side was decoded: greedy, the arena's length
    assert (stored["temperature"], stored["max_new_tokens"]) == (0.0, arena.config.max_new_tokens)


def test_a_store_made_before_battle_options_gets_the_columns(tmp_path):
    import sqlite3
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE battles (id VARCHAR(32) PRIMARY KEY, session_id VARCHAR(64) NOT NULL, "
               "created_at DATETIME NOT NULL, audio_sha256 VARCHAR(64) NOT NULL, audio_path TEXT, audio_s FLOAT, "
               "prompt TEXT, model_a VARCHAR(128) NOT NULL, model_b VARCHAR(128) NOT NULL, response_a TEXT NOT NULL, "
               "response_b TEXT NOT NULL, ttft_a_s FLOAT, total_a_s FLOAT, ttft_b_s FLOAT, total_b_s FLOAT)")
    db.execute("INSERT INTO battles VALUES ('b1', 's', '2026-01-01 00:00:00', 'x', NULL, 1.0, NULL, 'a', 'b', "
               "'r1', 'r2', 0.1, 0.2, 0.3, 0.4)")
    db.commit()
    db.close()
    store = VoteStore(f"sqlite:///{path}")
    assert store.battle("b1")["options_a"] is None  # old battles kept, their options unknown
    battle_id = store.add_battle(Battle(session_id="s", audio_sha256="y", model_a="a", model_b="b",
                                        response_a="r", response_b="r", options_a='{"temperature": 0.7}'))
    assert json.loads(store.battle(battle_id)["options_a"]) == {"temperature": 0.7}
