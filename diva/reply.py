"""An assistant's reply and the clock that times its tokens (time to first token, decode speed)."""
from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class Reply:
    text: str
    transcript: str | None = None   # what the backend heard, when it has an ASR step
    ttft_s: float | None = None     # request start -> first generated token
    total_s: float | None = None    # request start -> last token
    n_tokens: int = 0               # generated tokens
    tokens_per_s: float | None = None  # decode speed after the first token

    def as_dict(self) -> dict:
        return {"response": self.text, "transcript": self.transcript, "ttft_s": self.ttft_s,
                "total_s": self.total_s, "n_tokens": self.n_tokens, "tokens_per_s": self.tokens_per_s}


class TokenClock:
    """Timestamps per generated token; turns them into TTFT and decode speed."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.token_times: list[float] = []

    def tick(self) -> None:
        self.token_times.append(time.perf_counter())

    def finish(self, text: str, transcript: str | None = None, n_tokens: int | None = None) -> Reply:
        end = self.token_times[-1] if self.token_times else time.perf_counter()
        n = len(self.token_times) if n_tokens is None else n_tokens
        ttft = self.token_times[0] - self.start if self.token_times else None
        speed = None
        if len(self.token_times) > 1:
            speed = (len(self.token_times) - 1) / max(self.token_times[-1] - self.token_times[0], 1e-9)
        return Reply(text=text, transcript=transcript, ttft_s=ttft, total_s=end - self.start,
                     n_tokens=n, tokens_per_s=speed)
