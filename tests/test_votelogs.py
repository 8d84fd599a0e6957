"""Vote logs in and out: Talk Arena, FastChat and DiVA-study readers on small fixture files, our FastChat
export and its round trip, the store's hashed voter column, and clear errors for bad files."""
from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd
import pytest
from arena_helpers import throwaway_postgres
from sqlalchemy import inspect

from demo import leaderboard as lb
from demo import votelogs
from demo.store import Battle, VoteStore, voter_hash


def latency(n_chars: int) -> dict:
    return {"time_to_first_token": 0.4, "total_time": 1.5, "response_length": n_chars}


@pytest.fixture
def talk_arena(tmp_path):
    entries = {"1": ("gpt4o", "diva", 0, 120), "2": ("diva", "gpt4o", 1, 80), "3": ("gpt4o", "qwen2", 0.5, 60),
               "4": ("qwen2", "diva", 0, 0)}  # entry 4: model_a answered nothing
    doc = {"_default": {k: {"audio_hash": f"h{k}", "outcome": o, "model_a": a, "model_b": b, "why": "",
                            "model_a_latency": latency(n), "model_b_latency": latency(50)}
                        for k, (a, b, o, n) in entries.items()}}
    path = tmp_path / "talk_arena.json"
    path.write_text(json.dumps(doc))
    return path


def fastchat_line(kind, left, right, reply_a="Paris.", reply_b="Lyon.", conv=("c1", "c2"), ip="198.51.100.4",
                  anonymous=False, tstamp=1_760_000_000.0) -> str:
    states = [{"conv_id": c, "model_name": m, "roles": ["USER", "ASSISTANT"], "offset": 0,
               "messages": [["USER", "Capital of France?"], ["ASSISTANT", r]]}
              for c, m, r in zip(conv, (left, right), (reply_a, reply_b))]
    models = ["", ""] if anonymous else [left, right]
    return json.dumps({"tstamp": tstamp, "type": kind, "models": models, "states": states, "ip": ip})


@pytest.fixture
def fastchat(tmp_path):
    lines = [fastchat_line("leftvote", "llama-3", "qwen2", conv=("a1", "b1")),
             fastchat_line("rightvote", "qwen2", "llama-3", conv=("a2", "b2"), anonymous=True),
             fastchat_line("tievote", "llama-3", "qwen2", conv=("a3", "b3")),
             json.dumps({"tstamp": 1_760_000_100.0, "type": "chat", "model": "qwen2"}),  # not a vote
             fastchat_line("bothbad_vote", "llama-3", "qwen2", reply_a="As Qwen, I think Paris.", conv=("a4", "b4")),
             fastchat_line("leftvote", "llama-3", "qwen2", reply_b="**NETWORK ERROR DUE TO HIGH TRAFFIC.**",
                           conv=("a5", "b5"), ip="198.51.100.5")]  # another voter: not a repeat of line 1
    path = tmp_path / "battles.jsonl"
    path.write_text("\n".join(lines) + "\n\n")
    return path


@pytest.fixture
def study(tmp_path):
    """The paper's user study in shape and size: 522 preferences, 374 for DiVA."""
    best = ["diva"] * 374 + ["qwen2"] * 148
    path = tmp_path / "user_study.json"
    path.write_text(json.dumps({"_default": {str(i + 1): {"audio_hash": f"a{i}", "best": b}
                                             for i, b in enumerate(best)}}))
    return path


def test_talk_arena_reader(talk_arena):
    votes = votelogs.read(talk_arena, "talk-arena")
    assert list(votes.columns) == votelogs.COLUMNS
    assert list(votes["outcome"]) == ["model_a", "model_b", "tie", "model_a"]
    assert list(votes["audio"]) == ["h1", "h2", "h3", "h4"] and list(votes["reply_failed"]) == [False] * 3 + [True]
    result = lb.report(votes, rounds=20)
    removed = result.removed.set_index("rule")["votes"]
    assert removed["a reply failed or was empty"] == 1 and len(result.counted) == 3


def test_fastchat_reader(fastchat):
    votes = votelogs.read(fastchat, "fastchat")
    assert votes.attrs["skipped"] == 1 and len(votes) == 5
    assert list(votes["outcome"]) == ["model_a", "model_b", "tie", "both_bad", "model_a"]
    assert (votes.loc[1, "model_a"], votes.loc[1, "model_b"]) == ("qwen2", "llama-3")  # from the states
    assert votes.loc[0, "battle_id"] == "a1|b1" and votes.loc[0, "time"] == "2025-10-09T08:53:20+00:00"
    assert votes.loc[0, "response_a"] == "Paris." and votes.loc[0, "prompt"] == "Capital of France?"
    voter = votes.loc[0, "voter"]
    assert len(voter) == 64 and "198.51.100.4" not in voter and votes["voter"].nunique() == 2  # hashed, stable
    assert votes.loc[4, "reply_failed"] and not votes.loc[0, "reply_failed"]
    removed = lb.report(votes, rounds=20).removed.set_index("rule")["votes"]
    assert removed["a reply names a model"] == 1 and removed["a reply failed or was empty"] == 1


def test_diva_study_reader_and_figure_6(study, tmp_path, capsys):
    from figures import data, draw, render
    votes = votelogs.read(study, "diva-study")
    assert len(votes) == 522 and (votes["outcome"] == "model_a").sum() == 374 and not votes["sided"].any()
    assert lb.report(votes, rounds=0).bias.decisive == 0  # the log does not say which side was left
    shown = data.load_study(study)
    assert list(shown.columns) == data.VOTE_COLUMNS
    pairs = data.pairwise_votes(shown)
    assert (pairs.loc[0, "model_a"], pairs.loc[0, "wins_a"], pairs.loc[0, "wins_b"]) == ("diva_llama3_8b", 374, 148)
    assert pairs.loc[0, "p_value"] == pytest.approx(data.binomial_p(374, 148)) and pairs.loc[0, "p_value"] < 1e-3
    fig = render.study_figure(shown, next(s for s in draw.SPECS if s.name == "fig6_user_study"))
    widths = {p.get_gid(): p.get_width() for p in fig.axes[0].patches if p.get_gid()}
    assert widths["bar|diva_llama3_8b vs qwen2_audio_instruct_7b|a|diva_llama3_8b"] == pytest.approx(100 * 374 / 522)
    out = tmp_path / "png"
    assert render.main(["--study", str(study), "--eval-dir", str(tmp_path), "--votes", str(tmp_path / "none.csv"),
                        "--out", str(out)]) == 0
    assert (out / "study_fig6_user_study.png").stat().st_size > 0
    bad = tmp_path / "bad_study.json"
    bad.write_text(json.dumps({"_default": {"1": {"best": "gpt"}}}))
    assert render.main(["--study", str(bad), "--out", str(tmp_path / "png2")]) == 2
    assert "bad_study.json" in capsys.readouterr().out and not (tmp_path / "png2").exists()


def test_csv_reader_reads_our_export(tmp_path):
    path = tmp_path / "votes.csv"
    path.write_text("battle_id,time,model_a,model_b,outcome\nb1,2025-11-25T07:27:57+00:00,x,y,model_b\n"
                    "b2,2025-11-25T07:28:13+00:00,y,x,both_bad\n")
    votes = votelogs.read(path, "csv")
    assert list(votes["outcome"]) == ["model_b", "both_bad"] and votes["voter"].isna().all()


def make_store(url: str) -> VoteStore:
    """Votes with voters, audio, replies: one leaks a name, one reply is empty, one vote repeats."""
    store = VoteStore(url, voter_salt="pepper")
    plan = [("alpha", "beta", "model_a", "203.0.113.7", "Paris.", "Lyon."),
            ("beta", "alpha", "model_b", "203.0.113.7", "Rome.", "Paris."),   # same audio, pair, choice: a repeat
            ("alpha", "gamma", "tie", "203.0.113.8", "I am Llama 3.", "Paris."),
            ("gamma", "beta", "model_a", None, "Paris.", "  "),
            ("gamma", "alpha", "both_bad", "203.0.113.9", "Paris!", "Paris?")]
    plan += [("alpha", "beta", "model_a" if i % 3 else "model_b", f"198.51.100.{i}", "ok", "fine") for i in range(30)]
    plan += [("gamma", "beta", "model_b" if i % 4 else "tie", f"192.0.2.{i}", "yes", "no") for i in range(25)]
    for i, (a, b, outcome, voter, ra, rb) in enumerate(plan):
        battle = Battle(session_id="s", audio_sha256="f" * 64 if i < 2 else f"{i:064x}", model_a=a, model_b=b,
                        response_a=ra, response_b=rb, prompt=None if i % 2 else "capital?")
        store.record_vote(store.add_battle(battle), outcome, voter=voter)
    return store


def test_fastchat_export_round_trip(tmp_path):
    store = make_store(f"sqlite:///{tmp_path}/votes.db")
    ours = votelogs.from_store(store)
    path = votelogs.write_fastchat(ours, tmp_path / "export.jsonl")
    again = votelogs.read(path, "fastchat")
    pd.testing.assert_frame_equal(again.drop(columns="prompt"), ours.drop(columns="prompt"))
    assert again["prompt"].fillna("").tolist() == ours["prompt"].fillna("").tolist()
    first, second = lb.report(ours, rounds=50), lb.report(again, rounds=50)
    pd.testing.assert_frame_equal(first.table, second.table)
    assert first.removed["votes"].tolist()[:5] == [0, 1, 0, 1, 1]  # repeat, empty reply, leak
    assert lb.main(["--db", store.url, "--out", str(tmp_path / "out"), "--rounds", "20",
                    "--export-fastchat", str(tmp_path / "cli.jsonl")]) == 0
    assert (tmp_path / "cli.jsonl").read_text() == path.read_text()


@pytest.fixture(params=["sqlite", "postgresql"])
def old_store_url(request, tmp_path):
    """A store made before votes had a voter column, with one vote in it."""
    schema = [("CREATE TABLE battles (id VARCHAR(32) PRIMARY KEY, session_id VARCHAR(64) NOT NULL, "
               "created_at TIMESTAMP NOT NULL, audio_sha256 VARCHAR(64) NOT NULL, audio_path TEXT, audio_s FLOAT, "
               "prompt TEXT, model_a VARCHAR(128) NOT NULL, model_b VARCHAR(128) NOT NULL, response_a TEXT NOT NULL, "
               "response_b TEXT NOT NULL, ttft_a_s FLOAT, total_a_s FLOAT, ttft_b_s FLOAT, total_b_s FLOAT)"),
              ("CREATE TABLE votes (battle_id VARCHAR(32) PRIMARY KEY REFERENCES battles(id), "
               "outcome VARCHAR(16) NOT NULL, reason TEXT, voted_at TIMESTAMP NOT NULL)"),
              ("INSERT INTO battles VALUES ('b1', 's', '2025-11-25 07:00:00', 'h', NULL, 1.0, NULL, 'x', 'y', "
               "'a', 'b', NULL, NULL, NULL, NULL)"),
              "INSERT INTO votes VALUES ('b1', 'model_a', NULL, '2025-11-25 07:01:00')"]
    if request.param == "sqlite":
        with sqlite3.connect(tmp_path / "old.db") as conn:
            for statement in schema:
                conn.execute(statement)
        yield f"sqlite:///{tmp_path}/old.db"
        return
    from sqlalchemy import create_engine, text
    with throwaway_postgres() as url:
        with create_engine(url).begin() as conn:
            for statement in schema:
                conn.execute(text(statement))
        yield url


def test_voter_column_is_hashed_and_added_to_old_stores(old_store_url):
    store = VoteStore(old_store_url, voter_salt="pepper")
    assert "voter" in {c["name"] for c in inspect(store.engine).get_columns("votes")}
    assert VoteStore(old_store_url).count() == (1, 1)  # a second open finds the column there
    for i, voter in enumerate(["203.0.113.7", "203.0.113.7", None]):
        battle_id = store.add_battle(Battle(session_id="s", audio_sha256="h", model_a="x", model_b="y",
                                            response_a="a", response_b="b"))
        store.record_vote(battle_id, "tie", voter=voter)
    stored = votelogs.from_store(store)["voter"].tolist()
    assert stored[0] is None and stored[3] is None  # the old vote, and one without a voter
    assert stored[1] == stored[2] and len(stored[1]) == 64 and "203.0.113.7" not in stored[1]
    assert stored[1] == voter_hash("203.0.113.7", "pepper")


BAD_FILES = {
    "csv": ("model,outcome\nx,model_a\n", "no column model_a"),
    "talk-arena": ('{"_default": {"1": {"model_a": "x", "model_b": "y", "outcome": 2}}}', "outcome 2"),
    "fastchat": ('{"type": "leftvote", "models": ["x", "y"]}\n{not json\n', "line 2 is not JSON"),
    "diva-study": ("[1, 2, 3]", "expected DiVA user-study JSON"),
}


@pytest.mark.parametrize("fmt", sorted(BAD_FILES))
def test_bad_files_give_one_clear_line_and_exit_2(fmt, tmp_path, capsys):
    text, message = BAD_FILES[fmt]
    path = tmp_path / f"bad.{fmt}"
    path.write_text(text)
    assert lb.main(["--votes", str(path), "--format", fmt, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and message in err and "expected" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()
    assert lb.main(["--votes", str(tmp_path / "missing.json"), "--format", fmt]) == 2
    assert "missing.json" in capsys.readouterr().err


def test_cli_reads_each_format(talk_arena, fastchat, study, tmp_path, capsys):
    for path, fmt in ((talk_arena, "talk-arena"), (fastchat, "fastchat"), (study, "diva-study")):
        out = tmp_path / fmt
        assert lb.main(["--votes", str(path), "--format", fmt, "--out", str(out), "--rounds", "20"]) == 0
        table = pd.read_csv(out / "leaderboard.csv", index_col="model")
        assert np.isfinite(table["rating"]).all() and (out / "hygiene.csv").exists()
    assert "diva" in table.index and table.loc["diva", "wins"] == 374
    printed = capsys.readouterr().out
    assert "a reply names a model: 1" in printed and "log lines of other types skipped" in printed
