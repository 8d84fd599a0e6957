"""DiVA as an assistant: audio -> virtual tokens -> the frozen LLM.

When the vocabulary bridge reads its slots as text, replies carry that reading as their
transcript (what DiVA heard)."""
from __future__ import annotations

import torch

from diva.assistants.local import LocalLLMAssistant
from diva.model import DiVA


class DivaAssistant(LocalLLMAssistant):
    def __init__(self, name: str, model: DiVA):
        super().__init__(name, model.llm, model.tokenizer)
        self.model = model.eval()

    def _audio_inputs(self, audios, prompts):
        virtual, keep, heard = self.model.hear(audios)
        embeds, mask = self.model.audio_inputs(virtual, prompts, keep)
        return {"inputs_embeds": embeds, "attention_mask": mask}, heard

    def turn_content(self, audio):
        with torch.no_grad():
            virtual, keep, heard = self.model.hear([audio])
            return (virtual[0] if keep is None else virtual[0][keep[0]]), (heard[0] if heard else None)
