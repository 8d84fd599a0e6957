"""On-disk cache of what the frozen parts compute: Whisper encoder states and text-branch targets.

Keys are content hashes (the model's name + the audio bytes or the transcript), so a cache is
valid across runs, configs and corpora that share clips. One `.npy` file per entry under
`<root>/<kind>/<model hash>/<key[:2]>/<key>.npy`, written atomically (tmp + rename), so
a killed run leaves no half-written entry.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch


def content_key(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()


class FrozenCache:
    def __init__(self, root: str | Path, kind: str, model_id: str, dtype=np.float16):
        self.folder = Path(root) / kind / content_key(model_id)[:16]
        self.dtype = dtype
        self.hits = self.misses = 0

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.npy"

    def get(self, key: str) -> torch.Tensor | None:
        path = self._path(key)
        if not path.exists():
            self.misses += 1
            return None
        self.hits += 1
        return torch.from_numpy(np.load(path))

    def put(self, key: str, value: torch.Tensor) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, value.detach().float().cpu().numpy().astype(self.dtype))
        os.replace(tmp, path)

    def get_or_compute(self, keys: list[str], compute) -> list[torch.Tensor]:
        """Look up each key; compute the misses in one batch with `compute(indices)`."""
        found = [self.get(k) for k in keys]
        missing = [i for i, v in enumerate(found) if v is None]
        if missing:
            for i, value in zip(missing, compute(missing)):
                self.put(keys[i], value)  # return the stored precision: a hit and a miss agree
                found[i] = torch.from_numpy(value.detach().float().cpu().numpy().astype(self.dtype))
        return [v.float() for v in found]
