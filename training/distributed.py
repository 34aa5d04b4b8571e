"""torchrun set-up: one process per device, DistributedDataParallel, predictions gathered.

`torchrun --nproc_per_node=N script.py` sets RANK, LOCAL_RANK and WORLD_SIZE; without them this
is a single process and every helper here is a no-op. Backend: nccl on CUDA, gloo otherwise.
"""
from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env() -> Dist:
    """The process's place in a torchrun job (rank 0 of 1 when not launched by torchrun)."""
    env = os.environ
    return Dist(int(env.get("RANK", 0)), int(env.get("LOCAL_RANK", 0)), int(env.get("WORLD_SIZE", 1)))


def init(ctx: Dist, device: torch.device) -> None:
    """Join the process group (gloo on CPU/MPS, nccl on CUDA)."""
    if not ctx.enabled or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, timeout=datetime.timedelta(hours=2))
    log.info("process group: %s, rank %d of %d", backend, ctx.rank, ctx.world_size)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def gather_arrays(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every rank's arrays concatenated in rank order, on every rank. Evaluation shards are
    contiguous blocks in rank order (data_prep/loader.py), so this restores the split's order."""
    if not dist.is_initialized():
        return arrays
    parts = gather_objects(arrays)
    return {k: np.concatenate([p[k] for p in parts]) for k in arrays}


def gather_objects(value) -> list:
    """[rank 0's value, rank 1's, ...] on every rank ([value] in a single process)."""
    if not dist.is_initialized():
        return [value]
    parts = [None] * dist.get_world_size()
    dist.all_gather_object(parts, value)
    return parts


def all_ranks(flag: bool, device: torch.device) -> bool:
    """True when `flag` holds on every rank (e.g. 'my loss is finite')."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def total(count: int, device: torch.device) -> int:
    """The sum of `count` over every rank."""
    if not dist.is_initialized():
        return count
    t = torch.tensor([count], device=device)
    dist.all_reduce(t)
    return int(t.item())


def broadcast_object(value):
    """Rank 0's `value` on every rank."""
    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
