"""Rank the arena's models from its votes: the command line and the tables it writes.

    python -m demo.leaderboard [--db URL] --out results/arena             # our vote store
    python -m demo.leaderboard --votes FILE --format csv|talk-arena|fastchat|diva-study [--out DIR]
    python -m demo.leaderboard ... --export-fastchat votes.jsonl          # the votes read, as FastChat JSONL

Votes pass the hygiene rules (demo.hygiene) and are then rated (demo.ratings: anchored Bradley–Terry,
scale 400, 1000 at the anchor; provisional models apart; separate groups; bootstrap 95% CIs). Writes
leaderboard.csv, winrate_matrix.csv, battle_counts.csv, votes.csv (the votes that count), hygiene.csv,
notes.txt and leaderboard.png. A file that cannot be read, or a --db with no database behind it,
gives a one-line error and exit status 2 (nothing is created); the config's database not made yet
means no votes yet.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from demo import hygiene, ratings, votelogs
from demo.ratings import INIT, MIN_BATTLES, PRIOR_TIES
from diva.errors import ArgumentParser, UsageError, fail

VOTE_COLUMNS = ["battle_id", "time", "model_a", "model_b", "outcome"]


def _totals(votes: pd.DataFrame) -> tuple[list[str], np.ndarray, np.ndarray]:
    models = ratings.models_in(votes)
    S, N = ratings.pair_totals(*ratings.encode(votes, models), len(models))
    return models, S, N


def battle_counts(votes: pd.DataFrame) -> pd.DataFrame:
    models, _, N = _totals(votes)
    return pd.DataFrame(N.astype(int), index=models, columns=models)


def win_rate_matrix(votes: pd.DataFrame) -> pd.DataFrame:
    """Entry (i, j): model i's mean score against model j (ties ½); NaN where they never met."""
    models, S, N = _totals(votes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.DataFrame(np.where(N > 0, S / N, np.nan), index=models, columns=models)


def win_rates(votes: pd.DataFrame) -> pd.DataFrame:
    """Per model: battles, wins, losses, ties (incl. both bad) and the win rate with ties as ½."""
    models = ratings.models_in(votes)
    return ratings.win_rates(*ratings.encode(votes, models), models)


def left_side_share(votes: pd.DataFrame) -> tuple[float, int]:
    """Share of decisive votes won by the left answer ("Model A"), and their number."""
    bias = hygiene.position_bias(votes.assign(sided=votes.get("sided", True)))
    return bias.left_share, bias.decisive


def leaderboard(votes: pd.DataFrame, rounds: int = 1000, seed: int = 0, min_battles: int = MIN_BATTLES,
                anchor: str | None = None, prior: float = PRIOR_TIES) -> pd.DataFrame:
    """One row per model (index), by group, established before provisional, best first; see demo.ratings."""
    return ratings.rate(votes, min_battles, anchor, prior, rounds, seed).table


@dataclass
class Report:
    votes: pd.DataFrame            # every vote read
    counted: pd.DataFrame          # the votes that passed the hygiene rules
    rated: ratings.Ratings
    removed: pd.DataFrame          # rule -> votes removed
    bias: hygiene.PositionBias
    settings: dict

    @property
    def table(self) -> pd.DataFrame:
        return self.rated.table

    def note(self) -> str:
        s, table = self.settings, self.rated.table
        lines = [f"{len(self.votes)} votes read, {len(self.counted)} counted"
                 + (f" ({s['skipped']} log lines of other types skipped)" if s.get("skipped") else "") + ".",
                 "removed: " + "; ".join(f"{r.rule}: {r.votes}" for r in self.removed.itertuples())
                 + f" (daily cap: {s['daily_cap'] or 'none'}).",
                 self.bias.describe() + "."]
        anchor = (f"{s['anchor']} is held at {INIT:g} (in any other group, the mean of its established models)"
                  if s["anchor"] else
                  f"the mean of each group's established models is {INIT:g} (of all its models where "
                  "none is established)")
        lines.append(f"anchor: {anchor}; prior: {s['prior']:g} virtual tied games per model against the "
                     "scale's centre; CIs: 95% bootstrap, extended to contain the estimate.")
        if len(self.rated.groups) > 1:
            groups = "; ".join(f"group {g}: {', '.join(m)}" for g, m in enumerate(self.rated.groups, 1))
            lines.append(f"the comparison graph falls into {len(self.rated.groups)} groups that never met "
                         f"(through established models); each is anchored and ranked on its own: {groups}.")
        provisional = table[table["status"] == "provisional"]
        if len(provisional):
            lines.append(f"provisional (fewer than {s['min_battles']} battles; each placed against the fixed "
                         "ratings of the established models it met, so it moves no one; in a group without "
                         "established models, fitted together): "
                         + ", ".join(f"{m} ({b})" for m, b in provisional["battles"].items()) + ".")
        return "\n".join(lines)


def report(votes: pd.DataFrame, rounds: int = 1000, seed: int = 0, min_battles: int = MIN_BATTLES,
           anchor: str | None = None, prior: float = PRIOR_TIES, daily_cap: int = hygiene.DAILY_CAP) -> Report:
    """Hygiene, position check and ratings for a vote log (votelogs.COLUMNS; missing columns unknown)."""
    if list(votes.columns) != votelogs.COLUMNS:
        votes = votelogs.normalise(votes).__finalize__(votes)
    counted, removed = hygiene.clean(votes, daily_cap)
    rated = ratings.rate(counted, min_battles, anchor, prior, rounds, seed)
    settings = {"min_battles": min_battles, "anchor": anchor, "prior": prior, "daily_cap": daily_cap,
                "skipped": votes.attrs.get("skipped", 0)}
    return Report(votes, counted, rated, removed, hygiene.position_bias(counted), settings)


def figure(table: pd.DataFrame, rates: pd.DataFrame):
    """Ratings with CIs (left; hollow = provisional) and the pairwise win-rate matrix (right)."""
    from matplotlib.figure import Figure  # no pyplot: no global figure state, safe in threads

    fig = Figure(figsize=(11, 0.6 * len(table) + 2.5))
    ax1, ax2 = fig.subplots(1, 2)
    r = table.iloc[::-1]
    groups = r["group"].nunique() if "group" in r else 1
    provisional = (r["status"] == "provisional").to_numpy() if "status" in r else np.zeros(len(r), bool)
    labels = [(f"g{g} · " if groups > 1 else "") + m + (" (prov.)" if p else "")
              for m, g, p in zip(r.index, r.get("group", [1] * len(r)), provisional)]
    y = np.arange(len(r))
    err = np.nan_to_num(np.vstack([r["rating"] - r["rating_lo"], r["rating_hi"] - r["rating"]]).astype(float))
    for keep, face in ((~provisional, "C0"), (provisional, "white")):
        ax1.errorbar(r["rating"][keep], y[keep], xerr=err[:, keep], fmt="o", capsize=4, color="C0", mfc=face)
    ax1.set_yticks(y, labels)
    ax1.axvline(INIT, color="grey", lw=0.5)
    ax1.set_xlabel("Bradley–Terry rating (95% bootstrap CI)" + (", each group on its own scale" if groups > 1 else ""))
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


def write_outputs(source, out: str | Path, rounds: int = 1000, seed: int = 0, **options) -> Report:
    """Report on a VoteStore (or a vote log frame) and write the tables and the PNG under `out`.
    Without votes that count nothing is written (earlier outputs are left as they are)."""
    votes = source if isinstance(source, pd.DataFrame) else votelogs.from_store(source)
    result = report(votes, rounds, seed, **options)
    if result.counted.empty:
        return result
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result.counted[VOTE_COLUMNS].to_csv(out / "votes.csv", index=False)
    result.table.to_csv(out / "leaderboard.csv", float_format="%.4f")
    rates = win_rate_matrix(result.counted)
    rates.to_csv(out / "winrate_matrix.csv", float_format="%.4f")
    battle_counts(result.counted).to_csv(out / "battle_counts.csv")
    result.removed.to_csv(out / "hygiene.csv", index=False)
    (out / "notes.txt").write_text(result.note() + "\n", encoding="utf-8")
    figure(result.table, rates).savefig(out / "leaderboard.png", dpi=120)
    return result


def main(argv: list[str] | None = None) -> int:
    from demo.config import DEFAULT_CONFIG, REPO_ROOT, load_config
    from demo.store import VoteStore, sqlite_file

    p = ArgumentParser(prog="python -m demo.leaderboard", description=__doc__.split("\n")[0])
    source = p.add_mutually_exclusive_group()
    source.add_argument("--db", help="SQLAlchemy URL of the vote store (default: the arena config's db)")
    source.add_argument("--votes", type=Path, help="read this vote log instead of the store")
    p.add_argument("--format", choices=votelogs.FORMATS, default="csv", help="of --votes (default csv)")
    p.add_argument("--config", default=str(DEFAULT_CONFIG))
    p.add_argument("--out", help="output folder (default results/arena; results/arena/<log name> for --votes)")
    p.add_argument("--rounds", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-battles", type=int, default=MIN_BATTLES, help="fewer battles: provisional")
    p.add_argument("--anchor", help="hold this model at 1000 (default: the mean of established models)")
    p.add_argument("--prior", type=float, default=PRIOR_TIES, help="virtual tied games per model")
    p.add_argument("--daily-cap", type=int, default=hygiene.DAILY_CAP, help="votes per voter per day (0: none)")
    p.add_argument("--export-fastchat", type=Path, metavar="FILE", help="also write the votes read as FastChat JSONL")
    args = p.parse_args(argv)
    try:
        if args.votes:
            votes, where = votelogs.read(args.votes, args.format), str(args.votes)
            out = args.out or Path("results/arena") / args.votes.stem
        else:
            where = args.db or load_config(args.config).resolved(REPO_ROOT).db
            if not args.db and sqlite_file(where) and not sqlite_file(where).is_file():
                print(f"no votes yet: the arena has not written {sqlite_file(where)}; nothing written")
                return 0
            votes, out = votelogs.from_store(VoteStore(where, create=False)), args.out or "results/arena"
        if args.export_fastchat:
            print(f"wrote {votelogs.write_fastchat(votes, args.export_fastchat)} ({len(votes)} votes, FastChat JSONL)")
        result = write_outputs(votes, out, args.rounds, args.seed, min_battles=args.min_battles,
                               anchor=args.anchor, prior=args.prior, daily_cap=args.daily_cap)
    except (votelogs.VoteLogError, ratings.AnchorError, UsageError) as error:
        return fail(error)
    if result.counted.empty:
        print(f"no votes that count in {where} ({len(votes)} read); nothing written")
        return 0
    pd.set_option("display.width", 160)
    print(result.table.round(3).to_string())
    print(result.note())
    print(f"wrote {out}/leaderboard.csv, winrate_matrix.csv, battle_counts.csv, votes.csv, hygiene.csv, "
          "notes.txt, leaderboard.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
