"""Shared machinery of the local backends: a frozen LLM decoded from input embeddings.

Subclasses only say how audio becomes LLM inputs (`_audio_inputs`); the text modality, batching,
streaming, conversations and timing are the same for all of them.
"""
from __future__ import annotations

from abc import abstractmethod

import numpy as np
import torch
from transformers import DynamicCache

from diva.assistants.base import Request, VoiceAssistant
from diva.audio import load_audio
from diva.chat import PrefixCache, chat_inputs
from diva.generation import GenerationOptions, decode, generate_rows
from diva.jobs import Job
from diva.padding import pad
from diva.prompt import PromptLayout
from diva.reply import Reply, TokenClock


class LocalLLMAssistant(VoiceAssistant):
    def __init__(self, name: str, llm, tokenizer):
        super().__init__()
        self.name = name
        self.llm = llm
        self.tokenizer = tokenizer
        self.layout = PromptLayout(tokenizer)
        self.prefix_cache = PrefixCache()

    @abstractmethod
    def _audio_inputs(self, audios: list[np.ndarray], prompts: list[str | None]):
        """-> (generate inputs dict, what each clip was heard as, or None) for a batch of 16 kHz arrays."""

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

    def run_jobs(self, jobs: list[Job]) -> None:
        """Decode the jobs as one left-padded batch, each streaming and ending on its own (the
        caller holds the lock). Jobs cancelled before they start get an empty reply.
        Conversations: one that continues a stored KV cache (diva.chat.PrefixCache) is decoded
        alone from it, the others together; whatever is decoded alone stores its cache."""
        for job in jobs:
            if job.cancelled.is_set():
                job.finish(Reply(text=""))
        live = [job for job in jobs if not job.done.is_set()]
        if not live:
            return
        if any(job.turns is None for job in live):
            if any(job.turns is not None for job in live):
                raise ValueError("a batch must be all conversations or all single questions")
            inputs, heard = self._inputs([job.request for job in live])
            if len(live) == 1 and "inputs_embeds" in inputs:  # a first turn: its cache may be continued
                self._decode_alone(live[0], inputs["inputs_embeds"][0], heard[0] if heard else None,
                                   DynamicCache(config=self.llm.config))
            else:
                self._decode(live, inputs, heard)
            return
        prompts = [chat_inputs(self, job.turns) for job in live]
        cached = [self.prefix_cache.take(embeds) for embeds, _ in prompts]
        for job, (embeds, heard), cache in zip(live, prompts, cached):
            if cache is not None:
                self._decode_alone(job, embeds, heard, cache)
        rest = [(job, prompt) for job, prompt, cache in zip(live, prompts, cached) if cache is None]
        if len(rest) == 1:
            job, (embeds, heard) = rest[0]
            self._decode_alone(job, embeds, heard, DynamicCache(config=self.llm.config))
        elif rest:
            embeds, mask = pad([embeds for _, (embeds, _) in rest])
            self._decode([job for job, _ in rest], {"inputs_embeds": embeds, "attention_mask": mask},
                         [heard for _, (_, heard) in rest])

    def _decode_alone(self, job: Job, embeds: torch.Tensor, heard: str | None, cache) -> None:
        mask = torch.ones(1, embeds.shape[0], dtype=torch.long, device=embeds.device)
        ids = self._decode([job], {"inputs_embeds": embeds[None], "attention_mask": mask}, [heard], cache)[0]
        reply = self.llm.get_input_embeddings()(torch.tensor(ids, dtype=torch.long, device=embeds.device))
        self.prefix_cache.put(embeds, reply, cache)

    def _decode(self, jobs: list[Job], inputs: dict, heard: list | None, cache=None) -> list[list[int]]:
        clock = TokenClock()
        rows = generate_rows(self.llm, self.tokenizer, inputs, [job.row() for job in jobs], clock, cache=cache)
        lengths = (inputs["attention_mask"].sum(1).tolist() if "attention_mask" in inputs
                   else [0] * len(jobs))
        for i, (job, ids) in enumerate(zip(jobs, rows)):
            text = job.shown_text() if job.streamed else decode(self.tokenizer, ids, job.options.stop)
            job.finish(clock.row(text, len(ids), start=job.submitted, prompt_tokens=int(lengths[i]),
                                 transcript=heard[i] if heard else None))
        return rows

    def _generate(self, requests: list[Request], options: GenerationOptions) -> list[Reply]:
        jobs = [Job(request, options) for request in requests]
        self.run_jobs(jobs)
        return [job.reply for job in jobs]
