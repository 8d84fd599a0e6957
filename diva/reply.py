"""An assistant's reply and the clock that times its tokens (time to first token, decode speed)."""
from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class Reply:
    text: str
    transcript: str | None = None   # what the backend heard, when its hearing is text (ASR, bridge readings)
    ttft_s: float | None = None     # request start -> first generated token
    total_s: float | None = None    # request start -> last token
    n_tokens: int = 0               # generated tokens
    tokens_per_s: float | None = None  # decode speed after the first token
    prompt_tokens: int = 0          # LLM input positions (virtual tokens included)

    def as_dict(self) -> dict:
        return {"response": self.text, "transcript": self.transcript, "ttft_s": self.ttft_s,
                "total_s": self.total_s, "n_tokens": self.n_tokens, "tokens_per_s": self.tokens_per_s,
                "prompt_tokens": self.prompt_tokens}


class TokenClock:
    """Timestamps per generated token; turns them into TTFT and decode speed."""

    def __init__(self, start: float | None = None) -> None:
        self.start = time.perf_counter() if start is None else start
        self.token_times: list[float] = []

    def tick(self) -> None:
        self.token_times.append(time.perf_counter())

    def finish(self, text: str, transcript: str | None = None, n_tokens: int | None = None,
               start: float | None = None) -> Reply:
        """The reply over every tick so far (`n_tokens` may say otherwise, e.g. a server's count)."""
        return _reply(self.token_times, self.start if start is None else start, text, transcript,
                      len(self.token_times) if n_tokens is None else n_tokens)

    def row(self, text: str, n_tokens: int, start: float | None = None, transcript: str | None = None,
            prompt_tokens: int = 0) -> Reply:
        """One row of a batch: its first `n_tokens` ticks (a stop token ends a row one tick later)."""
        times = self.token_times[:max(1, n_tokens)]
        reply = _reply(times, self.start if start is None else start, text, transcript, n_tokens)
        reply.prompt_tokens = prompt_tokens
        return reply


def _reply(times: list[float], start: float, text: str, transcript: str | None, n_tokens: int) -> Reply:
    end = times[-1] if times else time.perf_counter()
    ttft = times[0] - start if times else None
    speed = (len(times) - 1) / max(times[-1] - times[0], 1e-9) if len(times) > 1 else None
    return Reply(text=text, transcript=transcript, ttft_s=ttft, total_s=end - start, n_tokens=n_tokens,
                 tokens_per_s=speed)
