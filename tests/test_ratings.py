"""Ratings on sparse and lopsided votes: anchor, provisional models, prior, groups, CIs, recovery."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq
from scipy.special import expit

from demo import ratings

K = math.log(10) / 400


def frame(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["model_a", "model_b", "outcome"])


def play(true: dict[str, float], n: int, seed: int, pairs=None) -> pd.DataFrame:
    """n decisive votes drawn from Bradley–Terry with the `true` ratings, sides shuffled."""
    rng = np.random.default_rng(seed)
    pairs = pairs or [(a, b) for a in true for b in true if a < b]
    rows = []
    for k in rng.integers(0, len(pairs), n):
        a, b = pairs[k] if rng.random() < 0.5 else pairs[k][::-1]
        rows.append((a, b, "model_a" if rng.random() < expit(K * (true[a] - true[b])) else "model_b"))
    return frame(rows)


def assert_sound(result: ratings.Ratings) -> pd.DataFrame:
    """Finite ratings and every CI containing its estimate."""
    t = result.table
    values = t[["rating", "rating_lo", "rating_hi"]].to_numpy(float)
    assert np.isfinite(values).all()
    assert (t["rating_lo"] <= t["rating"]).all() and (t["rating"] <= t["rating_hi"]).all()
    return t


BASE = play({"A": 1100.0, "B": 1000.0, "C": 900.0}, 150, seed=1)  # three established models


def test_place_matches_the_closed_form():
    # one win against an opponent at the anchor, 2 virtual ties: 1 - p + 2(½ - p) = 0 -> p = 2/3
    assert ratings.place(np.array([0.0]), np.array([1.0]), np.array([1.0]), 2.0) == pytest.approx(
        400 * math.log10(2), abs=1e-4)
    # no games at all: the prior alone puts the model at the anchor
    assert ratings.place(np.array([50.0]), np.array([0.0]), np.array([0.0]), 2.0) == pytest.approx(0, abs=1e-6)


def test_a_model_with_one_battle_that_it_won():
    votes = pd.concat([BASE, frame([("new", "A", "model_a")])], ignore_index=True)
    t = assert_sound(ratings.rate(votes, rounds=200))
    assert t.loc["new", "status"] == "provisional" and pd.isna(t.loc["new", "rank"])
    assert list(t.index[-1:]) == ["new"]  # listed apart, after the established models
    # its rating solves its own score equation against A's fixed rating (reference at 1000)
    r, ra = t.loc["new", "rating"], t.loc["A", "rating"]
    assert 1 - expit(K * (r - ra)) + 2 * (0.5 - expit(K * (r - 1000))) == pytest.approx(0, abs=1e-6)
    assert ra < r < ra + 400


def test_a_model_that_lost_every_battle():
    loser = frame([("L", m, "model_b") for m in "ABC" for _ in range(10)])  # 30 battles, established
    t = assert_sound(ratings.rate(pd.concat([BASE, loser], ignore_index=True), rounds=200))
    assert t.loc["L", "status"] == "established" and t.loc["L", "losses"] == 30
    assert t.loc["L", "rating"] == t["rating"].min() and t.loc["L", "rank"] == 4
    assert t.loc["L", "rating"] > 0  # finite and not absurd: the prior holds it
    few = frame([("A", "P", "model_a")] * 5)  # a provisional model that lost its 5 battles
    t = assert_sound(ratings.rate(pd.concat([BASE, few], ignore_index=True), rounds=200))
    assert t.loc["P", "rating"] < t.loc["A", "rating"] and t.loc["P", "status"] == "provisional"


def test_two_models_only():
    votes = frame([("A", "B", "model_a")] * 25 + [("B", "A", "model_a")] * 15)  # A 25:15 B
    t = assert_sound(ratings.rate(votes, rounds=200))
    d = t.loc["A", "rating"] - t.loc["B", "rating"]
    assert t.loc["A", "rating"] + t.loc["B", "rating"] == pytest.approx(2000)
    # hand formula for A with the prior: 25 - 40 p(d) + 2 (½ - p(d/2)) = 0
    expected = brentq(lambda x: 25 - 40 * expit(K * x) + 2 * (0.5 - expit(K * x / 2)), 0, 1000)
    assert d == pytest.approx(expected, abs=0.05)
    assert d < 400 * math.log10(25 / 15)  # the prior shrinks, a little
    plain = ratings.rate(votes, prior=0, rounds=0).table
    assert plain.loc["A", "rating"] - plain.loc["B", "rating"] == pytest.approx(400 * math.log10(25 / 15), abs=0.05)
    sweep = assert_sound(ratings.rate(frame([("A", "B", "model_a")] * 30), rounds=200))  # 30:0
    assert 1000 < sweep.loc["A", "rating"] < 2000


def test_two_groups_that_never_met():
    left = play({"A": 1100.0, "B": 1000.0, "C": 900.0}, 300, seed=2)
    right = play({"D": 1300.0, "E": 1000.0}, 100, seed=3)
    result = ratings.rate(pd.concat([left, right], ignore_index=True), rounds=200)
    t = assert_sound(result)
    assert [sorted(g) for g in result.groups] == [["A", "B", "C"], ["D", "E"]]
    assert list(t["group"]) == [1, 1, 1, 2, 2]
    for g, members in t.groupby("group"):
        assert members["rating"].mean() == pytest.approx(1000, abs=1e-6)  # each group anchored on its own
        assert list(members["rank"]) == list(range(1, len(members) + 1))
    alone = ratings.rate(right, rounds=0).table
    assert t.loc["D", "rating"] == pytest.approx(alone.loc["D", "rating"], abs=1e-6)


def test_provisional_models_do_not_move_the_established():
    newcomer = frame([("P", "A", "model_a")] * 6 + [("B", "P", "model_b")] * 4)  # 10 wins in 10
    with_p = pd.concat([BASE, newcomer], ignore_index=True)
    a = assert_sound(ratings.rate(BASE, rounds=100))
    b = assert_sound(ratings.rate(with_p, rounds=100))
    assert b.loc["P", "status"] == "provisional"
    for m in "ABC":
        assert b.loc[m, "rating"] == pytest.approx(a.loc[m, "rating"], abs=1e-6)
    # a plain joint fit would have moved them: the test can tell the difference
    plain_a, plain_b = ratings.bradley_terry(BASE, prior=2), ratings.bradley_terry(with_p, prior=2)
    assert abs(plain_b["A"] - plain_a["A"]) > 5


def test_an_all_provisional_group_is_fitted_together():
    t = assert_sound(ratings.rate(frame([("x", "y", "model_a")] * 5 + [("y", "x", "model_a")]), rounds=100))
    assert set(t["status"]) == {"provisional"} and t["rating"].mean() == pytest.approx(1000)
    assert t.loc["x", "rating"] > t.loc["y", "rating"]


def test_named_anchor_is_held_at_1000():
    t = assert_sound(ratings.rate(BASE, anchor="B", rounds=100))
    assert t.loc["B", ["rating", "rating_lo", "rating_hi"]].tolist() == pytest.approx([1000] * 3)
    # without a prior the anchor only moves the origin: the same differences as under the mean anchor
    mean_anchored = ratings.rate(BASE, prior=0, rounds=0).table
    b_anchored = ratings.rate(BASE, anchor="B", prior=0, rounds=0).table
    for m in "AC":
        assert b_anchored.loc[m, "rating"] - 1000 == pytest.approx(
            mean_anchored.loc[m, "rating"] - mean_anchored.loc["B", "rating"], abs=0.01)
    with pytest.raises(ratings.AnchorError, match="'Z' is not among"):
        ratings.rate(BASE, anchor="Z", rounds=0)


def test_empty_votes():
    result = ratings.rate(frame([]), rounds=100)
    assert result.table.empty and list(result.table.columns) == ratings.TABLE_COLUMNS and result.groups == []


@pytest.mark.parametrize("seed", range(4))
def test_cis_contain_their_estimates_on_sparse_lopsided_logs(seed):
    rng = np.random.default_rng(seed)
    true = {m: float(r) for m, r in zip("ABCDEFG", rng.normal(1000, 300, 7))}
    votes = play(true, int(rng.integers(20, 80)), seed)  # sparse: some models provisional, some sweeps
    result = ratings.rate(votes, min_battles=10, rounds=150, seed=seed)
    assert_sound(result)
    for a in result.table.index[:3]:
        for b in result.table.index[3:5]:
            d, lo, hi = result.difference_ci(a, b)
            assert lo <= d <= hi


def test_synthetic_log_recovers_the_true_differences():
    """6 models, 3,000 votes from known ratings: every fitted difference's CI holds the true one."""
    true = {"m1": 1250.0, "m2": 1120.0, "m3": 1050.0, "m4": 1000.0, "m5": 930.0, "m6": 800.0}
    result = ratings.rate(play(true, 3000, seed=11), rounds=300, seed=5)
    assert_sound(result)
    errors, halves = [], []
    for a, ra in true.items():
        for b, rb in true.items():
            if a < b:
                d, lo, hi = result.difference_ci(a, b)
                assert lo <= ra - rb <= hi, (a, b, d, lo, hi)
                errors.append(abs(d - (ra - rb)))
                halves.append((hi - lo) / 2)
    assert max(errors) < max(halves) < 80
    print(f"max |error| {max(errors):.1f} points; CI half-widths {min(halves):.1f}–{max(halves):.1f}")
    # anchored on m4: each rating's own CI is a CI of its difference to m4
    t = ratings.rate(play(true, 3000, seed=11), anchor="m4", rounds=300, seed=5).table
    for m, r in true.items():
        assert t.loc[m, "rating_lo"] <= 1000 + r - true["m4"] <= t.loc[m, "rating_hi"]
