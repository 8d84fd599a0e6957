"""Training on several processes (DDP or FSDP through HF accelerate) as the same computation as one.

The global batch of a step is `batch_size` (per device) x processes x `grad_accum` examples of the
shuffled stream; process r takes positions r, r + world, ... of each micro-batch. Every loss is a
mean over examples, so DDP's average of per-process means is the global mean; the SFT
cross-entropy, a mean over tokens, is divided by the step's global token count instead
(`ce_share`). Time masks are seeded per stream position (train.objectives.stream_generator).
Logged losses and validation are reduced over processes; only the main process writes files.
"""
from __future__ import annotations

import contextlib
import math
import os

import torch

from train.checkpoints import rng_state


class Ranks:
    """The processes of one run, and the collectives the loop needs (no-ops on one process)."""

    def __init__(self, accelerator, model, diva):
        from accelerate.utils import DistributedType
        self.accelerator, self.model, self.diva = accelerator, model, diva
        self.world, self.rank = accelerator.num_processes, accelerator.process_index
        self.is_main = accelerator.is_main_process
        self.fsdp = accelerator.distributed_type == DistributedType.FSDP

    def slice(self, global_indices: list[int], first_position: int) -> tuple[list[int], list[int]]:
        """This process' examples of a micro-batch and their stream positions."""
        mine = range(self.rank, len(global_indices), self.world)
        return [global_indices[j] for j in mine], [first_position + j for j in mine]

    def _reduce(self, values: dict[str, float], op: str) -> dict[str, float]:
        if self.world == 1 or not values:
            return dict(values)
        keys = sorted(values)
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=self.accelerator.device)
        t = self.accelerator.reduce(t, reduction=op)
        return {k: float(v) for k, v in zip(keys, t.tolist())}

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        return self._reduce(values, "mean")

    def sum(self, values: dict[str, float]) -> dict[str, float]:
        return self._reduce(values, "sum")

    def rng_states(self) -> list[dict]:
        """Every process' RNG states, in rank order (a collective)."""
        if self.world == 1:
            return [rng_state()]
        from accelerate.utils import gather_object
        return gather_object([rng_state()])

    def connector_state(self) -> dict[str, torch.Tensor]:
        """The trained weights as full CPU tensors on the main process (under FSDP a collective:
        every rank calls it; elsewhere the other ranks get {})."""
        if not (self.fsdp or self.is_main):
            return {}
        out = {}
        for key, value in self.diva.connector_state_dict().items():
            if hasattr(value, "full_tensor"):  # an FSDP2 shard (DTensor)
                value = value.full_tensor()
            out[key] = value.detach().cpu().clone().contiguous()
        return out

    def optimizer_state(self, optimizer) -> dict:
        """AdamW's state as a checkpoint holds it (on the main process): as is, or under FSDP gathered
        by parameter name."""
        if not self.fsdp:
            return optimizer.state_dict() if self.is_main else {}
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict
        return get_optimizer_state_dict(self.model, optimizer.optimizer,
                                        options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def load_optimizer_state(self, optimizer, state: dict) -> None:
        if not self.fsdp:
            optimizer.load_state_dict(state)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict
        set_optimizer_state_dict(self.model, optimizer.optimizer, optim_state_dict=state,
                                 options=StateDictOptions(full_state_dict=True))


def ce_share(trainee, data, micro_batches: list[list[int]], world: int) -> float:
    """The SFT denominator for each process and micro-batch: the step's scored tokens over all
    processes and micro-batches / (processes x micro-batches). DDP averages over processes and
    the loop over micro-batches, so the gradient is that of the global token mean."""
    texts = [t for idx in micro_batches for t in data.select(idx)["transcript"]]
    return trainee.ce_targets(texts) / (world * len(micro_batches))


def validation_batches(n: int, batch: int, rank: int, world: int) -> list[tuple[list[int], int]]:
    """This process' share of the first n validation examples: (indices, how many count) per
    batch. Every process runs as many batches (a short one repeats an example that counts 0), as
    FSDP's gathers need every process in every forward."""
    mine = list(range(rank, n, world))
    per_rank = math.ceil(n / world)
    out = []
    for start in range(0, max(per_rank, 1), batch):
        idx = mine[start:start + batch]
        out.append((idx or [0], len(idx)))
    return out


@contextlib.contextmanager
def main_process_first():
    """Under `accelerate launch`, the main process does the body first (e.g. synthesising the
    corpus), the others after it (finding it done)."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        yield
        return
    from accelerate import PartialState
    with PartialState(cpu=not torch.cuda.is_available()).main_process_first():
        yield
