"""Run by tests/test_distributed.py under torchrun (2 CPU processes, gloo): FSDP2 on the tiny DiVA,
wrapped as train/configs/accelerate/fsdp.yaml has accelerate wrap it (the LLM's decoder layers
and Whisper's encoder layers as units, the rest in the root). accelerate runs FSDP on GPUs only,
so the wrapping is done here by hand; what is tested is train.distributed's FSDP paths: the
gathered connector after two steps equals one process' on the whole batch, and AdamW's state
survives a checkpoint round trip.

    torchrun --nproc_per_node 2 tests/fsdp_worker.py MODELS_DIR OUT_DIR
"""
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.distributed as dist

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from accelerate.utils import DistributedType  # noqa: E402

from diva import models  # noqa: E402
from diva.model import DiVA, DivaConfig  # noqa: E402
from train.config import TRAIN_DEFAULTS  # noqa: E402
from train.distributed import Ranks  # noqa: E402
from train.objectives import Trainee  # noqa: E402

TEXTS = ["What is the capital of France?", "Hello there.", "Bees make honey.", "The cat sat on the mat."]


def build(folder: Path):
    models.load_llm.cache_clear(), models.load_whisper.cache_clear()  # fresh frozen models
    torch.manual_seed(0)
    diva = DiVA.from_config(DivaConfig(encoder=str(folder / "tiny-whisper"), llm=str(folder / "tiny-llama"), n_queries=8))
    tcfg = {**TRAIN_DEFAULTS, "cache": False, "precision": "fp32"}
    return diva, Trainee(diva, tcfg).train()


def two_steps(trainee, params, idx):
    clips = [(0.1 * np.random.default_rng(i).standard_normal(16_000 + 1000 * i)).astype(np.float32) for i in range(4)]
    optimizer = torch.optim.AdamW(params, lr=3e-3)
    for _ in range(2):
        out = trainee([clips[i] for i in idx], [str(i) for i in idx], [TEXTS[i] for i in idx])
        out["loss"].backward()
        optimizer.step()
        optimizer.zero_grad()
    return optimizer


def main(folder: Path, out: Path) -> None:
    from torch.distributed.fsdp import fully_shard
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    diva, trainee = build(folder)
    for layer in [*diva.llm.model.layers, *diva.encoder.layers]:
        fully_shard(layer)
    fully_shard(trainee)
    optimizer = two_steps(trainee, diva.trainable_parameters(), list(range(rank, 4, world)))
    accelerator = SimpleNamespace(num_processes=world, process_index=rank, is_main_process=rank == 0,
                                  distributed_type=DistributedType.FSDP, device=torch.device("cpu"))
    ranks = Ranks(accelerator, trainee, diva)
    sharded = ranks.connector_state()
    saved = ranks.optimizer_state(SimpleNamespace(optimizer=optimizer))
    if rank == 0:
        torch.save(saved, out / "optimizer.pt")
    dist.barrier()
    moments = [optimizer.state[p]["exp_avg"].full_tensor().clone() for p in diva.trainable_parameters()]
    for p in diva.trainable_parameters():
        optimizer.state[p]["exp_avg"].zero_()
    ranks.load_optimizer_state(SimpleNamespace(optimizer=optimizer), torch.load(out / "optimizer.pt", weights_only=False))
    restored = all(torch.equal(m, optimizer.state[p]["exp_avg"].full_tensor())
                   for m, p in zip(moments, diva.trainable_parameters()))
    if rank == 0:
        reference, whole = build(folder)
        two_steps(whole, reference.trainable_parameters(), list(range(4)))
        expected = reference.connector_state_dict()
        diff = max(float((sharded[k] - expected[k].detach()).abs().max()) for k in expected)
        (out / "result.json").write_text(json.dumps({"max_diff": diff, "keys_equal": sharded.keys() == expected.keys(),
                                                     "optimizer_restored": restored, "saved_keys": len(saved["state"])}))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
