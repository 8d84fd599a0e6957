"""What an assistant heard in a clip, as text: the reading whose WER the real-speech ASR set reports.

- cascades: Whisper's transcript (`transcribe`; the rescored cascade: the n-best entry its LLM
  picked);
- DiVA behind the vocabulary bridge: the words its slots carry to the LLM (`DiVA.hear`, window by
  window for clips longer than its encoder window). Greedy: the kept slots' top Whisper tokens
  (the head's top token is a word and does not repeat the previous slot's), decoded; llm-beam:
  the question the LLM rescoring picked (`SlotReader.questions`);
- anything else (the text-only LLM, a linear-projection DiVA) has no reading: None.
"""
from __future__ import annotations

import torch


def has_reading(assistant) -> bool:
    model = getattr(assistant, "model", None)
    return callable(getattr(assistant, "transcribe", None)) or getattr(model, "reader", None) is not None


@torch.no_grad()
def readings(assistant, audios) -> list[str] | None:
    """One reading per 16 kHz clip, or None when the assistant has none."""
    if callable(getattr(assistant, "transcribe", None)):
        return assistant.transcribe(audios)
    model = getattr(assistant, "model", None)
    if getattr(model, "reader", None) is None:
        return None
    return model.hear(audios)[2]
