"""The one prompt builder: the LLM's own chat template around audio or a transcript.

Layout (DESIGN.md): one user turn holding [optional text prompt] then the content (virtual
tokens for the audio branch, the transcript for the text branch), then the assistant header.
No system prompt and no instruction are added by us; a template that inserts its own default
system turn (SmolLM2 does) keeps it, identically in both branches.
"""
from __future__ import annotations

import functools

PLACEHOLDER = "\uE000DIVA_CONTENT\uE000"  # private-use characters: never in real text


def user_content(content: str, prompt: str | None = None) -> str:
    return f"{prompt}\n{content}" if prompt else content


class PromptLayout:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def render(self, messages: list[dict]) -> str:
        """The chat template's text for these messages, ending with the assistant header."""
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _render(self, content: str) -> str:
        return self.render([{"role": "user", "content": content}])

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    @functools.lru_cache(maxsize=256)
    def around_audio(self, prompt: str | None = None) -> tuple[list[int], list[int]]:
        """Token ids before and after the virtual tokens."""
        before, after = self._render(user_content(PLACEHOLDER, prompt)).split(PLACEHOLDER)
        return self._encode(before), self._encode(after)

    def text_ids(self, transcript: str, prompt: str | None = None) -> list[int]:
        """Token ids of the whole text-branch prompt, tokenized as the LLM normally sees it."""
        return self._encode(self._render(user_content(transcript, prompt)))

    def transcript_ids(self, transcript: str) -> list[int]:
        """The transcript's own tokens (the token-alignment targets)."""
        return self._encode(transcript)
