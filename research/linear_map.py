"""Why the vocabulary bridge: can a LINEAR map carry Whisper's tokens into the LLM's embeddings?

    python -m research.linear_map [--encoder whisper-tiny.en --llm smollm2-135m-instruct --held-out 5000]

Fits a least-squares (ridge) linear map from Whisper's token table to the LLM's input embeddings
over the tokens both vocabularies spell the same, and reports on held-out shared tokens how often
the mapped Whisper row's nearest LLM embedding is the same token (P@1). A linear projection
can only carry a word it was not trained on if this is high.
"""
from __future__ import annotations

import argparse
import os

import torch


def shared_token_pairs(whisper_tokenizer, llm_tokenizer, whisper_rows: int) -> torch.Tensor:
    """(M, 2) [whisper id, llm id] for the non-special tokens spelled the same in both."""
    from diva.bridge import same_spelled_tokens
    shared, _ = same_spelled_tokens(whisper_tokenizer, llm_tokenizer, whisper_rows)
    return torch.tensor(shared, dtype=torch.long)


def linear_map_p_at_1(whisper_table, llm_table, pairs, held_out: int, ridge: float = 1e-2, seed: int = 0) -> float:
    """Fit on all but `held_out` random pairs, return P@1 of the nearest LLM embedding on those."""
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(seed))
    test, fit = pairs[order[:held_out]], pairs[order[held_out:]]
    with_bias = lambda x: torch.cat([x, torch.ones(len(x), 1)], 1)  # noqa: E731
    x, y = with_bias(whisper_table[fit[:, 0]].float()), llm_table[fit[:, 1]].float()
    weights = torch.linalg.solve(x.T @ x + ridge * torch.eye(x.shape[1]), x.T @ y)
    mapped = with_bias(whisper_table[test[:, 0]].float()) @ weights
    table = llm_table.float()
    nearest = ((table * table).sum(-1) - 2 * mapped @ table.T).argmin(-1)
    return float((nearest == test[:, 1]).float().mean())


def main(argv=None) -> None:
    from diva.models import load_llm, load_whisper
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--encoder", default="whisper-tiny.en")
    p.add_argument("--llm", default="smollm2-135m-instruct")
    p.add_argument("--held-out", type=int, default=5000)
    p.add_argument("--ridge", type=float, default=1e-2)
    args = p.parse_args(argv)
    whisper, _, whisper_tok = load_whisper(args.encoder)
    llm, llm_tok = load_llm(args.llm)
    w_table = whisper.get_decoder().embed_tokens.weight.detach()
    l_table = llm.get_input_embeddings().weight.detach()
    pairs = shared_token_pairs(whisper_tok, llm_tok, w_table.shape[0])
    score = linear_map_p_at_1(w_table, l_table, pairs, args.held_out, args.ridge)
    print(f"{len(pairs)} shared tokens; linear map P@1 on {args.held_out} held out: {score:.3f}")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
