"""Batches straight from the memory-mapped dataset.

No DataLoader: each batch is a gather of rows from the uint8 memory map,
moved to the device as uint8 (4x fewer bytes than float) and converted there
to float in [-1, 1].  The epoch order comes from a generator seeded by
(seed, epoch), so every rank of a torchrun job agrees on it without talking,
and a resumed run draws the same order again.

A labelled dataset can give each batch its labels (``pair(..., labels=True)``,
for conditional runs) and, with ``class_balance``, an epoch order drawn
uniformly over classes (with replacement) instead of a permutation.

With ``mirror`` every image of an epoch is shown flipped left-right with
probability 1/2 (the coin drawn after the permutation from the same (seed,
epoch) generator, so the order is the one an unmirrored run sees and a
resumed run flips the same images): for sets whose pictures have no
handedness, the cheapest way to double a small set (StyleGAN2-ADA's
``--mirror``; measured in docs/presets/small64.md).  A flipped image travels through `pair`
as its index plus the dataset's length.

A dataset split by `gankit data split` is read through its training part
(``pool``: the indices training may see); epochs, class balance and the
preview draw from those images only, and the held-out ones are never read.

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
                 seed: int = 0, rank: int = 0, world: int = 1, channels_last: bool = False,
                 class_balance: bool = False, preview_grid: tuple[int, int] | None = None,
                 pool: np.ndarray | None = None, mirror: bool = False):
        self.mirror = mirror
        self.dataset, self.batch, self.device, self.size = dataset, batch, device, size
        # (n,) int64 dataset indices training may read (a split's training part), or None: all of them
        self.pool = None if pool is None else torch.from_numpy(np.asarray(pool, dtype=np.int64))
        self.count = len(dataset) if self.pool is None else len(self.pool)  # images training draws from
        self.seed, self.rank, self.world = seed, rank, world
        self.channels_last = channels_last
        self.class_balance = class_balance and dataset.labels is not None
        # (classes, per class): preview() then shows that many real images of each class, row by row
        self.preview_grid = preview_grid if dataset.labels is not None else None
        self.preview_labels: torch.Tensor | None = None  # the classes of preview()'s images, when by class
        # (N,) int64 classes of the dataset (a writable copy of the read-only array), or None
        self.labels = torch.from_numpy(np.array(dataset.labels)) if dataset.labels is not None else None
        self.resident: torch.Tensor | None = None  # the whole uint8 dataset on the GPU, when it fits
        if device.type == "cuda" and dataset.images.nbytes <= torch.cuda.mem_get_info(device)[0] // 4:
            self.resident = torch.empty(dataset.images.shape, dtype=torch.uint8, device=device)
            for start in range(0, len(dataset), 4096):  # in chunks: the host never holds a full copy
                self.resident[start : start + 4096] = torch.from_numpy(np.array(dataset.images[start : start + 4096]))
        per_rank = self.count // world
        self.iters = per_rank // batch  # full batches per epoch on each rank (the last partial one is dropped)
        if self.iters < 1:
            raise ValueError(f"dataset of {self.count} images is smaller than one batch of {batch} x {world} ranks")

    def order(self, epoch: int) -> torch.Tensor:
        """This rank's shard of the epoch's permutation, (iters * batch,) int64: dataset
        indices, plus the dataset's length for an image to be shown mirrored (``mirror``)."""
        gen = torch.Generator().manual_seed(self.seed * EPOCH_STRIDE + epoch)
        perm = self._balanced(gen) if self.class_balance else torch.randperm(self.count, generator=gen)
        order = self._in_pool(perm)
        if self.mirror:  # drawn after the permutation: the order itself is the unmirrored run's
            order = order + (torch.rand(len(order), generator=gen) < 0.5).long() * len(self.dataset)
        return order[self.rank :: self.world][: self.iters * self.batch]

    def _in_pool(self, positions: torch.Tensor) -> torch.Tensor:
        """Positions in the training part -> dataset indices (the same without a split)."""
        return positions if self.pool is None else self.pool[positions]

    def _balanced(self, gen: torch.Generator) -> torch.Tensor:
        """An epoch's worth of positions in the training part, (n,): each one a uniform
        class (of those with images), then a uniform image of that class; rare classes
        repeat within an epoch."""
        labels = self._labels() if self.pool is None else self._labels()[self.pool]
        members = torch.argsort(labels, stable=True)  # indices grouped by class
        counts = torch.bincount(labels, minlength=self.dataset.num_classes)
        starts = torch.cumsum(counts, 0) - counts
        present = torch.nonzero(counts).flatten()  # classes with at least one image
        n = self.count
        cls = present[torch.randint(len(present), (n,), generator=gen)]
        pos = (torch.rand(n, generator=gen, dtype=torch.float64) * counts[cls]).long()
        return members[starts[cls] + pos]

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

    def _read_order(self, indices: torch.Tensor) -> torch.Tensor:
        """The order the images at ``indices`` are read in: as given from memory,
        sorted from disk (a memory map reads fastest front to back)."""
        if self.resident is not None:
            return indices
        idx = indices.numpy()
        return torch.from_numpy(idx[np.argsort(idx % len(self.dataset), kind="stable")])  # mirrored ones in place

    def get(self, indices: torch.Tensor) -> torch.Tensor:
        """The images at ``indices``, in `_read_order`."""
        return self._images_at(self._read_order(indices))

    def _images_at(self, idx: torch.Tensor) -> torch.Tensor:
        """The images at ``idx`` (an index past the dataset's length: that image mirrored)."""
        n = len(self.dataset)
        flip, idx = idx >= n, idx % n
        if self.resident is not None:
            x = self.to_float(self.resident[idx.to(self.device, non_blocking=True)])
        else:
            x = self.to_float(torch.from_numpy(np.ascontiguousarray(self.dataset.images[idx.numpy()])))
        if flip.any():
            rows = flip.to(x.device)
            x[rows] = x[rows].flip(-1)
        return x

    def pair(self, indices: torch.Tensor, labels: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(images, their (B,) int64 classes on the device, in the same order) with
        ``labels`` (a conditional run), else (images, None)."""
        idx = self._read_order(indices)  # once: the images and their classes in the same order
        if not labels:
            return self._images_at(idx), None
        return self._images_at(idx), self._labels()[idx.cpu() % len(self.dataset)].to(self.device, non_blocking=True)

    def _labels(self) -> torch.Tensor:
        if self.labels is None:
            raise ValueError(f"dataset {self.dataset.path} has no labels")
        return self.labels

    def preview(self, count: int) -> torch.Tensor:
        """A fixed set of real images (the left half of every sample grid); with a
        ``preview_grid`` the first images of each class instead, one row per class."""
        gen = torch.Generator().manual_seed(self.seed + PREVIEW_SEED)
        perm = self._in_pool(torch.randperm(self.count, generator=gen))
        if self.preview_grid is None:
            return self.get(perm[: min(count, self.count)])
        rows, cols = self.preview_grid
        labels = self._labels()[perm]
        tiles: list[torch.Tensor] = []
        for c in range(rows):
            mine = perm[labels == c][:cols]  # a class with fewer images repeats its first; none: grey tiles
            for i in range(cols):
                tiles.append(self.get(mine[i : i + 1] if i < len(mine) else mine[:1]) if len(mine) else
                             torch.zeros(1, self.dataset.channels, *self.size, device=self.device))
        self.preview_labels = torch.arange(rows).repeat_interleave(cols)
        return torch.cat(tiles)  # (rows*cols, C, H, W), row r = class r
