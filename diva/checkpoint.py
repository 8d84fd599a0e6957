"""Connector-only checkpoints: ours, and the released DiVA layout (WillHeld/DiVA-llama-3-v0-8b).

Both hold only what DiVA trains; the encoder and LLM are named in config.json and loaded from
their own checkpoints. The released layout differs in one place: `projection.weight` is stored
transposed, (d_whisper, d_llm), relative to `torch.nn.Linear`'s (d_llm, d_whisper). Our own
files say `"projection_layout": "out_in"`; a config without that key is the released layout.
Our folders also hold `inference.json`: how the virtual tokens are read (diva.bridge.InferenceOptions).
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from diva.bridge import InferenceOptions
from diva.model import UNUSED_CONNECTOR_PREFIX, DiVA, DivaConfig

OUR_FORMAT = "diva-connector"
OPTIONS_FILE = "inference.json"


class CheckpointError(RuntimeError):
    """A checkpoint folder that is missing or does not hold a DiVA connector."""


def save_connector(model: DiVA, folder: str | Path, extra: dict | None = None,
                   state: dict | None = None) -> Path:
    """`state`: the trained weights when they are not the model's own (gathered from FSDP shards)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if state is None:
        state = {k: v.detach().contiguous().cpu() for k, v in model.connector_state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    config = {"format": OUR_FORMAT, "projection_layout": "out_in",
              "reference_encoder": model.config.encoder, "reference_decoder": model.config.llm,
              "n_queries": model.config.n_queries, "encoder_seconds": model.config.encoder_seconds,
              "projection": model.config.projection, **(extra or {})}
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (folder / OPTIONS_FILE).write_text(json.dumps(model.options.to_dict(), indent=2) + "\n")
    return folder


def save_released_layout(model: DiVA, folder: str | Path) -> Path:
    """Write the layout of the released checkpoint (for interchange with the original code)."""
    if model.config.projection != "linear":
        raise CheckpointError("the released layout has a linear projection; this DiVA uses "
                              f"{model.config.projection!r}: save it with save_connector")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.connector_state_dict().items()}
    state["projection.weight"] = state["projection.weight"].t().contiguous()
    # the released files carry the whole decoder state dict, unused token table included
    state[f"connector.{UNUSED_CONNECTOR_PREFIX}weight"] = model.connector.embed_tokens.weight.detach().cpu()
    save_file(state, str(folder / "model.safetensors"))
    config = {"architectures": ["DiVAModel"], "model_type": "diva",
              "reference_encoder": model.config.encoder, "reference_decoder": model.config.llm}
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return folder


def _local_folder(source: str | Path) -> Path:
    path = Path(source)
    if path.is_dir():
        return path
    if str(source).count("/") == 1 and not path.exists():  # a hub id
        from huggingface_hub import snapshot_download
        return Path(snapshot_download(str(source), allow_patterns=["*.json", "*.safetensors"]))
    raise CheckpointError(f"no checkpoint folder at {source}")


def _read_state(folder: Path) -> dict[str, torch.Tensor]:
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{folder} holds no .safetensors file")
    state: dict[str, torch.Tensor] = {}
    for file in files:  # one file, or the shards of a sharded checkpoint
        state.update(load_file(str(file)))
    return state


def read_checkpoint(source: str | Path) -> tuple[DivaConfig, dict[str, torch.Tensor], dict]:
    """Config, connector state dict in nn.Linear orientation, and the raw config.json (with the
    inference options of inference.json, when there is one, under "inference")."""
    folder = _local_folder(source)
    config_file = folder / "config.json"
    if not config_file.exists():
        raise CheckpointError(f"{folder} has no config.json naming the encoder and LLM")
    raw = json.loads(config_file.read_text())
    for key in ("reference_encoder", "reference_decoder"):
        if key not in raw:
            raise CheckpointError(f"{config_file} lacks '{key}'")
    state = _read_state(folder)
    projection = raw.get("projection", "linear")  # the vocabulary bridge has no weights to store
    if "query_tokens" not in state or (projection == "linear" and "projection.weight" not in state):
        raise CheckpointError(f"{folder} is not a DiVA connector (no query_tokens / projection.weight)")
    if projection == "linear" and raw.get("projection_layout") != "out_in":  # released: (d_whisper, d_llm)
        state["projection.weight"] = state["projection.weight"].t().contiguous()
    config = DivaConfig(encoder=raw["reference_encoder"], llm=raw["reference_decoder"],
                        n_queries=state["query_tokens"].shape[0],
                        encoder_seconds=raw.get("encoder_seconds", 30.0), projection=projection)
    if (folder / OPTIONS_FILE).exists():
        raw["inference"] = json.loads((folder / OPTIONS_FILE).read_text())
    elif raw.get("projection_layout") != "out_in":  # the released checkpoint places prompts its own way
        raw["inference"] = {"prompt_layout": "reference"}
    return config, state, raw


def load_state_into(model: DiVA, state: dict[str, torch.Tensor]) -> None:
    """Put every tensor where it belongs; any missing or unexpected key is an error."""
    own = model.connector_state_dict()
    state = {k: v for k, v in state.items() if not k.startswith(f"connector.{UNUSED_CONNECTOR_PREFIX}")}
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"checkpoint does not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for key, target in own.items():
        if tuple(state[key].shape) != tuple(target.shape):
            raise CheckpointError(f"{key}: checkpoint {tuple(state[key].shape)} vs model {tuple(target.shape)}")
    with torch.no_grad():
        model.query_tokens.copy_(state["query_tokens"])
    model.connector.load_state_dict({k[len("connector."):]: v for k, v in state.items()
                                     if k.startswith("connector.")}, strict=False)
    model.projection.load_state_dict({k[len("projection."):]: v for k, v in state.items()
                                      if k.startswith("projection.")})


def load_diva(source: str | Path, encoder: str | None = None, llm: str | None = None,
              options: dict | None = None) -> DiVA:
    """Build DiVA from a checkpoint folder or hub id. The encoder and LLM may be overridden;
    `options` change the inference options stored beside the checkpoint (InferenceOptions
    fields, e.g. {"bridge_decode": "llm-beam"}); a loaded model's `options` can be set too."""
    config, state, raw = read_checkpoint(source)
    config = replace(config, encoder=encoder or config.encoder, llm=llm or config.llm)
    model = DiVA.from_config(config, InferenceOptions.from_dict({**raw.get("inference", {}), **(options or {})}))
    load_state_into(model, state)
    return model
