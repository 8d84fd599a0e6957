"""What the connector says: each virtual token read back as its nearest LLM token embedding.

    python -m train.probe results/checkpoints/diva-mini --config train/configs/mini.yaml --n 96

On held-out clips (the corpus' VALID voices) it prints transcripts next to the nearest-token
reading of their virtual tokens, and reports the share of aligned slots (the last N, as in the
token-alignment loss) whose nearest token is the transcript's token: a direct measure of whether
the words come through the connector. Two more readings separate "which word" from "which slot":
recall anywhere (the transcript's tokens found in any of the Q slots, each reading used once), and
both again by how often the token occurs in the training transcripts (is it the rare content words
that fail, and would more data help?).
"""
from __future__ import annotations

import argparse
import os
from collections import Counter

import torch


def nearest_tokens(diva, virtual: torch.Tensor) -> torch.Tensor:
    """(..., Q, d_llm) virtual tokens -> (..., Q) ids of the nearest (L2) LLM input embeddings."""
    table = diva.llm.get_input_embeddings().weight.float()
    v = virtual.float()
    distance = (table * table).sum(-1) - 2 * v @ table.T  # ||v - e||^2 up to ||v||^2
    return distance.argmin(-1)


FREQUENCY_BUCKETS = ((1000, "1000+"), (100, "100-999"), (10, "10-99"), (1, "1-9"), (0, "unseen"))


def frequency_bucket(count: int) -> str:
    """How often a token occurs in the training transcripts, as a bucket name."""
    return next(name for floor, name in FREQUENCY_BUCKETS if count >= floor)


def read_back(diva, virtual: torch.Tensor, transcript: str, train_counts: Counter | None = None) -> Counter:
    """Counts for one clip: tokens / exact (right token in its aligned slot) / anywhere (in any
    slot, each slot's reading used once); with `train_counts`, also per frequency bucket
    ("10-99:exact", ...)."""
    ids = diva.layout.transcript_ids(transcript)[:virtual.shape[0]]
    read = nearest_tokens(diva, virtual).tolist()
    aligned = read[len(read) - len(ids):] if ids else []
    pool = Counter(read)
    counts = Counter()
    for token, got in zip(ids, aligned):
        found = pool[token] > 0
        pool[token] -= found
        prefixes = [""] + ([frequency_bucket(train_counts[token]) + ":"] if train_counts is not None else [])
        for prefix in prefixes:
            counts[prefix + "tokens"] += 1
            counts[prefix + "exact"] += token == got
            counts[prefix + "anywhere"] += found
    return counts


def token_counts(layout, transcripts: list[str]) -> Counter:
    """How often each LLM token occurs in these transcripts (layout: diva.prompt.PromptLayout)."""
    return Counter(t for text in transcripts for t in layout.transcript_ids(text))


def reading(diva, virtual: torch.Tensor) -> str:
    """The virtual tokens as text, one nearest token each, separated by '|'."""
    return "|".join(diva.tokenizer.decode([i]) for i in nearest_tokens(diva, virtual).tolist())


@torch.no_grad()
def probe(diva, audios, transcripts, show: int = 5, batch: int = 8, train_counts: Counter | None = None) -> Counter:
    """Summed read_back counts over all clips (prints the first `show` readings)."""
    counts = Counter()
    for start in range(0, len(audios), batch):
        virtual = diva.speech_tokens(audios[start:start + batch])
        for i, (v, text) in enumerate(zip(virtual, transcripts[start:start + batch])):
            counts += read_back(diva, v, text, train_counts)
            if start + i < show:
                print(f"transcript: {text}\n   reads: {reading(diva, v)}\n")
    return counts


def report(counts: Counter) -> str:
    """A markdown table: slot accuracy and recall anywhere, overall and per frequency bucket."""
    lines = ["| tokens seen in training | share of tokens | aligned-slot accuracy | recall anywhere |",
             "|---|---|---|---|"]
    total = max(counts["tokens"], 1)
    for prefix in [""] + [name + ":" for _, name in FREQUENCY_BUCKETS]:
        n = counts[prefix + "tokens"]
        if n:
            lines.append(f"| {prefix[:-1] or 'all'} | {n / total:.0%} | {counts[prefix + 'exact'] / n:.3f} | "
                         f"{counts[prefix + 'anywhere'] / n:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    from diva.checkpoint import load_diva
    from train.config import load_config
    from train.data import audio_array
    from train.distill import open_split
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", help="a DiVA connector folder (e.g. results/checkpoints/diva-mini)")
    p.add_argument("--config", default="train/configs/mini.yaml",
                   help="names the corpus; its first n_train transcripts give the token frequencies")
    p.add_argument("--split", default="valid")
    p.add_argument("--n", type=int, default=96, help="clips to read")
    p.add_argument("--show", type=int, default=5, help="readings to print")
    args = p.parse_args(argv)
    diva = load_diva(args.checkpoint)
    cfg = load_config(args.config)
    data = open_split(cfg, args.split)
    train_counts = token_counts(diva.layout, list(open_split(cfg, "train")["transcript"]))
    items = data.select(range(min(args.n, len(data))))
    counts = probe(diva, [audio_array(a) for a in items["audio"]], list(items["transcript"]), args.show,
                   train_counts=train_counts)
    print(f"{len(items)} {args.split} clips, {counts['tokens']} transcript tokens:\n{report(counts)}")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    main()
