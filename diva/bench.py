"""Inference benchmark: `python -m diva.bench` (or `make bench`) -> results/bench/inference.csv.

Same process, same encoder and LLM for every assistant: DiVA (an untrained connector is fine
for speed; diva-mini-whisper-beam adds the LLM-rescored CTC reading's cost), the Whisper -> LLM
cascade, and the bare LLM on transcripts. For each, batch 1
(streamed, one request at a time) and batch 8 (one batched generate):
time to first token, decode tokens/s, throughput, real-time factor, peak RSS. Every reply is
exactly --max-new-tokens long (min_new_tokens = max_new_tokens), so decode speeds and
throughputs compare like with like.
"""
from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from diva.assistants import load_assistant
from diva.audio import SAMPLE_RATE
from diva.generation import GenerationOptions
from diva.models import quiet_transformers
from diva.voices import synthesize

QUESTIONS = [
    "What is the capital of France?", "How many legs does a spider have?",
    "Who wrote the play Romeo and Juliet?", "What is the largest planet in our solar system?",
    "Name three primary colors.", "What is the boiling point of water in Celsius?",
    "Why is the sky blue?", "Give me a tip for sleeping better.",
]
OUT = Path(__file__).resolve().parents[1] / "results" / "bench"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


UNTRAINED = "diva-mini-untrained"


def bench_assistant(name: str):
    """A registered assistant, or UNTRAINED: diva-mini's architecture with a fresh connector
    (the speed of DiVA itself, without a checkpoint)."""
    if name != UNTRAINED:
        return load_assistant(name)
    from diva.assistants.diva import DivaAssistant
    from diva.assistants.registry import MINI_ENCODER, MINI_LLM
    from diva.model import DiVA, DivaConfig
    return DivaAssistant(name, DiVA.from_config(DivaConfig(MINI_ENCODER, MINI_LLM, n_queries=32, encoder_seconds=10)))


def run_assistant(name: str, audios, transcripts, max_new_tokens: int) -> list[dict]:
    assistant = bench_assistant(name)
    text_only = not assistant.accepts_audio
    inputs = dict(transcripts=transcripts) if text_only else dict(audios=audios)
    seconds_of_audio = sum(a.size for a in audios) / SAMPLE_RATE
    assistant.generate(**{k: v[:1] for k, v in inputs.items()}, max_new_tokens=4)  # warm-up
    options = GenerationOptions(max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens)

    # batch 1: streamed one at a time, as a user sees it
    replies, start = [], time.perf_counter()
    for i in range(len(audios)):
        stream = (assistant.stream(transcript=transcripts[i], options=options) if text_only
                  else assistant.stream(audios[i], options=options))
        stream.text()
        replies.append(stream.reply)
    wall_1 = time.perf_counter() - start
    # batch 8: one batched call over the same requests
    start = time.perf_counter()
    batch = assistant.generate_replies(**inputs, options=options)
    wall_8 = time.perf_counter() - start

    rows = []
    for size, reps, wall in ((1, replies, wall_1), (len(audios), batch, wall_8)):
        ttfts = [r.ttft_s for r in reps if r.ttft_s is not None]
        speeds = [r.tokens_per_s for r in reps if r.tokens_per_s]
        tokens = sum(r.n_tokens for r in reps)
        rows.append({
            "assistant": name, "batch_size": size, "requests": len(reps), "generated_tokens": tokens,
            "ttft_s": sum(ttfts) / len(ttfts) if ttfts else None,
            "decode_tokens_per_s": sum(speeds) / len(speeds) if speeds else None,
            "throughput_tokens_per_s": tokens / wall,
            "real_time_factor": wall / seconds_of_audio,
            "peak_rss_mb": peak_rss_mb(),
        })
    return rows


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """The targets as ratios measured in this run."""
    def get(name, size, column):
        row = table[(table.assistant == name) & (table.batch_size == size)]
        return float(row[column].iloc[0])
    diva, cascade, text = UNTRAINED, "cascade-mini", "text-mini"
    big = int(table.batch_size.max())
    checks = [
        ("DiVA decode tokens/s / bare LLM decode tokens/s (equal reply lengths)",
         get(diva, 1, "decode_tokens_per_s") / get(text, 1, "decode_tokens_per_s"), ">= 0.95"),
        ("DiVA TTFT / cascade TTFT", get(diva, 1, "ttft_s") / get(cascade, 1, "ttft_s"), "<= 1.0"),
        (f"DiVA batch-{big} / batch-1 throughput", get(diva, big, "throughput_tokens_per_s")
         / get(diva, 1, "throughput_tokens_per_s"), ">= 3.0"),
        (f"cascade batch-{big} / batch-1 throughput", get(cascade, big, "throughput_tokens_per_s")
         / get(cascade, 1, "throughput_tokens_per_s"), ">= 3.0"),
        ("peak RSS of the process, GB", table.peak_rss_mb.max() / 1024, "< 3.0"),
    ]
    if "diva-mini-whisper-beam" in set(table.assistant):  # the LLM-rescored reading's cost (diva/bridge.py)
        checks.append(("DiVA with the LLM-rescored CTC beam TTFT / cascade TTFT",
                       get("diva-mini-whisper-beam", 1, "ttft_s") / get(cascade, 1, "ttft_s"), "(measured)"))
    return pd.DataFrame(checks, columns=["measure", "value", "target"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assistants", default=f"text-mini,cascade-mini,{UNTRAINED},diva-mini-whisper-beam")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--voice", default="piper:joe")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    quiet_transformers()
    torch.manual_seed(0)
    audios = [synthesize(q, args.voice) for q in tqdm(QUESTIONS, desc="synthesising questions")]
    rows = []
    for name in tqdm(args.assistants.split(","), desc="assistants"):
        rows += run_assistant(name, audios, QUESTIONS, args.max_new_tokens)
    table = pd.DataFrame(rows)
    table.insert(0, "threads", torch.get_num_threads())
    table.insert(0, "cpu_count", os.cpu_count())
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "inference.csv", index=False, float_format="%.4f")
    ratios = summarise(table)
    ratios.to_csv(args.out / "inference_ratios.csv", index=False, float_format="%.3f")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.drop(columns=["cpu_count", "threads"]).round(3).to_string(index=False))
        print()
        print(ratios.round(3).to_string(index=False))
    print(f"\nwrote {args.out / 'inference.csv'} and {args.out / 'inference_ratios.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
