"""Training with several processes (``torchrun``, ``lenet train --nproc N``): where this
process sits, the collectives the trainer needs, and the model wrapped in
DistributedDataParallel.

Every process trains on its own shard of each global batch; DDP averages the gradients, so
the global batch size and the learning rate keep their meaning. Only rank 0 logs and writes.
A plain launch is world 1, and every method here is then a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

T = TypeVar("T")


@dataclass
class Distributed:
    """Where this process sits in a torchrun launch (world 1 when launched plainly)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> Distributed:
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)))

    def setup(self, device: torch.device) -> torch.device:
        if self.world == 1:
            return device
        if device.type == "cuda":
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return device

    def all_sum(self, *values: torch.Tensor) -> None:
        if self.world > 1:
            for v in values:
                dist.all_reduce(v)

    def broadcast(self, obj: T) -> T:
        if self.world == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def shard(self, idx: torch.Tensor) -> torch.Tensor:
        # Contiguous, equal-as-possible shards of the global batch: DDP averages the ranks'
        # gradients, so the global batch size and the learning rate keep their meaning.
        return idx if self.world == 1 else idx.tensor_split(self.world)[self.rank]

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """The module that trains: `model` itself, or with several processes `model` under
        DistributedDataParallel (which shares its parameters)."""
        if self.world == 1:
            return model
        return DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

    def close(self, finished: bool = False) -> None:
        """Leave the process group; after a finished run, every rank at once: a rank that
        tears gloo down while another still talks to it can abort at exit (signal 6)."""
        if self.world > 1 and dist.is_initialized():
            if finished:
                dist.barrier()
            dist.destroy_process_group()
