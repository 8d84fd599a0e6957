"""Slow or low speech on the selection set: the selection questions spoken by the VALID voices at a
speed and pitch outside training (0.8x by default), read by DiVA as they are and corrected with
sox (`--tempo`: faster, same pitch; `--repitch`: higher, same tempo). Says how much of the loss
such a correction would win back.

    python -m research.slow_speech --checkpoint checkpoints/diva-mini-whisper --speed 0.8 \
        [--pitch 0.8] --tempo 1.0 1.25 [--repitch 1.25] [--limit 208] [--beam]
"""
from __future__ import annotations

import argparse

import numpy as np

from diva.audio import SAMPLE_RATE
from diva.voices import VALID_VOICES, _sox_tempo_pitch, synthesize
from eval.metrics import word_errors
from eval.offline import read_jsonl, stable_seed


def slow_clips(speed: float, pitch: float, limit: int | None) -> list[tuple[str, np.ndarray]]:
    rows = read_jsonl("spoken_qa_select.jsonl")[:limit]
    return [(r["question"], synthesize(r["question"], VALID_VOICES[i % len(VALID_VOICES)], speed=speed,
                                       pitch=pitch, seed=stable_seed(r["id"])))
            for i, r in enumerate(rows)]


def reading_wer(model, clips: list[tuple[str, np.ndarray]], tempo: float, repitch: float = 1.0,
                batch: int = 16) -> float:
    errors = words = 0
    for start in range(0, len(clips), batch):
        part = clips[start:start + batch]
        audios = [_sox_tempo_pitch(a, SAMPLE_RATE, tempo, repitch) for _, a in part]
        for (text, _), heard in zip(part, model.hear(audios)[2]):
            e, w = word_errors(text, heard)
            errors += e
            words += w
    return 100 * errors / max(words, 1)


def main(argv: list[str] | None = None) -> None:
    from diva.checkpoint import load_diva
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="checkpoints/diva-mini-whisper")
    p.add_argument("--speed", type=float, default=0.8)
    p.add_argument("--pitch", type=float, default=1.0)
    p.add_argument("--tempo", type=float, nargs="+", default=[1.0, 1.15, 1.25])
    p.add_argument("--repitch", type=float, nargs="+", default=[1.0])
    p.add_argument("--limit", type=int)
    p.add_argument("--beam", action="store_true", help="read with the LLM-rescored beam")
    args = p.parse_args(argv)
    model = load_diva(args.checkpoint, options={"bridge_decode": "llm-beam"} if args.beam else None)
    clips = slow_clips(args.speed, args.pitch, args.limit)
    seconds = sum(len(a) for _, a in clips) / SAMPLE_RATE / len(clips)
    print(f"{len(clips)} selection questions at {args.speed}x speed, {args.pitch}x pitch "
          f"({seconds:.1f} s each on average)")
    for tempo in args.tempo:
        for repitch in args.repitch:
            print(f"tempo {tempo:.2f}, pitch {repitch:.2f}: WER {reading_wer(model, clips, tempo, repitch):.1f}",
                  flush=True)


if __name__ == "__main__":
    main()
