"""`python -m eval.run ... --dry-run`: the tasks, items, assistants and memory of a run, before a GPU bill.

Nothing is loaded, synthesised or downloaded: item counts come from the committed files, a
--data-dir's parquet metadata or the Hugging Face cache; models are sized from their configs as in
train.plan (a folder, the cache, or the built-in table of the paper's two models, said so).
Memory per process: the weights at 2 bytes (bf16 on GPUs) and a rough KV cache for one batch.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from train.plan import GIB, Resolved, model_config

REPO_ROOT = Path(__file__).resolve().parents[1]
# released DiVA checkpoints whose config.json is not at hand offline: what they are built from
BUILTIN_CHECKPOINTS = {"WillHeld/DiVA-llama-3-v0-8b": dict(
    reference_encoder="openai/whisper-large-v3", reference_decoder="meta-llama/Meta-Llama-3-8B-Instruct",
    n_queries=448)}
PROMPT_POSITIONS = 128  # prompt, transcript and template tokens, roughly


def item_count(task, args) -> str:
    if args.data_dir and (Path(args.data_dir) / task.name).is_dir():
        import pyarrow.parquet as pq
        rows = sum(pq.ParquetFile(p).metadata.num_rows for p in (Path(args.data_dir) / task.name).rglob("*.parquet"))
        return f"{rows} rows in {Path(args.data_dir) / task.name}"
    local = REPO_ROOT / task.source
    if local.is_file():
        lines = sum(1 for line in local.open(encoding="utf-8") if line.strip())
        return f"{lines} lines in {task.source}"
    hub_id, _, split = task.source.partition(":")
    try:
        from datasets import load_dataset_builder
        info = load_dataset_builder(hub_id).info
        return f"{info.splits[split].num_examples} in the Hugging Face cache ({task.source})"
    except Exception as exc:
        return f"{task.source}: NOT RESOLVED offline ({type(exc).__name__}); needs the network or --data-dir"


def components(spec) -> tuple[list[tuple[str, Resolved]], int, str]:
    """The models an assistant loads (role, resolved config), its query count, and a note."""
    if spec.backend == "text":
        return [("llm", model_config(spec.llm))], 0, ""
    if spec.backend == "cascade":
        return [("asr", model_config(spec.encoder)), ("llm", model_config(spec.llm))], 0, ""
    if spec.backend == "diva":
        config, note = Path(spec.checkpoint) / "config.json", f"checkpoint {spec.checkpoint}: local folder"
        if config.is_file():
            raw = json.loads(config.read_text())
        elif spec.checkpoint in BUILTIN_CHECKPOINTS:
            raw, note = BUILTIN_CHECKPOINTS[spec.checkpoint], \
                f"checkpoint {spec.checkpoint}: NOT FETCHED (offline): built-in description"
        else:
            return [("checkpoint", Resolved(spec.checkpoint, None, "not resolvable offline"))], 0, ""
        return [("encoder", model_config(raw["reference_encoder"])),
                ("llm", model_config(raw["reference_decoder"]))], raw.get("n_queries", 448), note
    return [("model", model_config(spec.checkpoint))], 0, ""


def weights(role: str, config, n_queries: int) -> int:
    """Parameters on the meta device: Whisper's encoder (+ the connector's decoder copy for DiVA)
    or the whole ASR model, or the whole LLM."""
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, WhisperForConditionalGeneration
    with torch.device("meta"):
        if role in ("encoder", "asr"):
            whisper = WhisperForConditionalGeneration(config)
            return sum(p.numel() for p in whisper.parameters()) if role == "asr" else \
                sum(p.numel() for p in whisper.model.parameters()) + n_queries * config.d_model
        model = AutoModelForCausalLM.from_config(config) if role == "llm" else AutoModel.from_config(config)
    return sum(p.numel() for p in model.parameters())


def kv_cache(config, batch: int, positions: int) -> int:
    text = getattr(config, "text_config", config)
    head_dim = text.hidden_size // text.num_attention_heads
    kv = getattr(text, "num_key_value_heads", text.num_attention_heads) * head_dim
    return batch * positions * text.num_hidden_layers * 2 * kv * 2


def print_eval_plan(args, tasks: list) -> int:
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    from diva.assistants.registry import ASSISTANTS, AssistantSpec
    print(f"eval plan: protocol {args.protocol}, {processes} process(es), batch size {args.batch_size}, "
          f"limit {args.limit}")
    longest = max((getattr(t, "max_new_tokens", 64) for t in tasks), default=64)
    for task in tasks:
        print(f"  task {task.name}: {item_count(task, args)}")
    ok = True
    for name in args.assistant:
        spec = ASSISTANTS.get(name) or AssistantSpec("diva", checkpoint=name)
        parts, n_queries, note = components(spec)
        print(f"  assistant {name} ({spec.backend})" + (f": {note}" if note else ""))
        total = kv = 0
        for role, r in parts:
            print(f"    {role}: {r.name}: {r.source}")
            if r.config is None:
                ok = False
                continue
            total += weights(role, r.config, n_queries) * 2
            if role in ("llm", "model"):
                kv = kv_cache(r.config, args.batch_size, n_queries + PROMPT_POSITIONS + longest)
        if all(r.config is not None for _, r in parts):
            print(f"    memory per process (bf16): weights {total / GIB:.2f} GiB + KV cache ~{kv / GIB:.2f} GiB "
                  f"at batch {args.batch_size}")
    print("dry run: nothing was loaded, answered or downloaded")
    return 0 if ok else 1
