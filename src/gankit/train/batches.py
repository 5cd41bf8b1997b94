"""Batches straight from the memory-mapped dataset.

No DataLoader: each batch is a gather of rows from the uint8 memory map,
moved to the device as uint8 (4x fewer bytes than float) and converted there
to float in [-1, 1].  The epoch order comes from a generator seeded by
(seed, epoch), so every rank of a torchrun job agrees on it without talking,
and a resumed run draws the same order again.

On a GPU a dataset that fits comfortably (a quarter of the free memory) is
copied there once as uint8 and batches are gathered on the device: no
host work and no transfer per step.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gankit.data.dataset import ImageDataset

EPOCH_STRIDE = 1_000_003  # a prime: the (seed, epoch) orders of nearby seeds never coincide
PREVIEW_SEED = 12345  # the preview's own stream: the same real images in every grid of a run


class BatchSource:
    def __init__(self, dataset: ImageDataset, batch: int, device: torch.device, size: tuple[int, int],
                 seed: int = 0, rank: int = 0, world: int = 1, channels_last: bool = False):
        self.dataset, self.batch, self.device, self.size = dataset, batch, device, size
        self.seed, self.rank, self.world = seed, rank, world
        self.channels_last = channels_last
        self.resident: torch.Tensor | None = None  # the whole uint8 dataset on the GPU, when it fits
        if device.type == "cuda" and dataset.images.nbytes <= torch.cuda.mem_get_info(device)[0] // 4:
            self.resident = torch.empty(dataset.images.shape, dtype=torch.uint8, device=device)
            for start in range(0, len(dataset), 4096):  # in chunks: the host never holds a full copy
                self.resident[start : start + 4096] = torch.from_numpy(np.array(dataset.images[start : start + 4096]))
        per_rank = len(dataset) // world
        self.iters = per_rank // batch  # full batches per epoch on each rank (the last partial one is dropped)
        if self.iters < 1:
            raise ValueError(f"dataset of {len(dataset)} images is smaller than one batch of {batch} x {world} ranks")

    def order(self, epoch: int) -> torch.Tensor:
        """This rank's shard of the epoch's permutation, (iters * batch,) int64."""
        gen = torch.Generator().manual_seed(self.seed * EPOCH_STRIDE + epoch)
        perm = torch.randperm(len(self.dataset), generator=gen)
        return perm[self.rank :: self.world][: self.iters * self.batch]

    def to_float(self, images_u8: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) uint8 -> (B, C, h, w) float in [-1, 1] at the training size."""
        x = images_u8.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        if tuple(x.shape[-2:]) != self.size:
            shrinking = x.shape[-2] >= self.size[0] and x.shape[-1] >= self.size[1]
            x = F.interpolate(x, size=self.size, mode="area") if shrinking else F.interpolate(
                x, size=self.size, mode="bilinear", align_corners=False)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def get(self, indices: torch.Tensor) -> torch.Tensor:
        if self.resident is not None:
            return self.to_float(self.resident[indices.to(self.device, non_blocking=True)])
        idx = np.sort(indices.numpy())
        return self.to_float(torch.from_numpy(np.ascontiguousarray(self.dataset.images[idx])))

    def preview(self, count: int) -> torch.Tensor:
        """A fixed set of real images (the left half of every sample grid)."""
        gen = torch.Generator().manual_seed(self.seed + PREVIEW_SEED)
        idx = torch.randperm(len(self.dataset), generator=gen)[: min(count, len(self.dataset))]
        return self.get(idx)
