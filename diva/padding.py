"""The one padding helper: rows of different lengths -> one batch tensor and its 0/1 mask."""
from __future__ import annotations

import torch


def pad(rows: list, side: str = "left", device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack rows (tensors (T_i, ...) or lists of token ids) into (B, T, ...) with zeros on `side`
    ("left" for generation, "right" for targets) and a (B, T) long mask of the real positions.
    T is at least 1, so a batch of empty rows still has a shape."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    rows = [r if torch.is_tensor(r) else torch.tensor(r, dtype=torch.long) for r in rows]
    device = device if device is not None else rows[0].device
    longest = max(1, max(r.shape[0] for r in rows))
    out = rows[0].new_zeros((len(rows), longest, *rows[0].shape[1:]), device=device)
    mask = torch.zeros(len(rows), longest, dtype=torch.long, device=device)
    for i, row in enumerate(rows):
        span = slice(longest - row.shape[0], longest) if side == "left" else slice(0, row.shape[0])
        out[i, span] = row.to(device)
        mask[i, span] = 1
    return out, mask
