"""The one interface for everything that answers speech.

Every backend (DiVA, Whisper -> LLM cascade, text-only LLM, Qwen2-Audio, remote servers)
implements `_generate` (a batch) and optionally `_stream` (one request, text deltas).
Callers use:

    assistant.generate(audios, prompts=None, max_new_tokens=...) -> list[str]
    assistant.generate_replies(...)                              -> list[Reply] (with timing)
    stream = assistant.stream(audio, prompt=None)                -> ReplyStream
    for delta in stream: ...                                     # text as it is produced
    stream.reply                                                 # Reply once exhausted

`transcripts=` asks the same backend in the text modality (its LLM reads the transcript),
which is how the modality gap is measured; the `text` backend accepts only that.
"""
from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from diva.audio import AudioInput
from diva.reply import Reply

DEFAULT_MAX_NEW_TOKENS = 128


@dataclass
class Request:
    """One question: audio (or a transcript, for the text modality) and an optional text prompt."""
    audio: AudioInput | None = None
    prompt: str | None = None
    transcript: str | None = None


class ReplyStream:
    """Iterates over text deltas; `.reply` holds the full Reply once the stream is exhausted."""

    def __init__(self, deltas: Iterator[str], finish: Callable[[str], Reply]):
        self._deltas = deltas
        self._finish = finish
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


class VoiceAssistant(ABC):
    """Base class: batching, prompt/transcript plumbing, a lock per model, the streaming fallback."""

    name: str = "assistant"
    accepts_audio: bool = True
    accepts_text: bool = True

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one request at a time per model: 2 cores, no oversubscription

    # ---- what backends implement -------------------------------------------------------
    @abstractmethod
    def _generate(self, requests: list[Request], max_new_tokens: int) -> list[Reply]:
        """Answer a batch of requests."""

    def _stream(self, request: Request, max_new_tokens: int) -> ReplyStream:
        """Stream one request. Fallback: generate, then yield the whole text at once."""
        replies: list[Reply] = []

        def deltas() -> Iterator[str]:
            replies.extend(self._generate([request], max_new_tokens))
            yield replies[0].text

        return ReplyStream(deltas(), lambda text: replies[0])

    # ---- what callers use ----------------------------------------------------------------
    def generate_replies(self, audios: Sequence[AudioInput] | None = None,
                         prompts: Sequence[str | None] | None = None, *,
                         transcripts: Sequence[str] | None = None,
                         max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS) -> list[Reply]:
        requests = make_requests(audios, prompts, transcripts)
        for request in requests:
            self._check(request)
        with self._lock:
            return self._generate(requests, max_new_tokens)

    def generate(self, audios: Sequence[AudioInput] | None = None,
                 prompts: Sequence[str | None] | None = None, *,
                 transcripts: Sequence[str] | None = None,
                 max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS) -> list[str]:
        return [r.text for r in self.generate_replies(audios, prompts, transcripts=transcripts,
                                                      max_new_tokens=max_new_tokens)]

    def stream(self, audio: AudioInput | None = None, prompt: str | None = None, *,
               transcript: str | None = None,
               max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS) -> ReplyStream:
        request = Request(audio=audio, prompt=prompt, transcript=transcript)
        self._check(request)
        inner = self._stream(request, max_new_tokens)

        def locked() -> Iterator[str]:
            with self._lock:
                yield from inner

        return ReplyStream(locked(), lambda text: inner.reply)

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
