"""The A/B arena's logic: two anonymous assistants answer the same spoken question side by side;
people vote. All state lives in an `Arena` object (config, vote store, loaded assistants, rate
limiter); the page is `demo.ui`, the command `python -m demo.app`. Local models answer from their
own server processes (demo.workers) unless the config says `processes = false`; each model
decodes with its own generation options, which are stored with every battle.
"""
from __future__ import annotations

import collections
import contextlib
import json
import os
import queue
import random
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from demo.config import ArenaConfig, ModelSpec
from demo.store import Battle, VoteError, VoteStore
from demo.workers import ModelWorker
from diva.assistants.base import VoiceAssistant
from diva.audio import SAMPLE_RATE, AudioError, load_audio

VOTE_LABELS = {"model_a": "A is better", "model_b": "B is better", "tie": "Tie",
               "both_bad": "Both are bad"}
UPDATE_EVERY_S = 0.08  # how often streaming text is pushed to the page


class ArenaError(ValueError):
    """Something the user should be told (bad audio, rate limit, ...), shown as a message."""


class RateLimiter:
    """At most `limit` events per `window_s` seconds per key (a session, a hashed client address)."""

    def __init__(self, limit: int, window_s: float = 60.0):
        self.limit, self.window_s = limit, window_s
        self._events: dict[str, collections.deque] = {}
        self._lock = threading.Lock()

    def allow(self, *keys: str) -> float | None:
        """Record an event under every key and return None, or, when any key is at its limit,
        record nothing and return the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            for k in [k for k, d in self._events.items() if not d or now - d[-1] > self.window_s]:
                del self._events[k]  # forget idle keys
            queues = [self._events.setdefault(key, collections.deque()) for key in keys]
            for events in queues:
                while events and now - events[0] > self.window_s:
                    events.popleft()
            waits = [self.window_s - (now - events[0]) if events else self.window_s
                     for events in queues if len(events) >= self.limit]
            if waits:
                return max(waits)
            for events in queues:
                events.append(now)
            return None


@dataclass
class Side:
    """One contestant's answer as it streams in. Times are seconds since the battle started."""
    model: str
    text: str = ""
    ttft_s: float | None = None
    total_s: float | None = None
    error: str | None = None
    heard: str | None = None   # what the model heard, when it reads speech as text

    @property
    def done(self) -> bool:
        return self.total_s is not None or self.error is not None

    def stats(self) -> str:
        if self.error:
            return "this model failed"
        if self.ttft_s is None:
            return f"no answer · total {self.total_s:.2f} s" if self.total_s is not None else "waiting…"
        total = f" · total {self.total_s:.2f} s" if self.total_s is not None else ""
        return f"first token {self.ttft_s:.2f} s{total}"


@dataclass
class BattleState:
    """Per-browser-session state (held by Gradio in a gr.State)."""
    battle_id: str | None = None
    sides: list[Side] = field(default_factory=list)
    voted: bool = False
    session: str | None = None   # the session that ran the battle: the only one that may vote on it


class Arena:
    def __init__(self, config: ArenaConfig, store: VoteStore | None = None,
                 assistants: dict[str, VoiceAssistant] | None = None, seed: int | None = None):
        self.config = config
        self.store = store or VoteStore(config.db, config.audio_dir, config.store_audio)
        self.assistants: dict[str, VoiceAssistant] = dict(assistants or {})
        self.contestants: dict[str, ModelSpec] = {}
        self.unavailable: dict[str, str] = {}
        self.workers: dict[str, ModelWorker] = {}
        self.limiter = RateLimiter(config.limits.battles_per_minute)
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()

    # ---- models ----------------------------------------------------------------------------
    def _in_worker(self, spec: ModelSpec) -> bool:
        return self.config.processes and spec.kind == "local" and spec.name not in self.assistants

    def _load(self, spec: ModelSpec) -> VoiceAssistant:
        if spec.name in self.assistants:
            return self.assistants[spec.name]
        if spec.kind == "remote":
            from diva.assistants.remote import RemoteAssistant
            return RemoteAssistant(spec.name, spec.base_url, spec.model or spec.name, spec.api_key)
        if self.config.processes:
            worker = self.workers.get(spec.name) or self._start_worker(spec.name)
            return worker.wait_ready()
        from diva.assistants import load_assistant
        return load_assistant(spec.name)

    def _start_worker(self, name: str) -> ModelWorker:
        from diva.assistants.registry import find_assistant
        find_assistant(name)  # an unknown name fails here, not in a process started for nothing
        self.workers[name] = ModelWorker(name, Path(self.config.audio_dir).parent / "workers")
        return self.workers[name]

    def prepare(self) -> "Arena":
        """Load every configured model (remote ones are only built; local ones start in their own
        processes, all at once); fallbacks fill in for failures."""
        for spec in self.config.models:
            if self._in_worker(spec):
                with contextlib.suppress(Exception):  # _add below reports it
                    self._start_worker(spec.name)
        for spec in self.config.models:
            self._add(spec)
        fallbacks = [n for n in self.config.fallbacks if n not in {m.name for m in self.config.models}]
        while len(self.contestants) < 2 and fallbacks:
            name = fallbacks.pop(0)
            print(f"arena: fewer than two models loaded; trying the fallback {name}", flush=True)
            self._add(ModelSpec(name))
        if len(self.contestants) < 2:
            self.close()
            raise RuntimeError(f"the arena needs two models that load; got {list(self.contestants)}; "
                               f"unavailable: {self.unavailable}")
        return self

    def close(self) -> None:
        """Stop the model worker processes."""
        for worker in self.workers.values():
            worker.stop()
        self.workers.clear()

    def _add(self, spec: ModelSpec) -> None:
        try:
            assistant = self._load(spec)
            if not assistant.accepts_audio:
                raise ValueError(f"{spec.name} does not take audio")
        except Exception as error:  # noqa: BLE001 - any load failure just leaves the model out
            self.unavailable[spec.name] = f"{type(error).__name__}: {error}"
            print(f"arena: {spec.name} is unavailable: {error}", flush=True)
            if spec.name in self.workers:
                self.workers.pop(spec.name).stop()
            return
        self.assistants[spec.name] = assistant
        self.contestants[spec.name] = spec

    def draw_pair(self) -> tuple[str, str]:
        """A random pair (probability ∝ pair weight), in random left/right order."""
        specs = list(self.contestants.values())
        pairs = [(a, b) for i, a in enumerate(specs) for b in specs[i + 1:]]
        weights = [self.config.pair_weight(a, b) for a, b in pairs]
        if not any(w > 0 for w in weights):
            raise RuntimeError("every pair has weight 0")
        with self._rng_lock:
            a, b = self._rng.choices(pairs, weights)[0]
            return (a.name, b.name) if self._rng.random() < 0.5 else (b.name, a.name)

    # ---- one battle --------------------------------------------------------------------------
    def allow_battle(self, session: str, client: str | None) -> None:
        """ArenaError over the per-minute battle limit, counted per session and per client address
        (held only as its salted hash), so fresh sessions from one address share the limit."""
        wait = self.limiter.allow(f"session:{session}", f"voter:{self.store.pseudonym(client or session)}")
        if wait is not None:
            raise ArenaError(f"Too many battles: up to {self.config.limits.battles_per_minute} a minute. "
                             f"Try again in {wait:.0f} s.")

    def check_input(self, audio, prompt: str | None) -> tuple[np.ndarray, str | None]:
        """The clip as 16 kHz samples and the cleaned prompt, or ArenaError with a clear message."""
        limits = self.config.limits
        if audio is None:
            raise ArenaError("Record or upload a question first.")
        if isinstance(audio, (str, Path)):
            size_mb = os.path.getsize(audio) / 2**20
            if size_mb > limits.max_upload_mb:
                raise ArenaError(f"The file is {size_mb:.1f} MB; the limit is {limits.max_upload_mb:g} MB.")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                samples = load_audio(audio, long_audio="error")  # over Whisper's 30 s: refused
        except AudioError as error:
            raise ArenaError(f"That audio cannot be used: {error}.") from None
        seconds = samples.size / SAMPLE_RATE
        if seconds > limits.max_audio_s:
            raise ArenaError(f"The clip is {seconds:.1f} s long; the limit is {limits.max_audio_s:g} s. "
                             "Please ask a shorter question.")
        prompt = (prompt or "").strip() or None
        if prompt and len(prompt) > limits.max_prompt_chars:
            raise ArenaError(f"The instruction has {len(prompt)} characters; the limit is "
                             f"{limits.max_prompt_chars}.")
        return samples, prompt

    def options(self, model: str):
        """The generation options `model` decodes with in battles."""
        spec = self.contestants.get(model) or ModelSpec(model)
        return self.config.options(spec)

    def race(self, samples: np.ndarray, prompt: str | None, models: tuple[str, str]) -> Iterator[list[Side]]:
        """Both models answer at once, each in its own thread; yields both sides as text arrives."""
        sides = [Side(m) for m in models]
        events: queue.Queue = queue.Queue()
        start = time.perf_counter()

        def run(i: int) -> None:
            try:
                stream = self.assistants[models[i]].stream(samples, prompt, options=self.options(models[i]))
                for delta in stream:
                    events.put((i, "delta", delta, time.perf_counter() - start))
                events.put((i, "done", stream.reply.transcript, time.perf_counter() - start))
            except Exception as error:  # noqa: BLE001 - shown as "this model failed", logged here
                print(f"arena: {models[i]} failed: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
                events.put((i, "error", f"{type(error).__name__}: {error}", time.perf_counter() - start))

        for i in range(2):
            threading.Thread(target=run, args=(i,), daemon=True, name=f"arena-{models[i]}").start()
        last_push = 0.0
        while not all(s.done for s in sides):
            i, kind, payload, t = events.get()
            side = sides[i]
            if kind == "delta" and payload:
                side.text += payload
                side.ttft_s = side.ttft_s if side.ttft_s is not None else t
            elif kind == "done":
                side.total_s, side.heard = t, payload
            elif kind == "error":
                side.error = payload
            if kind != "delta" or time.perf_counter() - last_push > UPDATE_EVERY_S:
                last_push = time.perf_counter()
                yield sides

    def record(self, session_id: str, samples: np.ndarray, prompt: str | None, sides: list[Side]) -> str:
        sha, path = self.store.save_audio(samples)
        a, b = sides
        return self.store.add_battle(Battle(
            session_id=session_id, audio_sha256=sha, audio_path=path, audio_s=samples.size / SAMPLE_RATE,
            prompt=prompt, model_a=a.model, model_b=b.model, response_a=a.text, response_b=b.text,
            ttft_a_s=a.ttft_s, total_a_s=a.total_s, ttft_b_s=b.ttft_s, total_b_s=b.total_s,
            options_a=options_json(self.options(a.model)), options_b=options_json(self.options(b.model)),
            heard_a=a.heard, heard_b=b.heard))

    def vote(self, state: BattleState, outcome: str, reason: str | None, voter: str | None = None,
             session: str | None = None) -> None:
        """Record a vote from `session`; `voter` (a client address or session id) is stored only as
        a salted hash."""
        if state.battle_id is None:
            raise ArenaError("There is no finished battle to vote on.")
        if state.session is not None and session != state.session:
            raise ArenaError("This battle was started in another session; only that session can vote on it.")
        if state.voted:
            raise ArenaError("You already voted on this battle. Start a new round.")
        try:
            self.store.record_vote(state.battle_id, outcome, (reason or "")[:1000], voter=voter)
        except VoteError as error:
            raise ArenaError(str(error)) from None
        state.voted = True


def options_json(options) -> str:
    """Generation options as stored with a battle: every field, so a row says exactly how it was decoded."""
    from dataclasses import asdict
    return json.dumps(asdict(options), sort_keys=True)
