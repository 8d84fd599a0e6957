"""How good must the connector be? The frozen LLM's answers to the spoken-QA questions when the
virtual tokens are the transcript's own embeddings (the token-alignment loss at zero), degraded
on purpose: random noise of a given L2 size per token, or shrunk toward the mean embedding (what
an L2 regression does where it is unsure of the word).

    python -m research.oracle --noise 0,1,2 --shrink 0.3,0.6

Layout as in training: the last N of the Q virtual tokens carry the N transcript tokens, the
other Q - N slots hold zeros. Scores compare with the LLM's reply to the transcript itself.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

QUESTIONS = Path(__file__).resolve().parents[1] / "eval" / "data" / "spoken_qa.jsonl"


def oracle_virtual_tokens(diva, question: str, noise: float = 0.0, shrink: float = 0.0,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """(Q, d_llm): zeros, then the transcript's embeddings (degraded) in the last N slots."""
    table = diva.llm.get_input_embeddings().weight.detach().float()
    ids = diva.layout.transcript_ids(question)[:diva.config.n_queries]
    words = table[ids]
    if shrink:
        words = (1 - shrink) * words + shrink * table.mean(0)
    if noise:
        direction = torch.randn(words.shape, generator=generator)
        words = words + noise * direction / direction.norm(dim=-1, keepdim=True)
    virtual = torch.zeros(diva.config.n_queries, table.shape[1])
    virtual[len(virtual) - len(ids):] = words
    return virtual.to(diva.device, diva.query_tokens.dtype)


@torch.no_grad()
def greedy(diva, embeds, mask, max_new_tokens: int) -> list[str]:
    from diva.reply import TokenClock
    from diva.generation import generate_ids
    ids = generate_ids(diva.llm, diva.tokenizer, {"inputs_embeds": embeds, "attention_mask": mask},
                       max_new_tokens, TokenClock())
    return [diva.tokenizer.decode(row, skip_special_tokens=True) for row in ids]


def score(diva, items: list[dict], noise: float, shrink: float, max_new_tokens: int = 32) -> dict:
    from eval.metrics import contains_answer, first_token_agreement, identical
    questions = [it["question"] for it in items]
    generator = torch.Generator().manual_seed(0)
    virtual = torch.stack([oracle_virtual_tokens(diva, q, noise, shrink, generator) for q in questions])
    replies = greedy(diva, *diva.audio_inputs(virtual), max_new_tokens)
    reference = greedy(diva, *diva.text_inputs(questions), max_new_tokens)
    tokenize = diva.tokenizer.tokenize
    n = len(items)
    return {"noise": noise, "shrink": shrink,
            "accuracy": 100 * sum(contains_answer(r, it["answers"]) for r, it in zip(replies, items)) / n,
            "identical": 100 * sum(identical(r, t) for r, t in zip(replies, reference)) / n,
            "first_token": 100 * sum(first_token_agreement(r, t, tokenize) for r, t in zip(replies, reference)) / n,
            "example": replies[0]}


def main(argv=None) -> None:
    from diva.model import DiVA, DivaConfig
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--noise", default="0", help="comma-separated L2 noise sizes per token")
    p.add_argument("--shrink", default="", help="comma-separated shrink factors toward the mean embedding")
    p.add_argument("--llm", default="smollm2-135m-instruct")
    p.add_argument("--encoder", default="whisper-tiny.en")
    p.add_argument("--n-queries", type=int, default=32)
    p.add_argument("--limit", type=int, default=None)
    args = p.parse_args(argv)
    diva = DiVA.from_config(DivaConfig(args.encoder, args.llm, args.n_queries))
    items = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()][:args.limit]
    settings = [(float(x), 0.0) for x in args.noise.split(",") if x] + \
               [(0.0, float(x)) for x in args.shrink.split(",") if x]
    print(f"{len(items)} spoken-QA questions, {args.n_queries} virtual tokens, zeros in the free slots")
    print("| noise (L2 per token) | shrink to mean | accuracy % | identical to text reply % | first token % |")
    print("|---|---|---|---|---|")
    for noise, shrink in settings:
        r = score(diva, items, noise, shrink)
        print(f"| {noise:g} | {shrink:g} | {r['accuracy']:.1f} | {r['identical']:.1f} | {r['first_token']:.1f} |",
              flush=True)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
