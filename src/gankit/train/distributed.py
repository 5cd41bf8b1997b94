"""torchrun / DistributedDataParallel support.

``init()`` reads the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK):
without it, training is a single process and nothing here does anything.
Rank 0 alone writes logs, samples and checkpoints; every rank trains on its
own shard of each epoch with ``batch / world`` images, so the global batch,
learning rates and images-seen counters mean the same at any world size.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class DistInfo:
    enabled: bool = False
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")


def init() -> DistInfo:
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) < 1:
        return DistInfo()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device = torch.device("cpu")
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistInfo(True, rank, world, local_rank, device)


def wrap(G: nn.Module, D: nn.Module, info: DistInfo, sync_bn: bool) -> tuple[nn.Module, nn.Module]:
    """The modules the training step calls: DDP-wrapped under torchrun."""
    if not info.enabled:
        return G, D
    raise NotImplementedError("DDP wrapping is being written")


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
