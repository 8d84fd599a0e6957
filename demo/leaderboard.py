"""Rank the arena's models from its votes.

- battle counts and the pairwise win-rate matrix (row model's score against the column model);
- win rate per model, a tie (or "both bad") counting ½, with a bootstrap 95% CI;
- Bradley–Terry ratings (scale 400, base 10, mean 1000), fitted as a logistic regression
  (P(a beats b) = 1 / (1 + 10^((R_b - R_a)/400))), with bootstrap 95% CIs over resampled battles.

    python -m demo.leaderboard --db sqlite:///results/arena/arena.db --out results/arena
writes leaderboard.csv, winrate_matrix.csv, battle_counts.csv, votes.csv and leaderboard.png.
"""
from __future__ import annotations

import argparse
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

SCALE, BASE, INIT = 400.0, 10.0, 1000.0  # FastChat / Talk Arena conventions
SCORE_A = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5, "both_bad": 0.5}


def _models(votes: pd.DataFrame) -> list[str]:
    return sorted(set(votes["model_a"]) | set(votes["model_b"]))


def _encode(votes: pd.DataFrame, models: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer arrays: model A's index, model B's index, A's score (1 win, 0 loss, ½ tie/both bad)."""
    unknown = set(votes["outcome"]) - set(SCORE_A)
    if unknown:
        raise ValueError(f"unknown outcomes {sorted(unknown)}")
    col = {m: i for i, m in enumerate(models)}
    return (votes["model_a"].map(col).to_numpy(dtype=int), votes["model_b"].map(col).to_numpy(dtype=int),
            votes["outcome"].map(SCORE_A).to_numpy(dtype=float))


def _pair_totals(a, b, s, m: int) -> tuple[np.ndarray, np.ndarray]:
    """(S, N): S[i, j] = i's total score against j, N[i, j] = battles between i and j."""
    S, N = np.zeros((m, m)), np.zeros((m, m))
    np.add.at(S, (a, b), s)
    np.add.at(S, (b, a), 1.0 - s)
    np.add.at(N, (a, b), 1.0)
    np.add.at(N, (b, a), 1.0)
    return S, N


def _win_rate(S: np.ndarray, N: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return S.sum(1) / N.sum(1)


def _fit_bt(S: np.ndarray, C: float) -> np.ndarray:
    """Bradley–Terry ratings from the pairwise score matrix, by logistic regression.

    One row per pair i < j that met: +ln(10) in i's column, -ln(10) in j's; label "i won" with
    weight S[i, j] (a tie gave each side ½) and "i lost" with weight S[j, i]. Each row also enters
    mirrored (j vs i, label flipped), which leaves the fit unchanged and keeps both classes present.
    The large C (a weak L2 prior) only matters when a model won or lost everything, where the
    unpenalised estimate is infinite. Ratings are centred on 1000.
    """
    from sklearn.linear_model import LogisticRegression

    m = S.shape[0]
    i, j = np.nonzero(np.triu((S + S.T) > 0, k=1))
    if i.size == 0:
        return np.full(m, INIT)
    x = np.zeros((i.size, m))
    x[np.arange(i.size), i] = math.log(BASE)
    x[np.arange(i.size), j] = -math.log(BASE)
    won, lost = S[i, j], S[j, i]
    X = np.concatenate([x, x, -x, -x])
    y = np.concatenate([np.ones(i.size), np.zeros(i.size), np.zeros(i.size), np.ones(i.size)])
    w = np.concatenate([won, lost, won, lost])
    keep = w > 0
    fit = LogisticRegression(fit_intercept=False, C=C, tol=1e-10, max_iter=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings on degenerate resamples
        fit.fit(X[keep], y[keep], sample_weight=w[keep])
    coef = fit.coef_[0]
    return INIT + SCALE * (coef - coef.mean())


def battle_counts(votes: pd.DataFrame) -> pd.DataFrame:
    models = _models(votes)
    _, N = _pair_totals(*_encode(votes, models), len(models))
    return pd.DataFrame(N.astype(int), index=models, columns=models)


def win_rate_matrix(votes: pd.DataFrame) -> pd.DataFrame:
    """Entry (i, j): model i's mean score against model j (ties ½); NaN where they never met."""
    models = _models(votes)
    S, N = _pair_totals(*_encode(votes, models), len(models))
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.DataFrame(np.where(N > 0, S / N, np.nan), index=models, columns=models)


def win_rates(votes: pd.DataFrame, models: list[str] | None = None) -> pd.DataFrame:
    """Per model: battles, wins, losses, ties (incl. both bad) and the win rate with ties as ½."""
    models = models or _models(votes)
    a, b, s = _encode(votes, models)
    rows = []
    for k, m in enumerate(models):
        mine = np.concatenate([s[a == k], 1.0 - s[b == k]])
        rows.append({"model": m, "battles": mine.size, "wins": int((mine == 1).sum()),
                     "losses": int((mine == 0).sum()), "ties": int((mine == 0.5).sum()),
                     "win_rate": mine.mean() if mine.size else math.nan})
    return pd.DataFrame(rows, columns=["model", "battles", "wins", "losses", "ties", "win_rate"]).set_index("model")


def bradley_terry(votes: pd.DataFrame, models: list[str] | None = None, C: float = 1e4) -> pd.Series:
    """Bradley–Terry ratings (scale 400, base 10, mean 1000): P(a beats b) = 1/(1+10^((R_b-R_a)/400))."""
    from threadpoolctl import threadpool_limits

    models = models or _models(votes)
    S, _ = _pair_totals(*_encode(votes, models), len(models))
    with threadpool_limits(1):  # tiny problems: BLAS threads only cost time
        return pd.Series(_fit_bt(S, C), index=models)


def bootstrap(votes: pd.DataFrame, models: list[str] | None = None, rounds: int = 1000, seed: int = 0,
              C: float = 1e4) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ratings and win rates on `rounds` resamples of the battles (with replacement):
    two frames, one row per round, one column per model."""
    from threadpoolctl import threadpool_limits

    models = models or _models(votes)
    a, b, s = _encode(votes, models)
    rng = np.random.default_rng(seed)
    ratings, rates = [], []
    with threadpool_limits(1):
        for _ in range(rounds):
            idx = rng.integers(0, len(s), len(s))
            S, N = _pair_totals(a[idx], b[idx], s[idx], len(models))
            ratings.append(_fit_bt(S, C))
            rates.append(_win_rate(S, N))
    return pd.DataFrame(ratings, columns=models), pd.DataFrame(rates, columns=models)


def left_side_share(votes: pd.DataFrame) -> tuple[float, int]:
    """Share of decisive votes won by the left answer ("Model A"), and their number: a position-bias
    check (about ½ when the shuffle works and voters have no side preference)."""
    decisive = votes["outcome"].isin(["model_a", "model_b"])
    n = int(decisive.sum())
    return (float((votes.loc[decisive, "outcome"] == "model_a").mean()) if n else math.nan), n


def leaderboard(votes: pd.DataFrame, rounds: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per model, best rating first: rating and win rate, each with a 95% bootstrap CI."""
    models = _models(votes)
    table = win_rates(votes, models)
    table.insert(0, "rating", bradley_terry(votes, models))
    for c in ("rating_lo", "rating_hi", "win_rate_lo", "win_rate_hi"):
        table[c] = math.nan
    if len(votes) and rounds:
        ratings, rates = bootstrap(votes, models, rounds, seed)
        table["rating_lo"], table["rating_hi"] = ratings.quantile(0.025), ratings.quantile(0.975)
        table["win_rate_lo"], table["win_rate_hi"] = rates.quantile(0.025), rates.quantile(0.975)
    table = table[["rating", "rating_lo", "rating_hi", "battles", "wins", "losses", "ties",
                   "win_rate", "win_rate_lo", "win_rate_hi"]].sort_values("rating", ascending=False)
    table.insert(0, "rank", range(1, len(table) + 1))
    return table


def figure(table: pd.DataFrame, rates: pd.DataFrame):
    """Ratings with CIs (left) and the pairwise win-rate matrix (right), as a matplotlib Figure."""
    from matplotlib.figure import Figure  # no pyplot: no global figure state, safe in threads

    fig = Figure(figsize=(11, 0.6 * len(table) + 2.5))
    ax1, ax2 = fig.subplots(1, 2)
    order = table.index[::-1]
    y = np.arange(len(order))
    r = table.loc[order]
    err = np.vstack([r["rating"] - r["rating_lo"], r["rating_hi"] - r["rating"]])
    ax1.errorbar(r["rating"], y, xerr=np.nan_to_num(err), fmt="o", capsize=4)
    ax1.set_yticks(y, order)
    ax1.axvline(INIT, color="grey", lw=0.5)
    ax1.set_xlabel("Bradley–Terry rating (95% bootstrap CI)")
    ax1.set_title(f"Arena ratings ({int(table['battles'].sum() // 2)} votes)")
    names = list(table.index)
    m = rates.loc[names, names].to_numpy(dtype=float)
    im = ax2.imshow(m, vmin=0, vmax=1, cmap="RdBu")
    ax2.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax2.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(names)):
            if not np.isnan(m[i, j]):
                ax2.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center")
    ax2.set_title("Win rate of row vs column (ties ½)")
    fig.colorbar(im, ax=ax2, fraction=0.046)
    fig.tight_layout()
    return fig


def plot(table: pd.DataFrame, rates: pd.DataFrame, path: str | Path) -> None:
    figure(table, rates).savefig(path, dpi=120)


def write_outputs(store, out: str | Path, rounds: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Compute everything from a VoteStore and write the CSVs and the PNG under `out`.
    A store without votes writes nothing (earlier outputs are left as they are)."""
    exported = store.votes_frame()
    table = leaderboard(exported, rounds, seed)
    if exported.empty:
        return table
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    exported.to_csv(out / "votes.csv", index=False)
    table.to_csv(out / "leaderboard.csv", float_format="%.4f")
    rates = win_rate_matrix(exported)
    rates.to_csv(out / "winrate_matrix.csv", float_format="%.4f")
    battle_counts(exported).to_csv(out / "battle_counts.csv")
    plot(table, rates, out / "leaderboard.png")
    return table


def main(argv: list[str] | None = None) -> None:
    from demo.config import DEFAULT_CONFIG, REPO_ROOT, load_config
    from demo.store import VoteStore

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--db", help="SQLAlchemy URL (default: the arena config's db)")
    p.add_argument("--config", default=str(DEFAULT_CONFIG))
    p.add_argument("--out", default="results/arena")
    p.add_argument("--rounds", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    url = args.db or load_config(args.config).resolved(REPO_ROOT).db
    table = write_outputs(VoteStore(url), args.out, args.rounds, args.seed)
    if table.empty:
        print(f"no votes in {url}; nothing written")
        return
    pd.set_option("display.width", 160)
    print(table.round(3).to_string())
    share, n = left_side_share(VoteStore(url).votes_frame())
    print(f"position check: the left answer won {share:.0%} of {n} decisive votes")
    print(f"wrote {args.out}/leaderboard.csv, winrate_matrix.csv, battle_counts.csv, votes.csv, leaderboard.png")


if __name__ == "__main__":
    main()
