"""Concurrent requests to one model, decoded together.

Jobs submitted while the model is busy, or within `window_s` of the one before, are gathered (up
to `max_batch`) and decoded as one left-padded batch per kind of job (audio, transcript, chat, and
equal decoding settings); every row streams to its own listener and ends on its own, and a
cancelled row (its client went away) stops at its next token. Batches are static: a job that
arrives while a batch is decoding waits for the next. So that clients who wait for their answer
before asking again are not split into batches that take turns, a round waits up to `max_wait_s`
for as many jobs as the round before had.
"""
from __future__ import annotations

import queue
import threading
import time
from collections import Counter

from diva.jobs import Job


class ShuttingDown(RuntimeError):
    """The server stopped before this job was answered."""


class Batcher:
    def __init__(self, assistant, window_s: float = 0.02, max_batch: int = 8, max_wait_s: float | None = None):
        self.assistant = assistant
        self.window_s = window_s
        self.max_wait_s = 10 * window_s if max_wait_s is None else max_wait_s
        self.max_batch = max(1, max_batch)
        self.batch_sizes: Counter[int] = Counter()   # batches handed to the model, by size
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._running: list[Job] = []
        self._last_round = 1
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"batcher-{assistant.name}")
        self._thread.start()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def submit(self, job: Job) -> Job:
        if self.stopping:
            job.fail(ShuttingDown("the server is shutting down"))
        else:
            self._queue.put(job)
        return job

    def stop(self) -> None:
        """Answer nothing more: queued jobs fail, running ones end at their next token."""
        self._stopping.set()
        for job in list(self._running):
            job.cancel()
        self._queue.put(None)

    def _gather(self) -> list[Job]:
        called = time.perf_counter()
        first = self._queue.get()
        if first is None:
            return []
        now = time.perf_counter()
        expected = self._last_round if now - called < self.max_wait_s else 1  # the last round's clients, back
        jobs, last = [first], now
        while len(jobs) < self.max_batch:
            deadline = called + self.max_wait_s if len(jobs) < expected else last + self.window_s
            try:
                job = self._queue.get(timeout=max(0.0, deadline - time.perf_counter()))
            except queue.Empty:
                break
            if job is None:
                self._queue.put(None)
                break
            jobs.append(job)
            last = time.perf_counter()
        self._last_round = len(jobs)
        return jobs

    def _loop(self) -> None:
        while not self.stopping:
            jobs = self._gather()
            groups: dict[tuple, list[Job]] = {}
            for job in jobs:
                groups.setdefault(job.batch_key(), []).append(job)
            for group in groups.values():
                self._run(group)
        self._drain()

    def _run(self, jobs: list[Job]) -> None:
        self._running = jobs  # before the check: a stop() from now on cancels them
        if self.stopping:
            for job in jobs:
                job.fail(ShuttingDown("the server is shutting down"))
            self._running = []
            return
        self.batch_sizes[len(jobs)] += 1  # before the jobs finish: a waiter may look at once
        try:
            with self.assistant._lock:
                self.assistant.run_jobs(jobs)
        except Exception as error:  # every job of the batch hears of it
            for job in jobs:
                job.fail(error)
        finally:
            self._running = []

    def _drain(self) -> None:
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                job.fail(ShuttingDown("the server is shutting down"))
