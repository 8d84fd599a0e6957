"""`python -m train.distill --config C --dry-run`: what a run would do and need, before a GPU bill.

For each stage: the config checked, its corpus and models resolved without downloading anything
(a folder, the Hugging Face cache, or - for the two paper models only - a built-in copy of their
hub config.json, said so), and the plan: steps, examples, tokens, and memory per device for the
frozen and trained parts. Parameters are counted exactly on the meta device (no weights).
Memory: weights in the run's dtype (bf16 on GPUs, as diva.models loads them; fp32 with
train.precision fp32), the trained part's gradients and AdamW's two moments in the same dtype
(torch keeps them in the parameter's dtype), and activations from per-layer element counts.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

GIB = 1024 ** 3
DEVICES_GIB = {"80 GB (A100/H100)": 80 * 1e9 / GIB, "141 GB (H200)": 141 * 1e9 / GIB}
LAYOUT_TOKENS_GUESS = 16  # chat-template tokens around the audio when the tokenizer is not at hand

# the hub config.json of the paper's models (the fields that size them), for planning offline
BUILTIN = {
    "openai/whisper-large-v3": ("whisper", dict(
        d_model=1280, encoder_layers=32, decoder_layers=32, encoder_attention_heads=20,
        decoder_attention_heads=20, encoder_ffn_dim=5120, decoder_ffn_dim=5120, vocab_size=51866,
        num_mel_bins=128, max_source_positions=1500, max_target_positions=448)),
    "meta-llama/Meta-Llama-3-8B-Instruct": ("llama", dict(
        hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192, rms_norm_eps=1e-5,
        rope_theta=500000.0, tie_word_embeddings=False)),
}


@dataclass
class Resolved:
    name: str
    config: object | None   # a transformers PretrainedConfig
    source: str             # where the config came from, or why there is none


def model_config(name: str) -> Resolved:
    """A model's transformers config: an embedded model or folder, the HF cache (offline), or
    the built-in table."""
    from transformers import AutoConfig, LlamaConfig, WhisperConfig
    from diva import assets
    path = name
    if name in assets.ASSETS:
        if not assets.is_ready(name):
            return Resolved(name, None, "embedded model not prepared here (python -m diva assets)")
        path = str(assets.model_dir(name))
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
        return Resolved(name, config, "local folder" if os.path.isdir(path) else "Hugging Face cache")
    except (OSError, ValueError):
        pass
    if name in BUILTIN:
        kind, fields = BUILTIN[name]
        config = (WhisperConfig if kind == "whisper" else LlamaConfig)(**fields)
        return Resolved(name, config, "NOT FETCHED (offline): built-in table of its hub config.json")
    return Resolved(name, None, "not resolvable offline: needs the network (or a local folder)")


def corpus_status(cfg: dict) -> tuple[str, int | None]:
    """What the stage trains on and whether it is here; (line, number of training examples)."""
    corpus = cfg.get("corpus", {})
    if not corpus.get("hf"):
        from train.data import corpus_dir, corpus_settings
        settings = corpus_settings(cfg)
        folder = corpus_dir(settings)
        n = settings["n_train"] - settings.get("train_from", 0)
        built = "built" if (folder / "shards").is_dir() else "not built yet (synthesised on the first run)"
        return f"synthetic corpus {folder}: {n} training clips, {settings['n_valid']} valid; {built}", n
    from train.corpora import KNOWN, CorpusSpec
    spec = KNOWN.get(corpus["hf"], CorpusSpec(corpus["hf"]))
    where = f"{spec.path}" + (f" ({spec.config})" if spec.config else "")
    if os.path.isdir(spec.path):
        return f"{where}: local folder", None
    try:
        from datasets import load_dataset_builder
        builder = load_dataset_builder(spec.path, spec.config)
        split = corpus.get("splits", {}).get("train", "train")
        n = builder.info.splits[split].num_examples if builder.info.splits else None
        return f"{where}: in the Hugging Face cache, {n} training examples", n
    except Exception as exc:
        return (f"{where}: NOT RESOLVED offline ({type(exc).__name__}); needs the network"
                + (" and its terms accepted on the hub" if "common_voice" in spec.path else ""), None)


def parameter_counts(whisper_config, llm_config, n_queries: int, projection: str) -> dict[str, int]:
    """Exact counts from modules built on the meta device."""
    import torch
    from transformers import AutoModelForCausalLM, WhisperForConditionalGeneration
    with torch.device("meta"):
        whisper = WhisperForConditionalGeneration(whisper_config)
        llm = AutoModelForCausalLM.from_config(llm_config)
    decoder = whisper.model.decoder
    table = decoder.embed_tokens.weight.numel()  # copied into the connector, never trained
    d_whisper, d_llm = whisper_config.d_model, llm_config.hidden_size
    return {"encoder": sum(p.numel() for p in whisper.model.encoder.parameters()),
            "llm": sum(p.numel() for p in llm.parameters()),
            "connector_table": table,
            "trained": sum(p.numel() for p in decoder.parameters()) - table + n_queries * d_whisper
            + (d_whisper * d_llm + d_llm if projection == "linear" else 0)}


def activation_elements(w, l, tcfg: dict, n_queries: int, frames: int, llm_positions: int) -> dict[str, int]:
    """Per example, roughly: what backward keeps (SDPA attention: no T x T scores; no activation
    checkpointing) plus the frozen encoder's transient peak."""
    d, ffn = w.d_model, w.decoder_ffn_dim
    head_dim = l.hidden_size // l.num_attention_heads
    kv = getattr(l, "num_key_value_heads", l.num_attention_heads) * head_dim
    # per query and layer: 3 layer norms (input, output), q k v, attention out, cross q and out,
    # the MLP's two ffn-wide tensors; per encoder frame and layer: the cross-attention keys, values
    out = {"encoder (no grad, transient)": frames * (3 * w.d_model + w.encoder_ffn_dim),
           "connector": w.decoder_layers * (n_queries * (11 * d + 2 * ffn) + 2 * frames * d) + frames * d}
    if tcfg["loss"] != "align":  # the distillation gradient flows back through the frozen LLM
        # per position and layer (frozen weights keep no inputs): 2 RMSNorms (fp32 input, scale,
        # output), q, attention out, k, v, and SwiGLU's gate, up and product
        out["LLM (frozen; gradient to its inputs)"] = l.num_hidden_layers * llm_positions * (
            8 * l.hidden_size + 2 * kv + 3 * l.intermediate_size)
    return out


def plan(cfg: dict, processes: int) -> list[str]:
    from train.config import TRAIN_DEFAULTS
    tcfg = {**TRAIN_DEFAULTS, **cfg.get("train", {})}
    model = cfg.get("model", {})
    lines = [f"stage {cfg['name']}: config checked ({tcfg['loss']} loss, {tcfg['steps']} steps)"]
    corpus_line, n_train = corpus_status(cfg)
    lines.append(f"  data: {corpus_line}")
    enc, llm = model_config(model.get("encoder", "whisper-tiny.en")), model_config(model.get("llm", "smollm2-135m-instruct"))
    for role, r in (("encoder", enc), ("llm", llm)):
        lines.append(f"  {role}: {r.name}: {r.source}")
    per_device, accum = tcfg["batch_size"], tcfg["grad_accum"]
    batch = per_device * processes * accum
    examples = batch * tcfg["steps"]
    epochs = f", {examples / n_train:.2f} epochs" if n_train else ""
    lines.append(f"  batch: {per_device} per device x {processes} process(es) x {accum} accumulation = {batch}; "
                 f"{tcfg['steps']} steps = {examples:,} examples{epochs}")
    if enc.config is None or llm.config is None:
        lines.append("  memory: not estimated (a model config could not be resolved)")
        return lines
    w, l = enc.config, llm.config
    n_queries = model.get("n_queries", 448)
    frames = round(model.get("encoder_seconds", 30.0) * w.max_source_positions / 30)
    around, known = layout_tokens(llm)
    positions = n_queries + around
    lines.append(f"  tokens per example: {frames} encoder frames -> {n_queries} virtual tokens -> {positions} LLM "
                 f"positions ({around} chat-template tokens{'' if known else ', assumed: no tokenizer here'}); "
                 f"in all {examples * frames:,} frames, {examples * positions:,} LLM positions")
    counts = parameter_counts(w, l, n_queries, model.get("projection", "linear"))
    bf16 = tcfg["precision"] == "bf16"
    wb = 2 if bf16 else 4
    frozen = (counts["encoder"] + counts["llm"] + counts["connector_table"]) * wb
    trained = counts["trained"] * wb
    acts = {k: v * wb for k, v in activation_elements(w, l, tcfg, n_queries, frames, positions).items()}
    per_example = sum(acts.values())
    fixed = frozen + trained * 4  # weights, gradients, AdamW's two moments
    lines += [f"  parameters: frozen {(counts['encoder'] + counts['llm']) / 1e6:,.0f}M (encoder "
              f"{counts['encoder'] / 1e6:,.0f}M, LLM {counts['llm'] / 1e6:,.0f}M) + {counts['connector_table'] / 1e6:,.0f}M "
              f"unused token table; trained {counts['trained'] / 1e6:,.1f}M",
              f"  memory per device, {'bf16' if bf16 else 'fp32'} ({wb} bytes/value), DDP:",
              row("frozen weights (encoder, LLM, token table)", frozen),
              row("trained weights", trained), row("gradients", trained), row("AdamW moments (2)", 2 * trained)]
    lines += [row(f"activations: {k}", v * per_device) for k, v in acts.items()]
    total = fixed + per_example * per_device
    lines.append(row(f"total (rough), batch_size {per_device}", total))
    shards = processes if processes > 1 else 8
    lines.append(f"  FSDP over {shards} devices (weights, gradients and moments sharded): "
                 f"{(fixed / shards + per_example * per_device) / GIB:.2f} GiB per device")
    for device, gib in DEVICES_GIB.items():
        fits = int((gib * GIB - fixed) // per_example) if gib * GIB > fixed else 0
        lines.append(f"  largest batch_size on {device} (DDP, rough): {fits}" + same_batch(per_device, accum, fits))
    return lines


def row(label: str, size: float) -> str:
    return f"    {label:<58}{size / GIB:8.2f} GiB"


def same_batch(per_device: int, accum: int, fits: int) -> str:
    """The settings that keep the global batch within `fits` examples per device."""
    if fits >= per_device:
        return ""
    per_step = per_device * accum
    smaller = max((b for b in range(1, min(fits, per_step) + 1) if per_step % b == 0), default=0)
    return f" -> train.batch_size={smaller} train.grad_accum={per_step // smaller}" if smaller else " -> does not fit"


def layout_tokens(llm: Resolved) -> tuple[int, bool]:
    """Chat-template tokens around the virtual tokens, from the LLM's tokenizer when it is here
    (else a guess); and whether they were counted."""
    try:
        from transformers import AutoTokenizer
        from diva import assets
        from diva.prompt import PromptLayout
        path = str(assets.model_dir(llm.name)) if llm.name in assets.ASSETS else llm.name
        before, after = PromptLayout(AutoTokenizer.from_pretrained(path, local_files_only=True)).around_audio(None)
        return len(before) + len(after), True
    except Exception:
        return LAYOUT_TOKENS_GUESS, False


def print_plan(stages: list[dict]) -> int:
    """Print every stage's plan; 0 when every model resolved (from a file or the table), else 1."""
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    ok = True
    for cfg in stages:
        lines = plan(cfg, processes)
        ok &= not any("memory: not estimated" in line for line in lines)
        print("\n".join(lines))
    print("dry run: nothing was trained or downloaded")
    return 0 if ok else 1
