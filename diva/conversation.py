"""Multi-turn conversations that continue from the KV cache.

    chat = assistant.conversation()          # DiVA, cascade or text assistant
    chat.ask("turn1.wav").text               # the user speaks
    chat.ask(transcript="And its population?").text

Each turn prefills only what it adds (the end of the previous reply, the new user turn, the
assistant header); the history's keys and values are reused, never recomputed. The turn's
tokens come from the LLM's own chat template: the conversation so far is rendered with the last
reply replaced by a marker, and everything after the marker is the new segment. Audio content
enters as embeddings (DiVA's virtual tokens) where the template has a placeholder; a cascade
puts its transcript there as text.
"""
from __future__ import annotations

import torch
from transformers import DynamicCache

from diva.audio import AudioInput, load_audio
from diva.chat import embed_template
from diva.generation import GenerationOptions, as_options, decode, generate_ids
from diva.prompt import PLACEHOLDER, user_content
from diva.reply import Reply, TokenClock

REPLY_MARK = "\uE001DIVA_REPLY\uE001"  # private-use characters: never in real text


class Conversation:
    def __init__(self, assistant):
        self.assistant = assistant
        self.llm, self.tokenizer = assistant.llm, assistant.tokenizer
        self.messages: list[dict] = []      # as the chat template sees them (audio -> PLACEHOLDER)
        self.cache = DynamicCache(config=self.llm.config)
        self._embeds: torch.Tensor | None = None  # (1, T, d): every position so far

    @property
    def n_positions(self) -> int:
        return 0 if self._embeds is None else self._embeds.shape[1]

    def _segment_text(self, user_text: str) -> str:
        """Template text this turn adds after the last reply's tokens."""
        if not self.messages:
            return self.assistant.layout.render([{"role": "user", "content": user_text}])
        history = self.messages[:-1] + [{"role": "assistant", "content": REPLY_MARK}]
        rendered = self.assistant.layout.render(history + [{"role": "user", "content": user_text}])
        if rendered.count(REPLY_MARK) != 1:
            raise ValueError("this chat template does not keep the assistant's reply verbatim")
        return rendered.split(REPLY_MARK)[1]

    def _embed(self, text: str, content: torch.Tensor | None) -> torch.Tensor:
        return embed_template(self.llm, self.tokenizer, text, [] if content is None else [content])

    @torch.no_grad()
    def ask(self, audio: AudioInput | None = None, *, transcript: str | None = None,
            prompt: str | None = None, max_new_tokens: int | None = None,
            options: GenerationOptions | None = None) -> Reply:
        """One user turn (audio or a transcript, optional text prompt) -> the assistant's reply."""
        if (audio is None) == (transcript is None):
            raise ValueError("give either audio or a transcript")
        options = as_options(options, max_new_tokens)
        clock = TokenClock()
        heard, content = None, None
        if audio is not None:
            content, heard = self.assistant.turn_content(load_audio(audio))
        text = transcript if transcript is not None else heard if content is None else PLACEHOLDER
        segment = self._embed(self._segment_text(user_content(text, prompt)), content)
        embeds = segment if self._embeds is None else torch.cat([self._embeds[0], segment])
        embeds = embeds.unsqueeze(0)
        mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
        with self.assistant._lock:
            ids = generate_ids(self.llm, self.tokenizer, {"inputs_embeds": embeds, "attention_mask": mask},
                               options, clock, cache=self.cache)[0]
        answer = decode(self.tokenizer, ids, options.stop)
        n_generated = len(ids)
        if answer != decode(self.tokenizer, ids):  # cut at a stop string: the history holds the cut reply
            ids = self.tokenizer(answer, add_special_tokens=False)["input_ids"]
            extra = self.cache.get_seq_length() - embeds.shape[1] if self.cache is not None else 0
            if extra > 0:  # the reply's positions go; the cut reply is prefilled with the next turn
                self.cache.crop(-extra)
        reply_embeds = self.llm.get_input_embeddings()(torch.tensor(ids, dtype=torch.long,
                                                                    device=embeds.device))
        self._embeds = torch.cat([embeds[0], reply_embeds]).unsqueeze(0)
        self.messages += [{"role": "user", "content": user_content(text, prompt)},
                          {"role": "assistant", "content": answer}]
        reply = clock.finish(answer, transcript=heard, n_tokens=n_generated)
        reply.prompt_tokens = embeds.shape[1]
        return reply
