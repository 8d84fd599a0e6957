"""WER of what an assistant hears on a synthetic corpus's validation split, by text source: the
selection measure for connectors trained to hear short utterances (single words and phrases
said alone), in the VALID voices, with nothing from the held-out sets.

    python -m research.corpus_wer --corpus data/corpus/words --assistant diva-mini-whisper \
        [--checkpoint NAME=FOLDER] [--llm-beam NAME] [--out research/results/words-select.csv]
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

from eval.metrics import word_errors
from eval.reading import readings
from eval.run import register_checkpoints
from train.data import audio_array, load_corpus


def corpus_wer(assistant, corpus: str, batch_size: int = 16) -> dict[str, tuple[int, int, int]]:
    """source -> (clips, word errors, reference words); "all" sums them."""
    ds = load_corpus(corpus, "valid")
    out: dict[str, list[int]] = {}
    for start in range(0, len(ds), batch_size):
        batch = ds.select(range(start, min(start + batch_size, len(ds))))
        heard = readings(assistant, [audio_array(item["audio"]) for item in batch])
        for item, text in zip(batch, heard):
            errors, words = word_errors(item["transcript"], text)
            for key in (item["source"], "all"):
                row = out.setdefault(key, [0, 0, 0])
                row[0] += 1; row[1] += errors; row[2] += words
    return {k: tuple(v) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    from diva.assistants.registry import load_assistant
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", required=True)
    p.add_argument("--assistant", action="append", required=True)
    p.add_argument("--checkpoint", action="append", default=[], metavar="NAME=FOLDER")
    p.add_argument("--llm-beam", action="append", default=[])
    p.add_argument("--out", default="research/results/words-select.csv")
    args = p.parse_args(argv)
    register_checkpoints(args.checkpoint, args.llm_beam)
    out = Path(args.out)
    new = not out.exists()
    with out.open("a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["assistant", "corpus", "source", "clips", "wer"])
        for name in args.assistant:
            for source, (clips, errors, words) in sorted(corpus_wer(load_assistant(name), args.corpus).items()):
                wer = round(100 * errors / max(1, words), 1)
                writer.writerow([name, args.corpus, source, clips, wer])
                print(f"{name:32s} {source:48s} {clips:4d} clips  WER {wer:5.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
