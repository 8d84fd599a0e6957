"""The text-only LLM on a given transcript: the ceiling a speech LLM is measured against."""
from __future__ import annotations

from diva.assistants.local import LocalLLMAssistant


class TextAssistant(LocalLLMAssistant):
    accepts_audio = False

    def _audio_inputs(self, audios, prompts):
        raise ValueError(f"{self.name} reads transcripts only")
