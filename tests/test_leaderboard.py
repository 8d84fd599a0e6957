"""Leaderboard numbers against hand-computed cases, the hygiene rules and the command line.

Bradley–Terry has a closed form when every pair's observed score is consistent with some ratings:
the MLE then reproduces each pair's score exactly. With A beating B 2:1, B beating C 2:1 and A
beating C 4:1, the odds multiply (2 × 2 = 4), so R_A − R_B = R_B − R_C = 400·log10(2) = 120.41.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from demo import hygiene, ratings, votelogs
from demo import leaderboard as lb
from demo.store import Battle, VoteStore


def frame(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["model_a", "model_b", "outcome"])


CONSISTENT = frame([("A", "B", "model_a")] * 2 + [("B", "A", "model_a")]          # A 2:1 B (one as side B)
                   + [("B", "C", "model_a")] * 2 + [("B", "C", "model_b")]        # B 2:1 C
                   + [("C", "A", "model_b")] * 4 + [("A", "C", "model_b")])      # A 4:1 C


def test_bradley_terry_matches_the_closed_form():
    step = 400 * math.log10(2)  # 120.41
    fitted = ratings.bradley_terry(CONSISTENT)  # no prior: the plain maximum-likelihood fit
    assert fitted["A"] == pytest.approx(1000 + step, abs=0.05)
    assert fitted["B"] == pytest.approx(1000, abs=0.05)
    assert fitted["C"] == pytest.approx(1000 - step, abs=0.05)


def test_ties_and_both_bad_count_half():
    # A's score against B: win, win, tie, both bad, loss = 3 of 5 -> odds 1.5 -> gap 400·log10(1.5) = 70.44
    votes = frame([("A", "B", "model_a"), ("B", "A", "model_b"), ("A", "B", "tie"), ("B", "A", "both_bad"),
                   ("A", "B", "model_b")])
    fitted = ratings.bradley_terry(votes)
    assert fitted["A"] - fitted["B"] == pytest.approx(400 * math.log10(1.5), abs=0.05)
    assert fitted.mean() == pytest.approx(1000)
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
    table = lb.leaderboard(votes, rounds=rounds, seed=seed, prior=0)  # 40 battles each: both established
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
    table = lb.leaderboard(CONSISTENT, rounds=300, seed=0, min_battles=1, prior=0)
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
    assert lb.main(["--db", url, "--out", str(tmp_path / "out"), "--rounds", "50", "--min-battles", "1",
                    "--prior", "0"]) == 0
    out = tmp_path / "out"
    for name in ("leaderboard.csv", "winrate_matrix.csv", "battle_counts.csv", "votes.csv", "hygiene.csv",
                 "notes.txt", "leaderboard.png"):
        assert (out / name).stat().st_size > 0, name
    exported = pd.read_csv(out / "votes.csv")
    assert list(exported.columns) == ["battle_id", "time", "model_a", "model_b", "outcome"]
    assert len(exported) == len(CONSISTENT) and set(exported["outcome"]) <= {"model_a", "model_b", "tie", "both_bad"}
    table = pd.read_csv(out / "leaderboard.csv", index_col="model")
    assert table.loc["A", "rating"] == pytest.approx(1000 + 400 * math.log10(2), abs=0.05)


def test_empty_store_leaves_earlier_outputs_alone(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "votes.csv").write_text("earlier")
    url = f"sqlite:///{tmp_path}/empty.db"
    result = lb.write_outputs(VoteStore(url), tmp_path / "out", rounds=10)
    assert result.table.empty and result.rated.groups == [] and len(result.votes) == 0
    assert (tmp_path / "out" / "votes.csv").read_text() == "earlier"
    assert lb.main(["--db", url, "--out", str(tmp_path / "out"), "--rounds", "10"]) == 0
    assert "no votes that count" in capsys.readouterr().out


# --- hygiene ---------------------------------------------------------------------------------------

def log(rows: list[dict]) -> pd.DataFrame:
    """A vote log as the readers return it; unspecified fields unknown."""
    return votelogs.normalise(pd.DataFrame(rows))


def vote(battle_id, a="A", b="B", outcome="model_a", voter="v1", audio=None, day=1, ra="Paris.", rb="Lyon."):
    return dict(battle_id=battle_id, model_a=a, model_b=b, outcome=outcome, voter=voter, audio=audio or battle_id,
                time=f"2025-11-0{day}T10:{len(str(battle_id)):02d}:00+00:00", response_a=ra, response_b=rb)


def test_each_hygiene_rule_is_applied_and_counted():
    votes = log([vote("b1", audio="h1"),
                 vote("b1", outcome="tie"),                                   # the same battle again
                 vote("b2", a="B", b="A", outcome="model_b", audio="h1"),     # same voter, audio, pair, choice
                 vote("b3", b="A"),                                          # A against itself
                 vote("b4", ra="  "),                                         # an empty reply
                 vote("b5", rb="Sure! As GPT-4o I would say Lyon."),         # names a model
                 vote("b6", ra="It falls during Divali.")]                   # a longer word: no leak
                + [vote(f"c{i}", voter="v9", day=2) for i in range(5)]       # 5 in a day, cap 3
                + [vote("d1", voter="v9", day=3)])
    counted, removed = hygiene.clean(votes, daily_cap=3)
    assert removed.set_index("rule")["votes"].tolist() == [1, 1, 1, 1, 1, 2]
    assert sorted(counted["battle_id"]) == ["b1", "b6", "c0", "c1", "c2", "d1"]
    assert counted.loc[counted["battle_id"] == "b1", "outcome"].item() == "model_a"  # the first vote stands
    _, uncapped = hygiene.clean(votes, daily_cap=0)
    assert uncapped["votes"].iloc[-1] == 0
    note = lb.report(votes, rounds=0, daily_cap=3).note()
    for rule, n in zip(hygiene.RULES, [1, 1, 1, 1, 1, 2]):
        assert f"{rule}: {n}" in note


def test_leak_pattern():
    found = hygiene.leak_pattern(hygiene.LEAK_NAMES + ("cascade-mini",)).search
    for text in ("I am Llama3.", "as gpt-4o", "ChatGPT here", "Qwen2-Audio says", "DIVA", "I'm cascade-mini"):
        assert found(text), text
    for text in ("Divali", "a llamas farm", "cascade", "no names"):
        assert not found(text), text


def test_position_bias_has_an_exact_ci():
    from scipy.stats import binomtest
    votes = log([vote(f"b{i}", outcome="model_a" if i < 40 else "model_b") for i in range(60)]
                + [vote("t", outcome="tie"), vote("s", outcome="model_a") | {"sided": False}])
    bias = hygiene.position_bias(votes)
    exact = binomtest(40, 60).proportion_ci(0.95, method="exact")
    assert (bias.decisive, bias.left_share) == (60, pytest.approx(2 / 3))
    assert (bias.lo, bias.hi) == (pytest.approx(exact.low), pytest.approx(exact.high))
    assert bias.lo < 2 / 3 < bias.hi and bias.p_value == pytest.approx(binomtest(40, 60).pvalue)
    assert "66.7% of 60 decisive votes" in bias.describe()


def test_report_names_groups_and_provisional_models(tmp_path):
    rng = np.random.default_rng(0)
    rows = [(a, b, "model_a" if rng.random() < 0.6 else "model_b") for a, b in [("A", "B"), ("B", "C"), ("C", "A")] * 20]
    rows += [("D", "E", "model_a" if rng.random() < 0.5 else "model_b") for _ in range(25)] + [("P", "A", "model_a")]
    result = lb.write_outputs(frame(rows), tmp_path, rounds=30)
    note = result.note()
    assert "2 groups that never met" in note and "group 1: A, B, C, P" in note and "group 2: D, E" in note
    assert "provisional" in note and "P (1)" in note
    table = pd.read_csv(tmp_path / "leaderboard.csv", index_col="model")
    assert table.loc["P", "status"] == "provisional" and np.isnan(table.loc["P", "rank"])
    assert table.loc["D", "group"] == 2 and table.loc["D", "rank"] in (1, 2)
    assert (tmp_path / "notes.txt").read_text().strip() == note


def test_the_arena_page_calls_still_work():
    """What demo/ui.py calls, on the store's 5-column export: table, matrix, position share, figure."""
    votes = frame([("x", "y", "model_a")] * 3 + [("y", "x", "tie")])
    table = lb.leaderboard(votes, 20)
    shown = table.round({"rating": 0, "rating_lo": 0, "rating_hi": 0}).reset_index()
    assert list(shown["model"]) == ["x", "y"] and set(table["status"]) == {"provisional"}
    assert lb.left_side_share(votes) == (1.0, 3)
    fig = lb.figure(table, lb.win_rate_matrix(votes))
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["y (prov.)", "x (prov.)"]
