"""Qwen2-Audio (transformers' Qwen2AudioForConditionalGeneration) as a baseline assistant."""
from __future__ import annotations

import torch

from diva.assistants.local import LocalLLMAssistant
from diva.audio import SAMPLE_RATE


class Qwen2AudioAssistant(LocalLLMAssistant):
    """Audio and optional prompt in one user turn, as Qwen2-Audio-Instruct expects."""

    def __init__(self, name: str, model, processor):
        super().__init__(name, model, processor.tokenizer)
        self.model = model
        self.processor = processor
        self.processor.tokenizer.padding_side = "left"

    @classmethod
    def from_pretrained(cls, name: str, source: str) -> "Qwen2AudioAssistant":
        from transformers import AutoProcessor, Qwen2AudioForConditionalGeneration
        from diva.models import default_device, default_dtype
        model = Qwen2AudioForConditionalGeneration.from_pretrained(source, dtype=default_dtype())
        model = model.eval().to(default_device())
        return cls(name, model, AutoProcessor.from_pretrained(source))

    def _chat(self, prompt: str | None, with_audio: bool, transcript: str | None = None) -> str:
        content = [{"type": "audio", "audio_url": "input.wav"}] if with_audio else []
        text = "\n".join(t for t in (transcript, prompt) if t)
        if text:
            content.append({"type": "text", "text": text})
        return self.processor.apply_chat_template([{"role": "user", "content": content}],
                                                  add_generation_prompt=True, tokenize=False)

    def _to_device(self, batch) -> dict:
        dtype = next(self.model.parameters()).dtype
        return {k: (v.to(self.model.device, dtype) if v.is_floating_point() else v.to(self.model.device))
                for k, v in batch.items() if isinstance(v, torch.Tensor)}

    def _audio_inputs(self, audios, prompts):
        texts = [self._chat(p, with_audio=True) for p in prompts]
        batch = self.processor(text=texts, audio=audios, sampling_rate=SAMPLE_RATE,
                               return_tensors="pt", padding=True)
        return self._to_device(batch), None

    def _text_inputs(self, transcripts, prompts):
        texts = [self._chat(p, with_audio=False, transcript=t) for t, p in zip(transcripts, prompts)]
        batch = self.processor.tokenizer(texts, return_tensors="pt", padding=True)
        return self._to_device(batch), None
