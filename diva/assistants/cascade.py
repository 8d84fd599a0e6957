"""The cascade baseline: Whisper transcribes, then the same LLM answers the transcript."""
from __future__ import annotations

import torch

from diva.assistants.local import LocalLLMAssistant
from diva.audio import SAMPLE_RATE


class CascadeAssistant(LocalLLMAssistant):
    def __init__(self, name: str, whisper, feature_extractor, whisper_tokenizer, llm, tokenizer):
        super().__init__(name, llm, tokenizer)
        self.whisper = whisper
        self.feature_extractor = feature_extractor
        self.whisper_tokenizer = whisper_tokenizer

    @torch.no_grad()
    def transcribe(self, audios) -> list[str]:
        batch = self.feature_extractor(audios, sampling_rate=SAMPLE_RATE, return_tensors="pt",
                                       return_attention_mask=True)
        features = batch.input_features.to(self.whisper.device, self.whisper.dtype)
        options = {"language": "en", "task": "transcribe"} if getattr(
            self.whisper.generation_config, "is_multilingual", False) else {}
        ids = self.whisper.generate(features, attention_mask=batch.attention_mask.to(self.whisper.device),
                                    **options)  # length capped by Whisper's generation config (448)
        return [t.strip() for t in self.whisper_tokenizer.batch_decode(ids, skip_special_tokens=True)]

    def _audio_inputs(self, audios, prompts):
        transcripts = self.transcribe(audios)
        inputs, _ = self._text_inputs(transcripts, prompts)
        return inputs, transcripts
