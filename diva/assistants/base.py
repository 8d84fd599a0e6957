"""The one interface for everything that answers speech.

Every backend (DiVA, Whisper -> LLM cascade, text-only LLM, Qwen2-Audio, remote servers)
implements `_generate` (a batch); local ones also `run_jobs` (a batch whose rows stream and can
be cancelled one by one, see diva.jobs). Callers use:

    assistant.generate(audios, prompts=None, max_new_tokens=...) -> list[str]
    assistant.generate_replies(..., options=GenerationOptions(...)) -> list[Reply] (with timing)
    stream = assistant.stream(audio, prompt=None)                -> ReplyStream
    for delta in stream: ...                                     # text as it is produced
    stream.reply                                                 # Reply once exhausted
    stream.close()                                               # stop early: generation ends

`options` (diva.generation.GenerationOptions) say how replies are decoded (greedy by default,
or seeded sampling, stop strings, ...); a bare `max_new_tokens=` still works.
`transcripts=` asks the same backend in the text modality (its LLM reads the transcript),
which is how the modality gap is measured; the `text` backend accepts only that.
"""
from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from diva.audio import AudioInput
from diva.generation import DEFAULT_MAX_NEW_TOKENS, GenerationOptions, as_options
from diva.reply import Reply

__all__ = ["DEFAULT_MAX_NEW_TOKENS", "Reply", "ReplyStream", "Request", "VoiceAssistant", "make_requests"]


@dataclass
class Request:
    """One question: audio (or a transcript, for the text modality) and an optional text prompt."""
    audio: AudioInput | None = None
    prompt: str | None = None
    transcript: str | None = None


class ReplyStream:
    """Iterates over text deltas; `.reply` holds the full Reply once the stream is exhausted.
    `close()` (or leaving a `with` block) stops the generation behind it."""

    def __init__(self, deltas: Iterator[str], finish: Callable[[str], Reply],
                 on_close: Callable[[], None] | None = None):
        self._deltas = deltas
        self._finish = finish
        self._on_close = on_close
        self._parts: list[str] = []
        self.reply: Reply | None = None

    def __iter__(self) -> Iterator[str]:
        for delta in self._deltas:
            self._parts.append(delta)
            yield delta
        self.reply = self._finish("".join(self._parts))

    def text(self) -> str:
        """Consume the stream and return the whole text."""
        for _ in self:
            pass
        return self.reply.text

    def close(self) -> None:
        if self._on_close is not None:
            self._on_close()
        close = getattr(self._deltas, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> "ReplyStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class VoiceAssistant(ABC):
    """Base class: batching, prompt/transcript plumbing, a lock per model, the streaming fallback."""

    name: str = "assistant"
    accepts_audio: bool = True
    accepts_text: bool = True

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one batch at a time per model: 2 cores, no oversubscription

    # ---- what backends implement -------------------------------------------------------
    @abstractmethod
    def _generate(self, requests: list[Request], options: GenerationOptions) -> list[Reply]:
        """Answer a batch of requests."""

    def run_jobs(self, jobs: list) -> None:
        """Answer diva.jobs.Job's (the caller holds the lock). Fallback: `_generate` per job, a
        streamed reply shown whole at once; single turns only."""
        for job in jobs:
            if job.turns is not None:
                raise ValueError(f"{self.name} answers single questions, not conversations")
            if job.cancelled.is_set():
                job.finish(Reply(text=""))
                continue
            reply = self._generate([job.request], job.options)[0]
            if job.streamed:
                job.show(reply.text)
                reply.text = job.shown_text()
            job.finish(reply)

    def _stream(self, request: Request, options: GenerationOptions) -> ReplyStream:
        """Stream one request: a job decoded in its own thread, which holds the lock only while
        decoding (closing the stream cancels it)."""
        from diva.jobs import Job
        job = Job(request, options, streamed=True)
        stream = job.stream()

        def work() -> None:
            try:
                with self._lock:
                    self.run_jobs([job])
            except BaseException as error:  # surfaced in the reader's thread
                job.fail(error)

        threading.Thread(target=work, daemon=True, name=f"stream-{self.name}").start()
        return stream

    # ---- what callers use ----------------------------------------------------------------
    def generate_replies(self, audios: Sequence[AudioInput] | None = None,
                         prompts: Sequence[str | None] | None = None, *,
                         transcripts: Sequence[str] | None = None, max_new_tokens: int | None = None,
                         options: GenerationOptions | None = None) -> list[Reply]:
        requests = make_requests(audios, prompts, transcripts)
        for request in requests:
            self._check(request)
        with self._lock:
            return self._generate(requests, as_options(options, max_new_tokens))

    def generate(self, audios: Sequence[AudioInput] | None = None,
                 prompts: Sequence[str | None] | None = None, *,
                 transcripts: Sequence[str] | None = None, max_new_tokens: int | None = None,
                 options: GenerationOptions | None = None) -> list[str]:
        return [r.text for r in self.generate_replies(audios, prompts, transcripts=transcripts,
                                                      max_new_tokens=max_new_tokens, options=options)]

    def stream(self, audio: AudioInput | None = None, prompt: str | None = None, *,
               transcript: str | None = None, max_new_tokens: int | None = None,
               options: GenerationOptions | None = None) -> ReplyStream:
        request = Request(audio=audio, prompt=prompt, transcript=transcript)
        self._check(request)
        return self._stream(request, as_options(options, max_new_tokens))

    def _check(self, request: Request) -> None:
        if request.transcript is not None:
            if not self.accepts_text:
                raise ValueError(f"{self.name} answers audio only, not a transcript")
        elif request.audio is None:
            raise ValueError(f"{self.name} needs audio (or a transcript)")
        elif not self.accepts_audio:
            raise ValueError(f"{self.name} answers transcripts only: pass transcripts=")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def make_requests(audios, prompts, transcripts) -> list[Request]:
    if audios is None and transcripts is None:
        raise ValueError("give audios or transcripts")
    n = len(audios) if audios is not None else len(transcripts)
    if transcripts is not None and len(transcripts) != n:
        raise ValueError("audios and transcripts differ in length")
    prompts = list(prompts) if prompts is not None else [None] * n
    if len(prompts) != n:
        raise ValueError(f"{n} inputs but {len(prompts)} prompts")
    return [Request(audio=audios[i] if audios is not None else None, prompt=prompts[i],
                    transcript=transcripts[i] if transcripts is not None else None) for i in range(n)]
