"""DiVA as an assistant: audio -> virtual tokens -> the frozen LLM."""
from __future__ import annotations

import torch

from diva.assistants.local import LocalLLMAssistant
from diva.model import DiVA


class DivaAssistant(LocalLLMAssistant):
    def __init__(self, name: str, model: DiVA):
        super().__init__(name, model.llm, model.tokenizer)
        self.model = model.eval()

    def _audio_inputs(self, audios, prompts):
        embeds, mask = self.model.speech_inputs(audios, prompts)
        return {"inputs_embeds": embeds, "attention_mask": mask}, None

    def turn_content(self, audio):
        with torch.no_grad():
            virtual, keep = self.model.read_speech(self.model.speech_states([audio]))
            return (virtual[0] if keep is None else virtual[0][keep[0]]), None
