"""What the connector says: each virtual token read back as its nearest LLM token embedding.

    python -m train.probe results/checkpoints/diva-mini --config train/configs/mini.yaml --n 96

On held-out clips (the corpus' VALID voices) it prints transcripts next to the nearest-token
reading of their virtual tokens, and reports the share of aligned slots (the last N, as in the
token-alignment loss) whose nearest token is the transcript's token: a direct measure of whether
the words come through the connector.
"""
from __future__ import annotations

import argparse
import os

import torch


def nearest_tokens(diva, virtual: torch.Tensor) -> torch.Tensor:
    """(..., Q, d_llm) virtual tokens -> (..., Q) ids of the nearest (L2) LLM input embeddings."""
    table = diva.llm.get_input_embeddings().weight.float()
    v = virtual.float()
    distance = (table * table).sum(-1) - 2 * v @ table.T  # ||v - e||^2 up to ||v||^2
    return distance.argmin(-1)


def aligned_hits(diva, virtual: torch.Tensor, transcript: str) -> tuple[int, int]:
    """How many of the transcript's tokens (up to Q) the last virtual tokens read back exactly."""
    ids = diva.layout.transcript_ids(transcript)[:virtual.shape[0]]
    if not ids:
        return 0, 0
    read = nearest_tokens(diva, virtual[-len(ids):]).tolist()
    return sum(a == b for a, b in zip(read, ids)), len(ids)


def reading(diva, virtual: torch.Tensor) -> str:
    """The virtual tokens as text, one nearest token each, separated by '|'."""
    return "|".join(diva.tokenizer.decode([i]) for i in nearest_tokens(diva, virtual).tolist())


@torch.no_grad()
def probe(diva, audios, transcripts, show: int = 5, batch: int = 8) -> float:
    hits = total = 0
    for start in range(0, len(audios), batch):
        virtual = diva.speech_tokens(audios[start:start + batch])
        for i, (v, text) in enumerate(zip(virtual, transcripts[start:start + batch])):
            h, n = aligned_hits(diva, v, text)
            hits, total = hits + h, total + n
            if start + i < show:
                print(f"transcript: {text}\n   reads: {reading(diva, v)}\n")
    return hits / max(total, 1)


def main(argv=None) -> None:
    from diva.checkpoint import load_diva
    from train.config import load_config
    from train.data import audio_array, corpus_dir, corpus_settings, load_corpus
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", help="a DiVA connector folder (e.g. results/checkpoints/diva-mini)")
    p.add_argument("--config", default="train/configs/mini.yaml", help="names the corpus")
    p.add_argument("--split", default="valid")
    p.add_argument("--n", type=int, default=96, help="clips to read")
    p.add_argument("--show", type=int, default=5, help="readings to print")
    args = p.parse_args(argv)
    diva = load_diva(args.checkpoint)
    data = load_corpus(corpus_dir(corpus_settings(load_config(args.config))), args.split)
    items = data.select(range(min(args.n, len(data))))
    accuracy = probe(diva, [audio_array(a) for a in items["audio"]], list(items["transcript"]), args.show)
    print(f"aligned-slot token accuracy on {len(items)} {args.split} clips: {accuracy:.3f}")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    main()
