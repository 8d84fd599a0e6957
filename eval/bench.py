"""Batched vs unbatched evaluation throughput on the same items -> results/bench/eval.csv.

    python -m eval.bench                                   # text-mini (text), cascade-mini (audio)
    python -m eval.bench --runs text-mini:text --n 32 --batch-sizes 4,16

Each run answers the first N items of an offline task through the runner's `Answerer` with a
fresh in-memory cache (nothing is reused), once one item at a time and once per batch size,
after one warm-up call. Also reports how many batched answers are identical to the unbatched
ones (greedy decoding with padding can differ in rare near-ties).
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import pandas as pd

from eval.cache import AnswerCache
from eval.loaders import audio_array
from eval.run import REPO_ROOT, Answerer, git_commit
from eval.tasks import get_task

COLUMNS = ["assistant", "task", "modality", "n_items", "batch_size", "wall_s", "items_per_s",
           "speedup", "identical_to_unbatched", "max_new_tokens", "date", "commit"]


def measure(assistant, task, items, modality: str, batch_size: int, audios) -> tuple[float, list[str]]:
    answerer = Answerer(assistant, AnswerCache(":memory:"), batch_size, progress=False)
    start = time.perf_counter()
    answers = answerer.answers(task, items, modality, task.prompt_id, audios)
    return time.perf_counter() - start, answers


def bench_one(name: str, modality: str, task_name: str, n: int, batch_sizes: list[int]) -> list[dict]:
    from diva.assistants.registry import load_assistant
    assistant = load_assistant(name)
    task = get_task(task_name)
    items = task.load(limit=n)
    audios = {it.item_id: audio_array(it.audio) for it in items} if modality == "audio" else {}
    measure(assistant, task, items[:1], modality, 1, audios)  # warm-up: lazy init, allocator
    base_s, base = measure(assistant, task, items, modality, 1, audios)
    rows = [(1, base_s, base)]
    for b in batch_sizes:
        wall, answers = measure(assistant, task, items, modality, b, audios)
        rows.append((b, wall, answers))
    date, commit = dt.date.today().isoformat(), git_commit()
    out = []
    for b, wall, answers in rows:
        same = sum(x == y for x, y in zip(answers, base)) / len(base)
        out.append({"assistant": name, "task": task_name, "modality": modality, "n_items": len(items),
                    "batch_size": b, "wall_s": round(wall, 2), "items_per_s": round(len(items) / wall, 3),
                    "speedup": round(base_s / wall, 2), "identical_to_unbatched": round(same, 3),
                    "max_new_tokens": task.max_new_tokens, "date": date, "commit": commit})
        print(f"{name} {modality} batch {b}: {wall:.1f} s, {len(items) / wall:.2f} items/s, "
              f"x{base_s / wall:.2f}, identical {same:.0%}", file=sys.stderr)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.bench", description=__doc__.split("\n")[0])
    p.add_argument("--runs", default="text-mini:text,cascade-mini:audio",
                   help="comma-separated assistant:modality pairs")
    p.add_argument("--task", default="spoken-qa")
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--batch-sizes", default="16", type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--out", default=str(REPO_ROOT / "results" / "bench" / "eval.csv"))
    args = p.parse_args(argv)
    rows = []
    for run in args.runs.split(","):
        name, modality = run.split(":")
        rows += bench_one(name, modality, args.task, args.n, args.batch_sizes)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=COLUMNS).to_csv(out, index=False)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
