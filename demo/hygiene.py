"""Vote hygiene: which votes count, and how many each rule removed.

Rules, in order; a vote is counted under the first rule that removes it:
1. the same battle voted twice (the first vote stands);
2. the same voter, question audio, model pair and choice as an earlier vote (a repeated vote);
3. the same model on both sides;
4. a reply failed or was empty;
5. a reply names a model (an identity leak): a case-insensitive word match of any model in the log
   or of LEAK_NAMES, a version number allowed after it ("Llama3" and "GPT-4o" match, "Divali" does not);
6. more than `daily_cap` votes from one voter in one UTC day (the earliest ones stand).
Rules 2 and 6 need the voter (a salted hash) and rule 2 the audio; votes without them pass those rules.
Position bias is measured, not removed: the left answer's share of the decisive votes, with an exact
(Clopper–Pearson) 95% CI and a two-sided binomial test against ½.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import binomtest

LEAK_NAMES = ("DiVA", "Qwen", "Llama", "GPT", "ChatGPT", "Gemini", "Claude", "Mistral")
DAILY_CAP = 50
RULES = ("same battle voted twice", "same voter, audio, pair and choice repeated", "same model on both sides",
         "a reply failed or was empty", "a reply names a model", "over the daily cap per voter")


def leak_pattern(names) -> re.Pattern:
    """Any of `names` as a word: not inside a longer word, though a version number may follow."""
    names = sorted({n.strip() for n in names if isinstance(n, str) and n.strip()}, key=len, reverse=True)
    if not names:
        return re.compile(r"(?!)")  # matches nothing
    return re.compile(r"(?<![0-9a-z])(?:" + "|".join(map(re.escape, names)) + r")(?![a-z])", re.IGNORECASE)


def _texts(column: pd.Series, test) -> pd.Series:
    return column.map(lambda t: isinstance(t, str) and bool(test(t))).astype(bool)


def clean(votes: pd.DataFrame, daily_cap: int = DAILY_CAP,
          leak_names=LEAK_NAMES) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the votes that count, a table rule -> votes removed) for a frame of votelogs.COLUMNS."""
    removed_by = pd.Series("", index=votes.index, dtype=object)

    def remove(rule: str, mask) -> None:
        removed_by[(removed_by == "") & np.asarray(mask, dtype=bool)] = rule

    remove(RULES[0], votes["battle_id"].notna() & votes["battle_id"].duplicated())

    decisive_winner = np.where(votes["outcome"] == "model_a", votes["model_a"],
                               np.where(votes["outcome"] == "model_b", votes["model_b"], votes["outcome"]))
    key = pd.DataFrame({"voter": votes["voter"], "audio": votes["audio"], "choice": decisive_winner,
                        "pair": ["\0".join(sorted(p)) for p in zip(votes["model_a"], votes["model_b"])]})
    candidates = (removed_by == "") & votes["voter"].notna() & votes["audio"].notna()
    repeated = pd.Series(False, index=votes.index)
    repeated[candidates] = key[candidates].duplicated()
    remove(RULES[1], repeated)

    remove(RULES[2], votes["model_a"] == votes["model_b"])

    empty = [_texts(votes[c], lambda t: not t.strip()) for c in ("response_a", "response_b")]
    remove(RULES[3], votes["reply_failed"].astype(bool) | empty[0] | empty[1])

    named = leak_pattern(list(leak_names) + list(votes["model_a"]) + list(votes["model_b"])).search
    remove(RULES[4], _texts(votes["response_a"], named) | _texts(votes["response_b"], named))

    if daily_cap:
        when = pd.to_datetime(votes["time"], utc=True, errors="coerce", format="ISO8601")
        counted = (removed_by == "") & votes["voter"].notna() & when.notna()
        day_votes = pd.DataFrame({"voter": votes["voter"], "day": when.dt.date, "when": when})[counted]
        order = day_votes.sort_values("when", kind="stable").groupby(["voter", "day"]).cumcount()
        over = pd.Series(False, index=votes.index)
        over[order.index] = order >= daily_cap
        remove(RULES[5], over)

    counts = pd.DataFrame({"rule": RULES, "votes": [int((removed_by == r).sum()) for r in RULES]})
    return votes[removed_by == ""], counts


@dataclass(frozen=True)
class PositionBias:
    left_share: float
    lo: float
    hi: float
    decisive: int
    p_value: float

    def describe(self) -> str:
        if not self.decisive:
            return "position check: no decisive votes with a recorded side"
        return (f"position check: the left answer won {self.left_share:.1%} of {self.decisive} decisive votes "
                f"(95% CI {self.lo:.1%}–{self.hi:.1%}; binomial test against 50%: p = {self.p_value:.3g})")


def position_bias(votes: pd.DataFrame) -> PositionBias:
    """The left (model_a) answer's share of decisive votes, over votes whose log records the sides."""
    decisive = votes[votes["sided"].astype(bool) & votes["outcome"].isin(["model_a", "model_b"])]
    n, k = len(decisive), int((decisive["outcome"] == "model_a").sum())
    if n == 0:
        return PositionBias(math.nan, math.nan, math.nan, 0, math.nan)
    test = binomtest(k, n, 0.5)
    ci = test.proportion_ci(0.95, method="exact")
    return PositionBias(k / n, ci.low, ci.high, n, test.pvalue)
