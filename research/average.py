"""Average the connector weights of several checkpoints of one architecture (a "model soup").

    python -m research.average OUT CKPT [CKPT ...] [--weights 0.5,0.5]

Every checkpoint must name the same encoder, LLM, query count and projection; OUT takes the first
one's config.json (bridge settings included) and the weighted mean of every tensor.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors.torch import save_file

from diva.checkpoint import CheckpointError, read_checkpoint


def average_checkpoints(sources: list[str], out: str | Path, weights: list[float] | None = None) -> Path:
    if len(sources) < 2:
        raise ValueError("averaging needs at least two checkpoints")
    weights = weights or [1.0] * len(sources)
    if len(weights) != len(sources) or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"--weights: {len(sources)} non-negative numbers with a positive sum, got {weights}")
    loaded = [read_checkpoint(s) for s in sources]
    first_config, first_state, first_raw = loaded[0]
    for source, (config, state, _) in zip(sources[1:], loaded[1:]):
        for field in ("encoder", "llm", "n_queries", "projection"):
            if getattr(config, field) != getattr(first_config, field):
                raise CheckpointError(f"{source}: {field} is {getattr(config, field)!r}, "
                                      f"{sources[0]} has {getattr(first_config, field)!r}")
        if state.keys() != first_state.keys():
            raise CheckpointError(f"{source} holds other tensors than {sources[0]}")
    total = sum(weights)
    mean = {k: sum(w / total * s[k].double() for w, (_, s, _) in zip(weights, loaded)).to(v.dtype)
            for k, v in first_state.items()}
    if first_config.projection == "linear" and first_raw.get("projection_layout") != "out_in":
        first_raw = {**first_raw, "projection_layout": "out_in"}  # read_checkpoint gave nn.Linear orientation
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in mean.items()}, str(out / "model.safetensors"))
    raw = {**first_raw, "averaged_from": [str(s) for s in sources], "average_weights": weights}
    options = raw.pop("inference", None)
    (out / "config.json").write_text(json.dumps(raw, indent=2) + "\n")
    if options is not None:
        (out / "inference.json").write_text(json.dumps(options, indent=2) + "\n")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("sources", nargs="+")
    parser.add_argument("--weights", help="comma-separated, one per checkpoint (default: equal)")
    args = parser.parse_args(argv)
    weights = [float(w) for w in args.weights.split(",")] if args.weights else None
    print(average_checkpoints(args.sources, args.out, weights))


if __name__ == "__main__":
    main()
