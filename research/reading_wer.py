"""WER of what each assistant heard on the spoken-QA sets' clips (the cascade's transcript, DiVA's
bridge reading) against the spoken question, after Whisper's English normaliser: the "WER of the
reading" column of the held-out table in `results/train/README.md`. Also the share of the
questions' rare words found in the reading ("rare": split into two or more tokens by Whisper's
tokenizer once normalised, e.g. "hafnium", "yemen"; common words such as "capital" are one token):
a reading can match Whisper's WER and still lose the one word the answer depends on.

    python -m research.reading_wer --task spoken-qa-unheard,spoken-qa,spoken-qa-select \
        --assistant cascade-mini,cascade-mini-rescored,diva-mini-whisper,diva-mini-whisper-beam \
        [--checkpoint NAME=FOLDER] [--llm-beam NAME] [--out research/results/eval/reading-wer.csv]
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

from transformers import WhisperTokenizer

from diva.assets import resolve
from diva.assistants.registry import load_assistant
from eval.loaders import audio_array
from eval.metrics import asr_words, word_errors
from eval.reading import readings
from eval.run import register_checkpoints
from eval.tasks import get_task


def rare_words(text: str, tokenizer) -> list[str]:
    return [w for w in asr_words(text).split() if len(tokenizer.encode(" " + w, add_special_tokens=False)) > 1]


def reading_wer(assistant, items, tokenizer, batch_size: int = 16) -> tuple[int, int, int, int, int]:
    """(clips, word errors, reference words, rare reference words, rare words found) over the items."""
    errors = words = rare = found = 0
    for start in range(0, len(items), batch_size):
        part = items[start:start + batch_size]
        heard = readings(assistant, [audio_array(item.audio) for item in part])
        if heard is None:
            raise SystemExit(f"{assistant.name}: no reading to score")
        for item, text in zip(part, heard):
            e, n = word_errors(item.transcript, text or "")
            errors += e
            words += n
            wanted, heard_words = rare_words(item.transcript, tokenizer), set(asr_words(text or "").split())
            rare += len(wanted)
            found += sum(w in heard_words for w in wanted)
    return len(items), errors, words, rare, found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", type=lambda s: s.split(","), default=["spoken-qa-unheard", "spoken-qa", "spoken-qa-select"])
    p.add_argument("--assistant", type=lambda s: s.split(","), required=True)
    p.add_argument("--checkpoint", action="append", default=[], metavar="NAME=FOLDER")
    p.add_argument("--llm-beam", action="append", default=[])
    p.add_argument("--out", default="research/results/eval/reading-wer.csv")
    args = p.parse_args(argv)
    register_checkpoints(args.checkpoint, args.llm_beam)
    items = {task: get_task(task).load() for task in args.task}
    tokenizer = WhisperTokenizer.from_pretrained(resolve("whisper-tiny.en"))
    out = Path(args.out)
    new = not out.exists()
    with out.open("a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["assistant", "task", "clips", "wer", "rare_words", "rare_found"])
        for name in args.assistant:
            assistant = load_assistant(name)
            for task, task_items in items.items():
                clips, errors, words, rare, found = reading_wer(assistant, task_items, tokenizer)
                wer, share = round(100 * errors / max(1, words), 1), round(100 * found / max(1, rare), 1)
                writer.writerow([name, task, clips, wer, rare, share])
                f.flush()
                print(f"{name:28s} {task:20s} {clips:4d} clips  WER {wer:5.1f}  rare words found {share:5.1f}"
                      f" of {rare}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
