"""Shared machinery of the local backends: a frozen LLM decoded from input embeddings.

Subclasses only say how audio becomes LLM inputs (`_audio_inputs`); the text modality, batching,
streaming and timing are the same for all of them.
"""
from __future__ import annotations

from abc import abstractmethod
from typing import Iterator

import numpy as np
import torch

from diva.assistants.base import ReplyStream, Request, VoiceAssistant
from diva.reply import Reply, TokenClock
from diva.audio import load_audio
from diva.generation import decode, generate_ids, stream_text
from diva.padding import pad
from diva.prompt import PromptLayout


class LocalLLMAssistant(VoiceAssistant):
    def __init__(self, name: str, llm, tokenizer):
        super().__init__()
        self.name = name
        self.llm = llm
        self.tokenizer = tokenizer
        self.layout = PromptLayout(tokenizer)

    @abstractmethod
    def _audio_inputs(self, audios: list[np.ndarray], prompts: list[str | None]):
        """-> (generate inputs dict, transcripts or None) for a batch of 16 kHz arrays."""

    def turn_content(self, audio: np.ndarray):
        """One clip as a conversation turn's content -> (embeddings or None, transcript or None).
        Default: the transcript (what `_audio_inputs` heard) goes into the template as text."""
        _, heard = self._audio_inputs([audio], [None])
        if not heard:
            raise ValueError(f"{self.name} cannot put audio into a conversation")
        return None, heard[0]

    def conversation(self):
        """A multi-turn chat that continues from the KV cache (see diva.conversation)."""
        from diva.conversation import Conversation
        return Conversation(self)

    def _text_inputs(self, transcripts: list[str], prompts: list[str | None]):
        table = self.llm.get_input_embeddings()
        device = table.weight.device
        rows = [table(torch.tensor(self.layout.text_ids(t, p), device=device))
                for t, p in zip(transcripts, prompts)]
        embeds, mask = pad(rows)
        return {"inputs_embeds": embeds, "attention_mask": mask}, None

    @torch.no_grad()
    def _inputs(self, requests: list[Request]):
        prompts = [r.prompt for r in requests]
        if all(r.transcript is not None for r in requests):
            return self._text_inputs([r.transcript for r in requests], prompts)
        if any(r.transcript is not None for r in requests):
            raise ValueError("a batch must be all audio or all transcripts")
        return self._audio_inputs([load_audio(r.audio) for r in requests], prompts)

    def _generate(self, requests: list[Request], max_new_tokens: int) -> list[Reply]:
        clock = TokenClock()
        inputs, heard = self._inputs(requests)
        rows = generate_ids(self.llm, self.tokenizer, inputs, max_new_tokens, clock)
        batch = clock.finish("")
        return [Reply(text=decode(self.tokenizer, ids), transcript=heard[i] if heard else None,
                      ttft_s=batch.ttft_s, total_s=batch.total_s, n_tokens=len(ids),
                      tokens_per_s=batch.tokens_per_s) for i, ids in enumerate(rows)]

    def _stream(self, request: Request, max_new_tokens: int) -> ReplyStream:
        clock = TokenClock()
        heard: list[str | None] = [None]

        def deltas() -> Iterator[str]:
            inputs, transcripts = self._inputs([request])
            heard[0] = transcripts[0] if transcripts else None
            first = True
            for delta in stream_text(self.llm, self.tokenizer, inputs, max_new_tokens, clock):
                if first:
                    delta, first = delta.lstrip(), False
                yield delta

        return ReplyStream(deltas(), lambda text: clock.finish(text.strip(), transcript=heard[0]))
