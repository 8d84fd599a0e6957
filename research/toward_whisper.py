"""Move a connector's decoder copy part of the way back to Whisper's own decoder weights (weight
interpolation, as WiSE-FT does between a fine-tune and its pre-trained start): a cheap test of
whether what the copy forgot of Whisper helps on unfamiliar speech.

    python -m research.toward_whisper OUT [--checkpoint checkpoints/diva-mini-whisper] --fraction 0.1

The queries and the positional table keep the connector's values (Whisper's decoder never had
the queries, and its positions index tokens, not slots).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors.torch import save_file

from diva.checkpoint import read_checkpoint
from diva.models import load_whisper

KEEP = ("embed_positions.weight",)


def toward_whisper(source: str, out: str | Path, fraction: float) -> tuple[Path, int]:
    """Write `source` with each decoder-copy tensor moved `fraction` of the way to Whisper's; returns
    the folder and how many tensors moved."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"--fraction must be in (0, 1), got {fraction}")
    config, state, raw = read_checkpoint(source)
    whisper = load_whisper(config.encoder)[0].model.decoder.state_dict()
    moved = 0
    for key, value in state.items():
        name = key.removeprefix("connector.")
        if name != key and name not in KEEP and name in whisper and whisper[name].shape == value.shape:
            state[key] = ((1 - fraction) * value.double() + fraction * whisper[name].double().cpu()).to(value.dtype)
            moved += 1
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / "model.safetensors"))
    options = raw.pop("inference", None)
    (out / "config.json").write_text(json.dumps({**raw, "toward_whisper": fraction, "from": str(source)}, indent=2) + "\n")
    if options is not None:
        (out / "inference.json").write_text(json.dumps(options, indent=2) + "\n")
    return out, moved


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--checkpoint", default="checkpoints/diva-mini-whisper")
    parser.add_argument("--fraction", type=float, required=True)
    args = parser.parse_args(argv)
    folder, moved = toward_whisper(args.checkpoint, args.out, args.fraction)
    print(f"{folder}: {moved} tensors moved {args.fraction} of the way to Whisper's decoder")


if __name__ == "__main__":
    main()
