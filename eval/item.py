"""One evaluation example, whatever dataset it came from."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Item:
    item_id: str                     # unique within its task
    reference: Any                   # gold answers (list), label (str) or translation (str)
    transcript: str | None = None    # the words spoken: the text-modality input (None: no text)
    audio: Any = None                # anything `eval.loaders.audio_array` accepts (None: no audio)
    subset: str = "all"              # dialect, target language, ... ("all" when there is none)
    fields: dict = field(default_factory=dict)  # prompt fields (context, language) and extras
