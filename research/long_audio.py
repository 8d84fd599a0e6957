"""Does reading clips longer than the encoder window piece by piece (`DiVA.hear`) recover what a
single window misses, and how long should the pieces be? Long clips are made by joining
consecutive selection-set questions (VALID voices) with short pauses; WER of the reading, first
window only vs pieces of the encoder window and of each `--pieces` length.

    python -m research.long_audio --checkpoint checkpoints/diva-mini-whisper --clips 40 --per-clip 5 \
        --pieces 7.5 5 4 3 [--beam]
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from diva.audio import SAMPLE_RATE, load_audio
from eval.metrics import word_errors

SELECT = Path("data/eval/spoken_qa_select")


def long_clips(n: int, per_clip: int = 5, seed: int = 0):
    manifest = json.loads((SELECT / "manifest.json").read_text())
    items = list(manifest.values())
    rng = np.random.default_rng(seed)
    for i in range(n):
        group = items[i * per_clip:(i + 1) * per_clip]
        parts = []
        for item in group:
            parts += [load_audio(SELECT / item["file"]),
                      np.zeros(int(rng.uniform(0.3, 0.6) * SAMPLE_RATE), dtype=np.float32)]
        yield np.concatenate(parts), " ".join(item["text"] for item in group)


@torch.no_grad()
def main(argv: list[str] | None = None) -> int:
    from diva.checkpoint import load_diva
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--clips", type=int, default=40)
    p.add_argument("--beam", action="store_true", help="read with the LLM-rescored beam")
    p.add_argument("--per-clip", type=int, default=5, help="questions joined into one clip")
    p.add_argument("--pieces", type=float, nargs="*", default=[], help="also read in pieces of at most S seconds")
    args = p.parse_args(argv)
    model = load_diva(args.checkpoint, options={"bridge_decode": "llm-beam"} if args.beam else None).eval()
    window = model.config.encoder_seconds
    lengths = [window, *args.pieces]                       # the encoder window, then shorter pieces
    base = model.options
    totals = {"first window": [0, 0], **{f"{s:g} s pieces": [0, 0] for s in lengths}}
    seconds = []
    for audio, text in long_clips(args.clips, args.per_clip):
        seconds.append(audio.size / SAMPLE_RATE)
        readings = {"first window": model.read_speech_heard(
            model.speech_states([audio[:int(window * SAMPLE_RATE)]]))[2][0]}
        for s in lengths:                                  # DiVA.hear, as the assistant reads
            model.options = replace(base, window_seconds=s)
            readings[f"{s:g} s pieces"] = model.hear([audio])[2][0]
        for key, heard in readings.items():
            errors, words = word_errors(text, heard)
            totals[key][0] += errors
            totals[key][1] += words
    print(f"{args.clips} clips of {np.mean(seconds):.1f} s on average ({min(seconds):.1f}-{max(seconds):.1f} s)")
    for key, (errors, words) in totals.items():
        print(f"{key:14s} WER {100 * errors / words:5.1f}  ({errors}/{words})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
