"""Low-rank adapters (peft LoRA) on the connector's Whisper-decoder copy.

With `train.lora_rank: r` the copy's own weights stay frozen and only rank-r updates of its linear
layers (attention projections and feed-forward layers) and the query tokens are trained, so the
copy cannot drift far from the weights it started from. The final connector has the updates
merged into the weights (`merged`), so it is saved and loaded like any other.
"""
from __future__ import annotations

import re

import torch
from peft import LoraConfig, inject_adapter_in_model

TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
ADAPTER = "default"


def add_adapters(diva, rank: int, alpha: float | None = None) -> None:
    """Freeze the connector and give each target layer a trainable rank-`rank` update (scaled by
    alpha / rank; alpha defaults to 2 x rank). B starts at zero: the model is unchanged at step 0."""
    config = LoraConfig(r=rank, lora_alpha=alpha or 2 * rank, target_modules=TARGETS, lora_dropout=0.0,
                        bias="none")
    inject_adapter_in_model(config, diva.connector, adapter_name=ADAPTER)
    for name, param in diva.connector.named_parameters():
        param.requires_grad_(".lora_" in name)


def merged(state: dict[str, torch.Tensor], rank: int, alpha: float | None = None) -> dict[str, torch.Tensor]:
    """A connector state dict with adapters -> the plain layout: W + (alpha / rank) * B @ A."""
    scale = (alpha or 2 * rank) / rank
    out = {}
    for key, value in state.items():
        if f".lora_A.{ADAPTER}." in key or f".lora_B.{ADAPTER}." in key:
            continue
        match = re.match(r"(.*)\.base_layer\.(weight|bias)$", key)
        if match is None:
            out[key] = value
            continue
        prefix, kind = match.groups()
        if kind == "weight":
            a, b = state[f"{prefix}.lora_A.{ADAPTER}.weight"], state[f"{prefix}.lora_B.{ADAPTER}.weight"]
            value = value + scale * (b.float() @ a.float()).to(value.dtype)
        out[f"{prefix}.{kind}"] = value
    return out
