"""A request on its way through a batch: what to answer, how, a flag that ends it early, and where
its text and its reply go.

A job's listener hears `("text", delta)` for each shown piece of a streamed reply, then one
`("done", Reply)` or `("error", exception)`. Whoever decodes it (diva.batching's worker, or the
thread behind `VoiceAssistant.stream`) holds the model's lock only while decoding, so a job left
unread never keeps the lock: `cancel()` ends its generation at the next token.
"""
from __future__ import annotations

import queue
import threading
import time
from typing import Callable

from diva.generation import GenerationOptions, Row, current_extra_processors
from diva.generation_rows import StopText
from diva.reply import Reply

Listener = Callable[[str, object], None]


class Job:
    def __init__(self, request=None, options: GenerationOptions | None = None, *, turns=None,
                 streamed: bool = False, listener: Listener | None = None):
        if (request is None) == (turns is None):
            raise ValueError("a job answers either a request or a chat history")
        self.request = request          # diva.assistants.base.Request: one user turn
        self.turns = turns              # or list[diva.chat.Turn]: a whole conversation
        self.options = options or GenerationOptions()
        self.extra = current_extra_processors()
        self.cancelled = threading.Event()
        self.done = threading.Event()
        self.submitted = time.perf_counter()
        self.listener = listener or (lambda kind, payload: None)
        self.reply: Reply | None = None
        self.error: BaseException | None = None
        self._text = StopText(self.options.stop) if streamed else None
        self._shown: list[str] = []

    @property
    def streamed(self) -> bool:
        return self._text is not None

    @property
    def kind(self) -> str:
        if self.turns is not None:
            return "chat"
        return "text" if self.request.transcript is not None else "audio"

    def batch_key(self) -> tuple:
        """Jobs with equal keys can be decoded as one batch."""
        return self.kind, self.options.batch_key(), tuple(map(id, self.extra))

    def row(self) -> Row:
        return Row(self.options, self.cancelled, self.show if self.streamed else None, self.extra)

    def cancel(self) -> None:
        self.cancelled.set()

    # ---- called by whoever decodes the job ---------------------------------------------------
    def show(self, text: str) -> None:
        """Raw text as the model produced it; passes on what the reply's final text will hold."""
        self._emit(self._text.feed(text))

    def shown_text(self) -> str:
        """The streamed reply's final text (everything shown, once the rest is flushed)."""
        self._emit(self._text.finish())
        return "".join(self._shown)

    def finish(self, reply: Reply) -> None:
        if not self.done.is_set():
            self.reply = reply
            self.done.set()
            self.listener("done", reply)

    def fail(self, error: BaseException) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()
            self.listener("error", error)

    def _emit(self, delta: str) -> None:
        if delta:
            self._shown.append(delta)
            self.listener("text", delta)

    # ---- for a thread that reads the job ----------------------------------------------------
    def stream(self):
        """A ReplyStream over this (streamed) job; closing it cancels the job. Call before the job
        is decoded."""
        from diva.assistants.base import ReplyStream
        events: queue.Queue = queue.Queue()
        self.listener = lambda kind, payload: events.put((kind, payload))

        def deltas():
            try:
                while True:
                    kind, payload = events.get()
                    if kind == "text":
                        yield payload
                    elif kind == "error":
                        raise payload
                    else:
                        return
            finally:
                self.cancel()

        return ReplyStream(deltas(), lambda text: self.reply, on_close=self.cancel)
