"""Bradley–Terry ratings from arena votes, built to hold up on sparse and lopsided logs.

P(a beats b) = 1 / (1 + 10^((R_b - R_a) / 400)); a tie or "both bad" counts ½ to each side.

- Anchor: in each group the mean rating of its established models is 1000, or, with `anchor=`,
  that model's rating is held at 1000 (in every bootstrap round too).
- Established models have at least `min_battles` battles and are fitted jointly, on their battles
  with each other only. Each provisional model (fewer battles) is then placed on its own against
  the fixed ratings of the established models it met, so it cannot move them.
- Prior: each rated model also plays `prior` virtual tied games against a reference player at the
  scale's centre, so a model that won (or lost) everything still gets a finite rating.
- Groups: established models that are not linked by any chain of battles cannot share a scale;
  each connected component of the comparison graph is anchored and ranked on its own.
- CIs: percentile bootstrap over resampled votes; every round repeats the steps above with the
  same groups and model classes. Where the bootstrap distribution lies wholly on one side of the
  estimate (a lopsided record), the interval is extended to the estimate, so it always contains it.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.special import expit

SCALE, BASE, INIT = 400.0, 10.0, 1000.0  # FastChat / Talk Arena conventions
LOGIT_PER_POINT = math.log(BASE) / SCALE
SCORE_A = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5, "both_bad": 0.5}
MIN_BATTLES = 20
PRIOR_TIES = 2.0
TABLE_COLUMNS = ["group", "rank", "status", "rating", "rating_lo", "rating_hi", "battles", "wins", "losses",
                 "ties", "win_rate", "win_rate_lo", "win_rate_hi"]


class AnchorError(ValueError):
    """The anchor named is not among the rated models."""


def models_in(votes: pd.DataFrame) -> list[str]:
    return sorted(set(votes["model_a"]) | set(votes["model_b"]))


def encode(votes: pd.DataFrame, models: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer arrays: model A's index, model B's index, A's score (1 win, 0 loss, ½ tie/both bad)."""
    unknown = set(votes["outcome"]) - set(SCORE_A)
    if unknown:
        raise ValueError(f"unknown outcomes {sorted(unknown)}")
    col = {m: i for i, m in enumerate(models)}
    return (votes["model_a"].map(col).to_numpy(dtype=int), votes["model_b"].map(col).to_numpy(dtype=int),
            votes["outcome"].map(SCORE_A).to_numpy(dtype=float))


def pair_totals(a, b, s, m: int) -> tuple[np.ndarray, np.ndarray]:
    """(S, N): S[i, j] = i's total score against j, N[i, j] = battles between i and j."""
    ab, ba = a * m + b, b * m + a
    S = np.bincount(ab, s, m * m) + np.bincount(ba, 1.0 - s, m * m)
    N = np.bincount(ab, minlength=m * m) + np.bincount(ba, minlength=m * m)
    return S.reshape(m, m), N.reshape(m, m).astype(float)


def fit_joint(S: np.ndarray, prior: float, anchor: int | None = None) -> np.ndarray:
    """Ratings (points relative to the anchor) of the models in S, fitted together by logistic regression.

    One row per pair that met: +ln 10 in i's column, -ln 10 in j's, label "i won" weighted by S[i, j]
    and "i lost" by S[j, i], each also mirrored (which keeps both classes present, and counts every
    game twice). Each model with a free rating adds `prior` virtual tied games against a reference at
    0: rows with only its own column, a win and a loss each weighted `prior` (twice `prior`/2). `anchor` fixes that model at 0 (its column is dropped); otherwise the result is
    shifted to mean 0. The large C makes sklearn's own L2 term negligible unless prior == 0.
    """
    from sklearn.linear_model import LogisticRegression

    m = S.shape[0]
    free = np.array([k for k in range(m) if k != anchor], dtype=int)
    i, j = np.nonzero(np.triu((S + S.T) > 0, k=1))
    if free.size == 0 or i.size == 0:
        return np.zeros(m)  # no games: the prior alone puts everyone at the reference
    x = np.zeros((i.size, m))
    x[np.arange(i.size), i], x[np.arange(i.size), j] = math.log(BASE), -math.log(BASE)
    won, lost = S[i, j], S[j, i]
    ref = np.zeros((free.size, m))
    ref[np.arange(free.size), free] = math.log(BASE)
    X = np.concatenate([x, x, -x, -x, ref, ref])[:, free]
    y = np.concatenate([np.ones(i.size), np.zeros(i.size), np.zeros(i.size), np.ones(i.size),
                        np.ones(free.size), np.zeros(free.size)])
    w = np.concatenate([won, lost, won, lost, np.full(2 * free.size, prior)])  # games enter twice: so do ties
    keep = w > 0
    fit = LogisticRegression(C=1e4, fit_intercept=False, tol=1e-10, max_iter=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings on degenerate resamples
        fit.fit(X[keep], y[keep], sample_weight=w[keep])
    r = np.zeros(m)
    r[free] = SCALE * fit.coef_[0]
    return r - r.mean() if anchor is None else r


def place(opponents: np.ndarray, scored: np.ndarray, played: np.ndarray, prior: float) -> float:
    """One model's rating against opponents with fixed ratings (points relative to the anchor at 0),
    where it scored `scored` of `played` games against each: the root of its score equation
    (observed minus expected score, plus the virtual ties), which falls as the rating rises."""
    def excess(r: float) -> float:
        expected = played * expit(LOGIT_PER_POINT * (r - opponents))
        return float(np.sum(scored - expected) + prior * (0.5 - expit(LOGIT_PER_POINT * r)))

    span = 4000.0 + (np.abs(opponents).max() if opponents.size else 0.0)
    lo, hi = excess(-span), excess(span)
    if lo <= 0 or hi >= 0:  # no root inside: only without a prior (or without games)
        return 0.0 if lo == hi == 0 else (-span if lo <= 0 else span)
    return brentq(excess, -span, span, xtol=1e-6)


@dataclass(frozen=True)
class Layout:
    """What stays fixed across bootstrap rounds: groups (model indices) and who is established."""
    groups: list[np.ndarray]
    established: np.ndarray
    anchor: int | None = None


def components(adjacent: np.ndarray) -> np.ndarray:
    return connected_components(csr_matrix(adjacent), directed=False)[1]


def layout(N: np.ndarray, min_battles: int, anchor: int | None = None) -> Layout:
    """Established models split into connected components; each provisional model joins the group of
    the established models it met most; provisional models that met none form groups of their own."""
    m = N.shape[0]
    established = N.sum(1) >= min_battles
    group = np.full(m, -1)
    core = np.flatnonzero(established)
    if core.size:
        group[core] = components(N[np.ix_(core, core)] > 0)
    n_core_groups = group.max() + 1
    for p in np.flatnonzero(~established):
        met = N[p, core]
        if met.sum() > 0:
            group[p] = np.bincount(group[core], weights=met, minlength=n_core_groups).argmax()
    loose = np.flatnonzero(group < 0)
    if loose.size:
        group[loose] = n_core_groups + components(N[np.ix_(loose, loose)] > 0)
    members = [np.flatnonzero(group == g) for g in range(group.max() + 1)]
    members.sort(key=lambda g: (-N[g].sum(), g[0]))  # the group with most battles first
    return Layout(members, established, anchor)


def rate_once(S: np.ndarray, N: np.ndarray, plan: Layout, prior: float) -> np.ndarray:
    r = np.zeros(S.shape[0])
    for members in plan.groups:
        core = members[plan.established[members]]
        core = core if core.size else members  # no established model: fit the group jointly
        local = np.flatnonzero(core == plan.anchor)
        r[core] = fit_joint(S[np.ix_(core, core)], prior, int(local[0]) if local.size else None)
        for p in np.setdiff1d(members, core):
            r[p] = place(r[core], S[p, core], N[p, core], prior)
        if plan.anchor in members and plan.anchor not in core:  # a provisional anchor: shift its group
            r[members] -= r[plan.anchor]
    return INIT + r


def bradley_terry(votes: pd.DataFrame, prior: float = 0.0) -> pd.Series:
    """Plain Bradley–Terry over all models jointly (mean 1000), for checks against closed forms."""
    models = models_in(votes)
    S, _ = pair_totals(*encode(votes, models), len(models))
    return pd.Series(INIT + fit_joint(S, prior), index=models)


@dataclass
class Ratings:
    table: pd.DataFrame                      # one row per model, columns TABLE_COLUMNS
    groups: list[list[str]] = field(default_factory=list)
    samples: pd.DataFrame = field(default_factory=pd.DataFrame)  # bootstrap ratings, one row per round

    def difference_ci(self, a: str, b: str, level: float = 0.95) -> tuple[float, float, float]:
        """R_a - R_b with its percentile bootstrap CI, extended to contain the estimate."""
        d = self.table.loc[a, "rating"] - self.table.loc[b, "rating"]
        boot = self.samples[a] - self.samples[b]
        lo, hi = boot.quantile((1 - level) / 2), boot.quantile((1 + level) / 2)
        return d, min(lo, d), max(hi, d)


def win_rates(a, b, s, models: list[str]) -> pd.DataFrame:
    """Per model: battles, wins, losses, ties (incl. both bad) and the win rate with ties as ½."""
    rows = []
    for k, m in enumerate(models):
        mine = np.concatenate([s[a == k], 1.0 - s[b == k]])
        rows.append({"model": m, "battles": mine.size, "wins": int((mine == 1).sum()),
                     "losses": int((mine == 0).sum()), "ties": int((mine == 0.5).sum()),
                     "win_rate": mine.mean() if mine.size else math.nan})
    return pd.DataFrame(rows, columns=["model", "battles", "wins", "losses", "ties", "win_rate"]).set_index("model")


def rate(votes: pd.DataFrame, min_battles: int = MIN_BATTLES, anchor: str | None = None,
         prior: float = PRIOR_TIES, rounds: int = 1000, seed: int = 0) -> Ratings:
    """Ratings with 95% bootstrap CIs; rows ordered by group, established before provisional, best first."""
    from threadpoolctl import threadpool_limits

    if votes.empty:
        return Ratings(pd.DataFrame(columns=TABLE_COLUMNS, index=pd.Index([], name="model")))
    models = models_in(votes)
    if anchor is not None and anchor not in models:
        raise AnchorError(f"anchor {anchor!r} is not among the rated models ({', '.join(models)})")
    a, b, s = encode(votes, models)
    S, N = pair_totals(a, b, s, len(models))
    plan = layout(N, min_battles, models.index(anchor) if anchor is not None else None)
    rng = np.random.default_rng(seed)
    boot_ratings, boot_rates = [], []
    with threadpool_limits(1):  # tiny problems: BLAS threads only cost time
        point = rate_once(S, N, plan, prior)
        for _ in range(rounds):
            idx = rng.integers(0, len(s), len(s))
            Sr, Nr = pair_totals(a[idx], b[idx], s[idx], len(models))
            boot_ratings.append(rate_once(Sr, Nr, plan, prior))
            with np.errstate(invalid="ignore", divide="ignore"):
                boot_rates.append(Sr.sum(1) / Nr.sum(1))
    table = win_rates(a, b, s, models)
    table["rating"] = point
    table["status"] = np.where(plan.established, "established", "provisional")
    table["group"] = 0
    for g, members in enumerate(plan.groups):
        table.iloc[members, table.columns.get_loc("group")] = g + 1
    samples = pd.DataFrame(boot_ratings, columns=models)
    rates = pd.DataFrame(boot_rates, columns=models)
    for name, est, boot in (("rating", table["rating"], samples), ("win_rate", table["win_rate"], rates)):
        lo, hi = (boot.quantile(q) if rounds else est for q in (0.025, 0.975))
        table[f"{name}_lo"], table[f"{name}_hi"] = np.fmin(lo, est), np.fmax(hi, est)
    table = table.sort_values(["group", "status", "rating"], ascending=[True, True, False])
    ranked = table["status"] == "established"
    table["rank"] = pd.array([pd.NA] * len(table), dtype="Int64")
    table.loc[ranked, "rank"] = table[ranked].groupby("group").cumcount().to_numpy() + 1
    groups = [[models[k] for k in g] for g in plan.groups]
    return Ratings(table[TABLE_COLUMNS], groups, samples)
