"""What each row of a batch needs from transformers' `generate`, apart from the others: its own
seeded draw, its own length limit and cancel flag, its own text stream, and its own stop strings.

These plug into `generate` as a LogitsProcessor, a StoppingCriteria and a BaseStreamer; the
temperature / top-k / top-p warpers, repetition penalty, minimum length and stop-string criterion
are transformers' own (see diva.generation).
"""
from __future__ import annotations

import threading
from typing import Callable, Sequence

import torch
from transformers import LogitsProcessor, StoppingCriteria, TextStreamer
from transformers.generation.streamers import BaseStreamer

from diva.reply import TokenClock

TextSink = Callable[[str], None]


class SeededDraw(LogitsProcessor):
    """Draws each row's next token from the softmax of its (already warped) scores with the row's
    own torch.Generator and leaves only that token, so greedy selection picks it. A row's sample
    depends on its seed and its own scores, never on the process's global RNG or its batch-mates."""

    def __init__(self, seeds: Sequence[int], device: torch.device):
        self.generators = [torch.Generator(device=device).manual_seed(int(s) % 2**63) for s in seeds]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        probs = scores.float().softmax(-1)
        picks = torch.stack([torch.multinomial(p, 1, generator=g) for p, g in zip(probs, self.generators)])
        return torch.full_like(scores, float("-inf")).scatter_(1, picks.to(scores.device), 0.0)


class RowLimits(StoppingCriteria):
    """Ends each row at its own max_new_tokens or as soon as its cancel flag is set (a client that
    went away); ticks the clock once per decoding step."""

    def __init__(self, clock: TokenClock, limits: Sequence[int], flags: Sequence[threading.Event],
                 prompt_length: int):
        self.clock, self.limits, self.flags = clock, list(limits), list(flags)
        self.prompt_length = prompt_length

    def __call__(self, input_ids, scores, **kwargs):
        self.clock.tick()
        produced = input_ids.shape[1] - self.prompt_length
        done = [produced >= limit or flag.is_set() for limit, flag in zip(self.limits, self.flags)]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class _RowText(TextStreamer):
    """transformers' incremental detokenizer for one row, handing finished text to a sink."""

    def __init__(self, tokenizer, sink: TextSink):
        super().__init__(tokenizer, skip_prompt=False, skip_special_tokens=True)
        self.sink = sink

    def on_finalized_text(self, text: str, stream_end: bool = False):
        if text:
            self.sink(text)


class RowStreamer(BaseStreamer):
    """Routes each step's tokens (B,) to the rows' own text streams. A row ends at its first stop
    token; finished rows are padded with a stop token by `generate`, so they stay ended."""

    def __init__(self, tokenizer, sinks: Sequence[TextSink | None], stops: Sequence[int]):
        self.rows = [None if sink is None else _RowText(tokenizer, sink) for sink in sinks]
        self.stops = set(stops)
        self.open = [row is not None for row in self.rows]
        self.prompt_seen = False

    def put(self, value):
        if not self.prompt_seen:  # generate hands over the prompt first
            self.prompt_seen = True
            return
        for i, token in enumerate(value.reshape(-1).tolist()):
            if not self.open[i]:
                continue
            if token in self.stops:
                self._close(i)
            else:
                self.rows[i].put(torch.tensor([token]))

    def end(self):
        for i in range(len(self.rows)):
            if self.open[i]:
                self._close(i)

    def _close(self, i: int) -> None:
        self.open[i] = False
        self.rows[i].end()


class StopText:
    """A reply's text deltas as its final text reads: leading whitespace dropped, trailing
    whitespace and any possible start of a stop string held back until more text decides,
    everything from the first stop string on left out."""

    def __init__(self, stops: Sequence[str] = ()):
        self.stops = [s for s in stops if s]
        self.pending = ""
        self.started = False
        self.stopped = False

    def feed(self, text: str) -> str:
        """What of the text so far can be shown now."""
        if self.stopped:
            return ""
        buffer = self.pending + text
        if not self.started:
            buffer = buffer.lstrip()
            self.started = bool(buffer)
        cuts = [i for i in (buffer.find(s) for s in self.stops) if i >= 0]
        if cuts:
            self.stopped, self.pending = True, ""
            return buffer[:min(cuts)].rstrip()
        hold = 0  # the longest end of the buffer that may begin a stop string
        for stop in self.stops:
            for n in range(len(stop) - 1, hold, -1):
                if buffer.endswith(stop[:n]):
                    hold = n
                    break
        shown = buffer[:len(buffer) - hold].rstrip()
        self.pending = buffer[len(shown):]
        return shown

    def finish(self) -> str:
        """The rest once the reply has ended."""
        rest = "" if self.stopped else self.pending.rstrip()
        self.pending, self.stopped = "", True
        return rest

    @classmethod
    def whole(cls, text: str, stops: Sequence[str] = ()) -> str:
        """The final text of a finished reply."""
        cut = cls(stops)
        return cut.feed(text) + cut.finish()
