"""How often the tokens of some texts occur in a corpus' training transcripts (no model needed).

    python -m research.coverage --config train/configs/mini-dense-align.yaml --texts eval/data/spoken_qa.jsonl

The probe (`train.probe`) shows that a token comes through the connector only once it has been
seen ~100 times in training; this tells how much of an evaluation set's wording a corpus covers
that well, per frequency bucket, and how many items hinge on a rarely seen token.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter

from research.probe import FREQUENCY_BUCKETS, frequency_bucket, token_counts


def coverage(layout, train_transcripts: list[str], texts: list[str]) -> dict:
    """Share of the texts' tokens per bucket, and items counted by their rarest token's bucket."""
    counts = token_counts(layout.transcript_ids, train_transcripts)
    tokens, items = Counter(), Counter()
    for text in texts:
        ids = layout.transcript_ids(text)
        if not ids:
            continue
        tokens.update(frequency_bucket(counts[t]) for t in ids)
        items[frequency_bucket(min(counts[t] for t in ids))] += 1
    total = max(sum(tokens.values()), 1)
    return {"tokens": {name: tokens[name] / total for _, name in FREQUENCY_BUCKETS},
            "items_by_rarest_token": {name: items[name] for _, name in FREQUENCY_BUCKETS},
            "distinct_training_tokens": len(counts), "training_tokens": sum(counts.values())}


def main(argv=None) -> None:
    from diva.models import load_llm
    from diva.prompt import PromptLayout
    from train.config import load_config
    from train.distill import open_split
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="train/configs/mini.yaml", help="names the corpus and n_train")
    p.add_argument("--texts", default="eval/data/spoken_qa.jsonl", help="JSON lines with a question/text field")
    args = p.parse_args(argv)
    cfg = load_config(args.config)
    rows = [json.loads(line) for line in open(args.texts) if line.strip()]
    texts = [r.get("question") or r.get("text") or r.get("transcript") for r in rows]
    _, tokenizer = load_llm(cfg["model"]["llm"])
    out = coverage(PromptLayout(tokenizer), list(open_split(cfg, "train")["transcript"]), texts)
    print(f"{args.config}: {out['training_tokens']} training tokens, {out['distinct_training_tokens']} distinct")
    print("| times seen in training | share of the texts' tokens | items whose rarest token is here |")
    print("|---|---|---|")
    for _, name in FREQUENCY_BUCKETS:
        print(f"| {name} | {out['tokens'][name]:.0%} | {out['items_by_rarest_token'][name]} |")


if __name__ == "__main__":
    import os
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    main()
