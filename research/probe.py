"""What the connector says: each virtual token read back as its nearest LLM token embedding.

    python -m research.probe checkpoints/diva-mini --config train/configs/diva-mini.yaml --n 96

On held-out clips (the corpus' VALID voices) it prints transcripts next to the nearest-token
reading of their virtual tokens, and reports the share of aligned slots (the last N, as in the
token-alignment loss) whose nearest token is the transcript's token: a direct measure of whether
the words come through the connector. Two more readings separate "which word" from "which slot":
recall anywhere (the transcript's tokens found in any of the Q slots, each reading used once), and
both again by how often the token occurs in the training transcripts (is it the rare content words
that fail, and would more data help?).

`--head whisper` reads the connector's own output (before the projection) through Whisper's
tied output head instead, against the transcript's Whisper tokens: does the decoder copy still
know Whisper's words (the `train.align_whisper_weight` ablation trains exactly this reading)? It
also reads the slots as a transcript (blanks dropped, or CTC-collapsed) and reports its word error
rate; `--task spoken-qa-select --asr` does so on an evaluation task's clips, beside the cascade's
own Whisper transcripts, and `--beam` adds the LLM-rescored CTC reading (diva/ctc_beam.py).
"""
from __future__ import annotations

import argparse
import os
from collections import Counter

import torch

from diva.bridge import repeats_previous
from eval.metrics import exact_transcript_share, word_error_rate


def nearest_tokens(diva, virtual: torch.Tensor) -> torch.Tensor:
    """(..., Q, d_llm) virtual tokens -> (..., Q) ids of the nearest (L2) LLM input embeddings."""
    table = diva.llm.get_input_embeddings().weight.float()
    v = virtual.float()
    distance = (table * table).sum(-1) - 2 * v @ table.T  # ||v - e||^2 up to ||v||^2
    return distance.argmin(-1)


def whisper_head_tokens(diva, states: torch.Tensor) -> torch.Tensor:
    """(..., Q, d_whisper) connector states -> (..., Q) ids of Whisper's own argmax reading."""
    return (states.float() @ diva.connector.embed_tokens.weight.float().T).argmax(-1)


FREQUENCY_BUCKETS = ((1000, "1000+"), (100, "100-999"), (10, "10-99"), (1, "1-9"), (0, "unseen"))


def frequency_bucket(count: int) -> str:
    """How often a token occurs in the training transcripts, as a bucket name."""
    return next(name for floor, name in FREQUENCY_BUCKETS if count >= floor)


def read_back(diva, virtual: torch.Tensor, transcript: str, train_counts: Counter | None = None) -> Counter:
    """Counts for one clip read through the LLM's embeddings (see compare_reading)."""
    return compare_reading(diva.layout.transcript_ids(transcript), nearest_tokens(diva, virtual).tolist(),
                           train_counts)


def compare_reading(ids: list[int], read: list[int], train_counts: Counter | None = None) -> Counter:
    """Counts for one clip's transcript ids against its Q slot readings: tokens / exact (right
    token in its aligned slot, the last N) / anywhere (in any slot, each slot's reading used
    once); with `train_counts`, also per frequency bucket ("10-99:exact", ...)."""
    ids = ids[:len(read)]
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


def token_counts(tokenize, transcripts: list[str]) -> Counter:
    """How often each token occurs in these transcripts (tokenize: text -> ids)."""
    return Counter(t for text in transcripts for t in tokenize(text))


class Reader:
    """How a probe reads the slots: through the LLM's input embeddings (what the LLM receives)
    or through Whisper's output head (what the decoder copy itself says)."""

    def __init__(self, diva, head: str = "llm"):
        if head not in ("llm", "whisper"):
            raise ValueError(f"head must be llm or whisper, got {head!r}")
        self.diva, self.head = diva, head
        if head == "whisper":
            self.tokenizer = diva.whisper_tokenizer
            self.tokenize = lambda text: self.tokenizer(" " + text.strip(), add_special_tokens=False).input_ids
        else:
            self.tokenizer, self.tokenize = diva.tokenizer, diva.layout.transcript_ids

    def read(self, audios) -> torch.Tensor:
        """(B, Q) token ids, one per slot."""
        diva = self.diva
        if self.head == "llm":
            return nearest_tokens(diva, diva.project(diva.speech_states(audios))[0])
        return whisper_head_tokens(diva, diva.speech_states(audios))


def slot_transcript(tokenizer, ids: list[int], collapse: bool) -> str:
    """Whisper-head slot readings as text: special tokens (the blank) left out and, with
    `collapse`, the bridge's CTC reading (a repeat of the previous slot's token left out too)."""
    if collapse:
        ids = [t for t, repeat in zip(ids, repeats_previous(torch.tensor(ids)).tolist()) if not repeat]
    return tokenizer.decode(ids, skip_special_tokens=True).strip()


@torch.no_grad()
def probe(diva, audios, transcripts, show: int = 5, batch: int = 8, train_counts: Counter | None = None,
          head: str = "llm") -> Counter:
    """Summed read-back counts over all clips (prints the first `show` readings)."""
    reader = Reader(diva, head)
    counts = Counter()
    readings = {"drop": [], "collapse": []} if head == "whisper" else {}
    for start in range(0, len(audios), batch):
        read = reader.read(audios[start:start + batch]).tolist()
        for i, (r, text) in enumerate(zip(read, transcripts[start:start + batch])):
            counts += compare_reading(reader.tokenize(text), r, train_counts)
            for mode, texts in readings.items():
                texts.append(slot_transcript(reader.tokenizer, r, mode == "collapse"))
            if start + i < show:
                slots = "|".join(reader.tokenizer.decode([t]) for t in r)
                print(f"transcript: {text}\n   reads: {slots}\n")
    for mode, texts in readings.items():  # the slots as a transcript: blanks dropped / CTC-collapsed
        counts[f"wer_{mode}"] = word_error_rate(transcripts, texts)
        counts[f"exact_{mode}"] = exact_transcript_share(transcripts, texts)
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
    p.add_argument("checkpoint", help="a DiVA connector folder (e.g. checkpoints/diva-mini)")
    p.add_argument("--config", default="train/configs/mini.yaml",
                   help="names the corpus; its first n_train transcripts give the token frequencies")
    p.add_argument("--split", default="valid")
    p.add_argument("--n", type=int, default=96, help="clips to read")
    p.add_argument("--show", type=int, default=5, help="readings to print")
    p.add_argument("--head", choices=["llm", "whisper"], default="llm",
                   help="read the virtual tokens as LLM embeddings, or the connector states through Whisper's head")
    p.add_argument("--task", default=None,
                   help="read an evaluation task's clips (e.g. spoken-qa-select) instead of a corpus split")
    p.add_argument("--asr", action="store_true",
                   help="also score the cascade's Whisper transcripts of the same clips (whisper head)")
    p.add_argument("--beam", action="store_true",
                   help="also score the LLM-rescored CTC reading (diva/ctc_beam.py, the checkpoint's beam settings)")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. corpus.n_train=4000")
    args = p.parse_intermixed_args(argv)
    diva = load_diva(args.checkpoint)
    cfg = load_config(args.config, args.overrides)
    train_counts = token_counts(Reader(diva, args.head).tokenize, list(open_split(cfg, "train")["transcript"]))
    if args.task:
        from eval.tasks import get_task
        items = get_task(args.task).load()[:args.n]
        audios, transcripts, where = [audio_array(it.audio) for it in items], [it.transcript for it in items], args.task
    else:
        data = open_split(cfg, args.split)
        items = data.select(range(min(args.n, len(data))))
        audios, transcripts, where = [audio_array(a) for a in items["audio"]], list(items["transcript"]), args.split
    counts = probe(diva, audios, transcripts, args.show, train_counts=train_counts, head=args.head)
    print(f"{len(audios)} {where} clips, {counts['tokens']} transcript tokens ({args.head} reading):\n"
          f"{report(counts)}")
    if args.head == "whisper":
        print(f"the slots as a transcript: WER {counts['wer_drop']:.3f} with blanks dropped, "
              f"{counts['wer_collapse']:.3f} CTC-collapsed; word for word right: {counts['exact_drop']:.1%} / "
              f"{counts['exact_collapse']:.1%}")
    if args.beam:
        from dataclasses import replace
        diva.options = replace(diva.options, bridge_decode="llm-beam")
        with torch.no_grad():
            picked = [q for i in range(0, len(audios), 16) for q in diva.reader.questions(
                diva.projection.head_logits(diva.speech_states(audios[i:i + 16])))]
        print(f"the LLM-rescored CTC reading: WER {word_error_rate(transcripts, picked):.3f}; "
              f"word for word right: {exact_transcript_share(transcripts, picked):.1%}")
    if args.asr:
        from diva.assistants import load_assistant
        cascade = load_assistant("cascade-mini")
        heard = [text for i in range(0, len(audios), 16) for text in cascade.transcribe(audios[i:i + 16])]
        print(f"cascade-mini's Whisper transcripts: WER {word_error_rate(transcripts, heard):.3f}; "
              f"word for word right: {exact_transcript_share(transcripts, heard):.1%}")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    main()
