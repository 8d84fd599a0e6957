"""Evaluation over several processes: `accelerate launch [--multi_gpu] --num_processes N -m eval.run ...`.

1. Every process answers its share of each task's items (items[rank::N]) with its own copy of
   the assistants, into its own answer file beside the answer cache (<cache>.rank<r>.sqlite),
   reading answers the cache already holds; it scores nothing. No two processes write the same
   SQLite file.
2. The main process merges those files into the answer cache, then runs the whole evaluation
   on its own: every answer is cached by then, so it writes the same rows, per-item predictions
   and cache as a one-process run (answers are greedy; a batch holds other items than it would
   on one process, which can move bf16 logits, as any change of --batch-size can).
Under one process nothing here changes anything.
"""
from __future__ import annotations

import contextlib
import copy
import os
import shutil
import sys
from pathlib import Path

from eval.cache import AnswerCache

_share: tuple[int, int] | None = None    # (rank, processes) while this process answers its share
_running = False                         # inside a sharded run (either phase)


def processes() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_items(items: list) -> list:
    """This process' items of a task (all of them outside phase 1)."""
    return items if _share is None else items[_share[0]::_share[1]]


def answering_only() -> bool:
    """In phase 1: answer into the cache, score nothing."""
    return _share is not None


def shard_path(cache_path: Path, rank: int) -> Path:
    return Path(cache_path).with_name(f"{Path(cache_path).stem}.rank{rank}.sqlite")


def open_cache(cache_path: Path) -> AnswerCache:
    """The answer cache, or in phase 1 this process' own answer file that also reads the cache."""
    return AnswerCache(cache_path) if _share is None else ShardCache(cache_path, _share[0])


class ShardCache(AnswerCache):
    """Writes to <cache>.rank<r>.sqlite; finds answers there or in the shared cache (read only)."""

    def __init__(self, cache_path: Path, rank: int):
        super().__init__(shard_path(cache_path, rank))
        self.shared = AnswerCache(cache_path) if Path(cache_path).exists() else None

    def get_answers(self, keys) -> dict:
        keys = list(keys)
        found = self.shared.get_answers(keys) if self.shared else {}
        found.update(super().get_answers(k for k in keys if k not in found))
        return found

    def close(self) -> None:
        super().close()
        if self.shared:
            self.shared.close()


def merge(cache_path: Path, n: int) -> int:
    """Move every process' answers into the cache; returns how many rows came in."""
    cache = AnswerCache(cache_path)
    moved = 0
    for rank in range(n):
        part = shard_path(cache_path, rank)
        if not part.exists():
            continue
        cache.db.execute("ATTACH DATABASE ? AS part", (str(part),))
        columns = "key, assistant, task, item_id, modality, prompt_id, response, created, heard"
        moved += cache.db.execute(f"INSERT OR REPLACE INTO answers ({columns}) "
                                  f"SELECT {columns} FROM part.answers").rowcount
        cache.db.commit()
        cache.db.execute("DETACH DATABASE part")
        for leftover in (part, Path(f"{part}-wal"), Path(f"{part}-shm")):
            leftover.unlink(missing_ok=True)
    cache.close()
    return moved


def run_sharded(evaluate, args, tasks: list, cache_path: Path) -> int | None:
    """Run `evaluate(args)` over the launched processes; None when there is one process (or when
    already inside a sharded run), so the caller simply goes on."""
    global _share, _running
    if processes() <= 1 or _running:
        return None
    import torch
    from accelerate import PartialState
    state = PartialState(cpu=not torch.cuda.is_available())  # each process on its own device
    rank, n = state.process_index, state.num_processes
    cache_path = Path(cache_path)
    with state.main_process_first():  # synthesised clips and downloads: made once, then found
        if state.is_main_process:
            AnswerCache(cache_path).close()
        _load_items(tasks, args)
    scratch = cache_path.with_name(f"{cache_path.stem}.rank{rank}.out")  # its notes; removed after
    scratch.mkdir(parents=True, exist_ok=True)
    share_args = copy.copy(args)
    share_args.out, share_args.cache = str(scratch), str(cache_path)
    share_args.quiet = args.quiet or rank != 0
    _running, _share = True, (rank, n)
    try:
        with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sys.stderr if rank == 0 else sink):
            code = evaluate(share_args)  # rank 0 shows its progress, the others stay quiet
    finally:
        _share = None
        shutil.rmtree(scratch, ignore_errors=True)
    state.wait_for_everyone()
    if not state.is_main_process:
        _running = False
        return code
    moved = merge(cache_path, n)
    print(f"{n} processes answered {moved} new answers; writing the results", file=sys.stderr)
    whole = copy.copy(args)
    whole.checkpoint, whole.llm_beam = [], []  # registered in phase 1; again would reload them
    try:
        return evaluate(whole) or code
    finally:
        _running = False


def _load_items(tasks: list, args) -> None:
    for task in tasks:
        data_dir = os.path.join(args.data_dir, task.name) if args.data_dir else None
        try:
            task.load(limit=args.limit, data_dir=data_dir)
        except Exception:  # evaluate reports it
            pass
