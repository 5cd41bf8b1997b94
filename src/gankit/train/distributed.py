"""torchrun / DistributedDataParallel support.

``init()`` reads the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK):
without it, training is a single process and nothing here does anything.

What stays the same at any number of ranks (so a config means one thing):

- ``--batch`` is the GLOBAL batch: each rank trains on ``batch / world``
  images of its own shard of every epoch; DDP averages the gradients, so
  the update equals a one-process step on the whole batch and the learning
  rates need no scaling.
- ``images_seen`` (kimg) counts the images of all ranks together.
- The latent vectors z of a step are drawn for the global batch from one
  generator every rank seeds alike; rank r keeps its slice.  With BatchNorm
  synchronised (``--sync-bn``) or absent, a run on N ranks therefore computes
  the same steps as a run on one (up to float rounding).

Rank 0 alone writes logs, samples and checkpoints; a checkpoint holds the
plain (unwrapped) modules, so it resumes on any number of ranks.

DDP details that matter for a GAN: D is called several times before one
backward (real, fake, and a gradient penalty), which DDP allows; the
generator step calls the plain D module with its parameters frozen, so D's
unused gradients are neither computed nor all-reduced.  Buffers are synced
from rank 0 once, at construction, not before every forward: BatchNorm
running statistics are only read at evaluation, they are synchronised with
``--sync-bn`` and otherwise each rank's own estimate (rank 0's is saved).
Random draws other than z (augmentations, the gradient-penalty mix) stay
per rank, as they should.

``--sync-bn`` uses ``torch.nn.SyncBatchNorm`` on GPUs.  That layer refuses
CPU tensors, so on the gloo backend BatchNorm layers become
:class:`CPUSyncBatchNorm`, which all-reduces per-channel sums through a
differentiable all-reduce; both keep BatchNorm's state_dict keys.
"""
from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from gankit.errors import UsageError


@dataclass
class DistInfo:
    enabled: bool = False
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    control: Any = None  # a gloo group for small host-side agreements (None: the default group)


def init(device: str = "auto") -> DistInfo:
    """Join the torchrun job if there is one: NCCL on GPUs, gloo on CPUs.

    ``device`` is the ``--device`` flag: ``cpu`` forces gloo on a GPU machine.
    """
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return DistInfo()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device: cuda requested but no CUDA device is available")
    if device != "cpu" and torch.cuda.is_available():
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
        backend = "nccl"
    else:
        dev = torch.device("cpu")
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, device_id=dev if backend == "nccl" else None)
    # NCCL only moves device tensors; decisions such as "time is up" travel
    # on a gloo group so they never make the GPU wait.
    control = dist.new_group(backend="gloo") if backend == "nccl" else None
    return DistInfo(True, rank, world, local_rank, dev, control)


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose gradient is again the sum over ranks: every rank's
    loss depends on the summed statistics, so each rank's input receives the
    gradients of all ranks' losses.  (Like ``torch.distributed.nn``'s
    all_reduce, which torch 2.13 deprecates.)"""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return _AllReduceSum.apply(grad.contiguous())  # itself differentiable: R1 needs double backward


class CPUSyncBatchNorm(_BatchNorm):
    """BatchNorm whose batch statistics cover every rank's batch (gloo/CPU).

    Per-channel sums of x and x^2 and the count go through one differentiable
    all-reduce, so the backward pass also sums the statistics' gradients over
    ranks, as ``torch.nn.SyncBatchNorm`` does on GPUs.  Outside training or
    without a process group it is plain BatchNorm.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        C = x.shape[1]
        dims = [0] + list(range(2, x.dim()))
        xf = x.float()
        count = torch.full((1,), x.numel() // C, dtype=torch.float32, device=x.device)
        sums = _AllReduceSum.apply(torch.cat([xf.sum(dims), (xf * xf).sum(dims), count]))  # (2C + 1,)
        n = sums[-1]
        mean = sums[:C] / n
        var = (sums[C : 2 * C] / n - mean * mean).clamp_min(0.0)  # biased, as BatchNorm normalises
        if (self.track_running_stats and self.running_mean is not None and self.running_var is not None
                and self.num_batches_tracked is not None):
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_(var.detach() * n / (n - 1).clamp_min(1.0), m)
        shape = [1, C] + [1] * (x.dim() - 2)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm layers -> synchronised ones, keeping the same parameter and
    buffer tensors (optimisers and the EMA keep pointing at them)."""
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, _BatchNorm) and not isinstance(module, (CPUSyncBatchNorm, nn.SyncBatchNorm)):
        new = CPUSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                               module.track_running_stats)
        if module.affine:
            new.weight, new.bias = module.weight, module.bias
        new.running_mean, new.running_var = module.running_mean, module.running_var
        new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, convert_sync_batchnorm(child, device))
    return module


def wrap(G: nn.Module, D: nn.Module, info: DistInfo, sync_bn: bool) -> tuple[nn.Module, nn.Module]:
    """The modules the training step calls: DDP-wrapped under torchrun.

    ``G`` and ``D`` stay the plain modules (checkpoints, EMA, sampling); with
    ``sync_bn`` their BatchNorm layers are converted in place.
    """
    if not info.enabled:
        return G, D
    from torch.nn.parallel import DistributedDataParallel as DDP

    if sync_bn:
        convert_sync_batchnorm(G, info.device)
        convert_sync_batchnorm(D, info.device)
    ids = [info.device.index] if info.device.type == "cuda" else None
    options: dict[str, Any] = dict(device_ids=ids, gradient_as_bucket_view=True)
    # Buffers are synchronised once at construction, not before every forward (see above);
    # torch 2.13 renamed the flag.
    no_sync = ("forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(DDP).parameters
               else "broadcast_buffers")
    options[no_sync] = False
    return DDP(G, **options), DDP(D, **options)


def per_rank_batch(batch: int, info: DistInfo) -> int:
    """``--batch`` is global: each rank's share, which must be whole."""
    if batch % info.world:
        raise UsageError(f"--batch: the global batch {batch} does not split evenly over {info.world} ranks; "
                         f"use a multiple of {info.world}")
    return batch // info.world


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank when ``flag`` is true on at least one (a collective)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int32)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=info.control)
    return bool(t.item())


def min_over_ranks(value: float, info: DistInfo) -> float:
    """The smallest ``value`` of any rank, on every rank (a collective)."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MIN, group=info.control)
    return float(t.item())


def all_reduce_mean(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Average ``tensor`` over ranks in place (the logged statistics)."""
    if info.enabled:
        dist.all_reduce(tensor)
        tensor.div_(info.world)
    return tensor


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank (unchanged without torchrun)."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0, group=info.control)
    return box[0]


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
