"""Arena benchmark: `python -m demo.bench` (part of `make bench`) -> results/bench/arena.csv.

For both ways the arena can hold its local models, in its own process (`processes = false`) and
one server process per model (the default, demo.workers), with the default arena's models:
1. each side's time to first token in a battle against the same model answering the same clip
   alone in this process with every core (solo), medians over --repeats, both measured in this
   run; target <= 1.3x (`solo_same_mode_s`: the model alone as that mode holds it);
2. --voters people who each start a battle at the same moment (pairs in turn): each battle's
   latency until both replies are complete, median and 95th percentile, and the wall time.
"""
from __future__ import annotations

import argparse
import itertools
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from demo.arena import Arena
from demo.config import ArenaConfig, ModelSpec
from diva.bench import OUT, QUESTIONS

MODELS = ("cascade-mini", "diva-mini", "diva-mini-whisper-beam")


def first_token_s(arena: Arena, model: str, clip: np.ndarray) -> float:
    start = time.perf_counter()
    with arena.assistants[model].stream(clip, options=arena.options(model)) as stream:
        for delta in stream:
            if delta:
                return time.perf_counter() - start
    return time.perf_counter() - start


def battle(arena: Arena, clip: np.ndarray, pair: tuple[str, str]) -> list:
    sides = []
    for sides in arena.race(clip, None, pair):
        pass
    for side in sides:
        if side.error:
            raise RuntimeError(f"{side.model} failed: {side.error}")
    return sides


def measure(processes: bool, clips: list[np.ndarray], repeats: int, voters: int, max_new_tokens: int,
            solo: dict[str, float] | None = None) -> tuple[list[dict], dict[str, float]]:
    """Rows for one mode, and each model's solo time to first token in this mode. `solo`: the
    baseline the ratios divide by (default: this mode's own)."""
    mode = "one server process per model" if processes else "all models in the arena process"
    with tempfile.TemporaryDirectory() as tmp:
        config = ArenaConfig(models=tuple(ModelSpec(m) for m in MODELS), db=f"sqlite:///{tmp}/votes.db",
                             audio_dir=f"{tmp}/audio", max_new_tokens=max_new_tokens, processes=processes)
        arena = Arena(config, seed=0).prepare()
        try:
            clip = clips[0]
            for model in MODELS:  # warm up
                first_token_s(arena, model, clip)
            alone = {m: statistics.median(first_token_s(arena, m, clip) for _ in range(repeats)) for m in MODELS}
            solo = solo or alone
            rows = []
            for a, b in itertools.combinations(MODELS, 2):
                ttft: dict[str, list[float]] = {a: [], b: []}
                for r in range(repeats):
                    for side in battle(arena, clip, (a, b) if r % 2 == 0 else (b, a)):
                        ttft[side.model].append(side.ttft_s)
                for model, other in ((a, b), (b, a)):
                    battle_s = statistics.median(ttft[model])
                    rows.append(dict(mode=mode, measure="battle vs solo", model=model, other=other,
                                     solo_ttft_s=solo[model], solo_same_mode_s=alone[model],
                                     battle_ttft_s=battle_s, ratio=battle_s / solo[model]))
            rows.append(voters_row(arena, mode, clips, voters))
            return rows, alone
        finally:
            arena.close()


def voters_row(arena: Arena, mode: str, clips: list[np.ndarray], voters: int) -> dict:
    pairs = list(itertools.combinations(MODELS, 2))
    latency = [0.0] * voters
    barrier = threading.Barrier(voters)

    def voter(i: int) -> None:
        barrier.wait()
        start = time.perf_counter()
        battle(arena, clips[i % len(clips)], pairs[i % len(pairs)])
        latency[i] = time.perf_counter() - start

    started = time.perf_counter()
    threads = [threading.Thread(target=voter, args=(i,)) for i in range(voters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return dict(mode=mode, measure=f"{voters} concurrent voters", voters=voters,
                median_s=float(np.median(latency)), p95_s=float(np.percentile(latency, 95)), wall_s=wall)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m demo.bench", description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--voters", type=int, default=20)
    p.add_argument("--max-new-tokens", type=int, default=96, help="the arena's default")
    p.add_argument("--voice", default="flite:slt")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from diva.voices import synthesize
    clips = [synthesize(q, args.voice) for q in QUESTIONS]
    rows, solo = measure(False, clips, args.repeats, args.voters, args.max_new_tokens)
    rows += measure(True, clips, args.repeats, args.voters, args.max_new_tokens, solo)[0]
    table = pd.DataFrame(rows)
    table.insert(0, "threads", torch.get_num_threads())
    table.insert(0, "cpu_count", os.cpu_count())
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "arena.csv", index=False, float_format="%.3f")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.drop(columns=["cpu_count", "threads"]).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
