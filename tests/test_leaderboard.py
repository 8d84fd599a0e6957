"""Leaderboard numbers against hand-computed cases.

Bradley–Terry has a closed form when every pair's observed score is consistent with some ratings:
the MLE then reproduces each pair's score exactly. With A beating B 2:1, B beating C 2:1 and A
beating C 4:1, the odds multiply (2 × 2 = 4), so R_A − R_B = R_B − R_C = 400·log10(2) = 120.41.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from demo import leaderboard as lb
from demo.store import Battle, VoteStore


def frame(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["model_a", "model_b", "outcome"])


CONSISTENT = frame([("A", "B", "model_a")] * 2 + [("B", "A", "model_a")]          # A 2:1 B (one as side B)
                   + [("B", "C", "model_a")] * 2 + [("B", "C", "model_b")]        # B 2:1 C
                   + [("C", "A", "model_b")] * 4 + [("A", "C", "model_b")])      # A 4:1 C


def test_bradley_terry_matches_the_closed_form():
    step = 400 * math.log10(2)  # 120.41
    ratings = lb.bradley_terry(CONSISTENT)
    assert ratings["A"] == pytest.approx(1000 + step, abs=0.05)
    assert ratings["B"] == pytest.approx(1000, abs=0.05)
    assert ratings["C"] == pytest.approx(1000 - step, abs=0.05)


def test_ties_and_both_bad_count_half():
    # A's score against B: win, win, tie, both bad, loss = 3 of 5 -> odds 1.5 -> gap 400·log10(1.5) = 70.44
    votes = frame([("A", "B", "model_a"), ("B", "A", "model_b"), ("A", "B", "tie"), ("B", "A", "both_bad"),
                   ("A", "B", "model_b")])
    ratings = lb.bradley_terry(votes)
    assert ratings["A"] - ratings["B"] == pytest.approx(400 * math.log10(1.5), abs=0.05)
    assert ratings.mean() == pytest.approx(1000)
    rates = lb.win_rates(votes)
    assert rates.loc["A", "win_rate"] == pytest.approx(0.6) and rates.loc["B", "win_rate"] == pytest.approx(0.4)
    assert tuple(rates.loc["A", ["battles", "wins", "losses", "ties"]]) == (5, 2, 1, 2)


def test_win_rate_matrix_and_counts():
    matrix, counts = lb.win_rate_matrix(CONSISTENT), lb.battle_counts(CONSISTENT)
    assert matrix.loc["A", "B"] == pytest.approx(2 / 3) and matrix.loc["B", "A"] == pytest.approx(1 / 3)
    assert matrix.loc["A", "C"] == pytest.approx(0.8) and matrix.loc["B", "C"] == pytest.approx(2 / 3)
    assert np.isnan(matrix.loc["A", "A"])
    assert counts.loc["A", "C"] == counts.loc["C", "A"] == 5 and counts.loc["A", "B"] == 3
    rates = lb.win_rates(CONSISTENT)
    assert rates.loc["A", "win_rate"] == pytest.approx(6 / 8)


def test_left_side_share():
    share, n = lb.left_side_share(CONSISTENT)
    assert n == 11 and share == pytest.approx(5 / 11)  # the left answer won 5 of the 11 (all decisive)


def test_bootstrap_ci_matches_a_hand_computed_bootstrap():
    """Two models, 28 wins of 40: each resample's BT gap is 400·log10(p*/(1-p*)), with p* the resampled
    win share, so the bootstrap CI can be computed by hand from the same resampling indices."""
    outcome = ["model_a"] * 28 + ["model_b"] * 12
    votes = frame([("A", "B", o) for o in outcome])
    rounds, seed = 300, 7
    table = lb.leaderboard(votes, rounds=rounds, seed=seed)
    wins = np.array([o == "model_a" for o in outcome], dtype=float)
    rng = np.random.default_rng(seed)
    p = np.array([wins[rng.integers(0, 40, 40)].mean() for _ in range(rounds)])
    rating_a = 1000 + 200 * np.log10(p / (1 - p))
    assert table.loc["A", "rating"] == pytest.approx(1000 + 200 * math.log10(28 / 12), abs=0.05)
    assert table.loc["A", "rating_lo"] == pytest.approx(np.quantile(rating_a, 0.025), abs=0.1)
    assert table.loc["A", "rating_hi"] == pytest.approx(np.quantile(rating_a, 0.975), abs=0.1)
    assert table.loc["A", "win_rate_lo"] == pytest.approx(np.quantile(p, 0.025))
    assert table.loc["A", "win_rate_hi"] == pytest.approx(np.quantile(p, 0.975))
    assert table.loc["A", "rating_lo"] < table.loc["A", "rating"] < table.loc["A", "rating_hi"]


def test_bootstrap_ci_covers_the_hand_computed_ratings():
    table = lb.leaderboard(CONSISTENT, rounds=300, seed=0)
    step = 400 * math.log10(2)
    for model, expected in {"A": 1000 + step, "B": 1000.0, "C": 1000 - step}.items():
        assert table.loc[model, "rating_lo"] <= expected <= table.loc[model, "rating_hi"]
    assert list(table.index) == ["A", "B", "C"] and list(table["rank"]) == [1, 2, 3]


def test_simulated_arena_recovers_true_ratings():
    true = {"x": 1100.0, "y": 1000.0, "z": 900.0}
    rng = np.random.default_rng(3)
    rows = []
    for _ in range(900):
        a, b = rng.choice(list(true), 2, replace=False)
        p_a = 1 / (1 + 10 ** ((true[b] - true[a]) / 400))
        rows.append((a, b, "model_a" if rng.random() < p_a else "model_b"))
    table = lb.leaderboard(frame(rows), rounds=200, seed=0)
    for model, rating in true.items():
        assert table.loc[model, "rating_lo"] <= rating <= table.loc[model, "rating_hi"]
        assert table.loc[model, "rating_hi"] - table.loc[model, "rating_lo"] < 120


def test_cli_writes_csvs_and_png(tmp_path):
    url = f"sqlite:///{tmp_path}/votes.db"
    store = VoteStore(url)
    for a, b, outcome in CONSISTENT.itertuples(index=False):
        battle_id = store.add_battle(Battle(session_id="s", audio_sha256="0" * 64, model_a=a, model_b=b,
                                            response_a="..", response_b=".."))
        store.record_vote(battle_id, outcome)
    lb.main(["--db", url, "--out", str(tmp_path / "out"), "--rounds", "50"])
    out = tmp_path / "out"
    for name in ("leaderboard.csv", "winrate_matrix.csv", "battle_counts.csv", "votes.csv", "leaderboard.png"):
        assert (out / name).stat().st_size > 0, name
    exported = pd.read_csv(out / "votes.csv")
    assert list(exported.columns) == ["battle_id", "time", "model_a", "model_b", "outcome"]
    assert len(exported) == len(CONSISTENT) and set(exported["outcome"]) <= {"model_a", "model_b", "tie", "both_bad"}
    table = pd.read_csv(out / "leaderboard.csv", index_col="model")
    assert table.loc["A", "rating"] == pytest.approx(1000 + 400 * math.log10(2), abs=0.05)


def test_empty_store_leaves_earlier_outputs_alone(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "votes.csv").write_text("earlier")
    table = lb.write_outputs(VoteStore(f"sqlite:///{tmp_path}/empty.db"), tmp_path / "out", rounds=10)
    assert table.empty and (tmp_path / "out" / "votes.csv").read_text() == "earlier"
