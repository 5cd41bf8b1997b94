"""The image sets `evaluate` compares: a dataset's images, a folder of image
files, or a generator's samples, all as uint8 (B, C, H, W) batches of one
resolution, because a metric must see generated images exactly as if they
had been saved as PNGs (rounded to uint8), and real ones resized the way
training resized them.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from gankit.data.dataset import ImageDataset
from gankit.errors import UsageError
from gankit.metrics import per_class
from gankit.metrics.registry import FeatureExtractor
from gankit.models.common import latent_size

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


class ImageSet(Protocol):
    """uint8 (B, C, H, W) batches of one resolution."""

    count: int
    resolution: tuple[int, int]
    labels: np.ndarray | None  # (count,) class index of each image in batch order, or None
    classes: list[str]         # the names those indices refer to ([] when unlabelled)

    def batches(self, batch: int) -> Iterator[torch.Tensor]: ...


def resize_u8(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 (B, C, H, W) -> (B, C, *size): area when shrinking, bilinear
    otherwise, as training's batch loader does."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    f = x.float()
    shrinking = f.shape[-2] >= size[0] and f.shape[-1] >= size[1]
    f = F.interpolate(f, size=size, mode="area") if shrinking else F.interpolate(
        f, size=size, mode="bilinear", align_corners=False)
    return f.round().clamp(0, 255).to(torch.uint8)


@dataclass
class DatasetImages:
    """``count`` images of a dataset picked with ``seed`` (read in index order)."""

    ds: ImageDataset
    count: int
    resolution: tuple[int, int] = (0, 0)
    seed: int = 0

    def __post_init__(self) -> None:
        self.count = min(self.count, len(self.ds))
        if self.resolution == (0, 0):
            self.resolution = (self.ds.height, self.ds.width)
        n = len(self.ds)
        rng = np.random.default_rng(self.seed)
        self.indices = np.arange(n) if self.count == n else np.sort(rng.choice(n, self.count, replace=False))
        self.labels = None if self.ds.labels is None else np.asarray(self.ds.labels[self.indices])
        self.classes = self.ds.classes

    def batches(self, batch: int) -> Iterator[torch.Tensor]:
        for start in range(0, self.count, batch):
            chunk = np.ascontiguousarray(self.ds.images[self.indices[start:start + batch]])
            yield resize_u8(torch.from_numpy(chunk).permute(0, 3, 1, 2), self.resolution)


@dataclass
class FolderImages:
    """The first ``count`` image files (sorted by path) of a folder; every
    image is resized to the first one's size."""

    path: Path
    count: int
    channels: int = 3
    files: list[Path] = field(default_factory=list)
    resolution: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if not self.path.is_dir():
            raise UsageError(f"--fake: no such folder {self.path}")
        found = sorted(p for p in self.path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not found:
            raise UsageError(f"--fake: no images ({', '.join(IMAGE_SUFFIXES)}) in {self.path}")
        self.files = found[: self.count]
        self.labels: np.ndarray | None = None  # image files carry no class
        self.classes: list[str] = []
        self.count = len(self.files)
        first = self._load(self.files[0])
        self.resolution = (first.shape[0], first.shape[1])

    def _load(self, path: Path) -> np.ndarray:
        from gankit.data.imageops import decode_image, image_to_array, normalise_mode

        try:
            img = normalise_mode(decode_image(path.read_bytes()), self.channels == 1, (0, 0, 0))
        except Exception as err:  # PIL raises many kinds; the message names the file
            raise UsageError(f"--fake: cannot read {path}: {err}") from None
        return image_to_array(img).copy()  # writable, as torch.from_numpy wants

    def batches(self, batch: int) -> Iterator[torch.Tensor]:
        for start in range(0, self.count, batch):
            arrs = [torch.from_numpy(self._load(p)).permute(2, 0, 1)[None] for p in self.files[start:start + batch]]
            yield torch.cat([resize_u8(a, self.resolution) for a in arrs])


def num_classes(generator: torch.nn.Module) -> int:
    """The generator's number of classes (0: unconditional; older models lack the attribute)."""
    return int(getattr(generator, "num_classes", 0) or 0)


@dataclass
class GeneratorImages:
    """``count`` images of a generator from latents drawn with ``seed``,
    rounded to uint8 as if saved.  The generator's train/eval mode is restored.

    A conditional generator (``num_classes`` > 0) draws class ``labels[i]``
    for image i; None: as many of each class as ``class_weights`` (the real
    data's class counts, so the overall mix matches the real one) allows,
    equal numbers when that is None.  ``classes`` names the indices."""

    generator: torch.nn.Module
    count: int
    seed: int = 0
    resolution: tuple[int, int] = (0, 0)
    labels: np.ndarray | None = None
    classes: list[str] = field(default_factory=list)
    class_weights: list[int] | None = None

    def __post_init__(self) -> None:
        k = num_classes(self.generator)
        if k and self.labels is None:
            weights = self.class_weights if self.class_weights and len(self.class_weights) == k else [1] * k
            self.labels = per_class.class_plan(self.count, weights)
        if not k:
            self.labels, self.classes = None, []
        elif not self.classes:
            self.classes = [str(i) for i in range(k)]
        first = self._run(torch.zeros(1, latent_size(self.generator)),
                          None if self.labels is None else self.labels[:1])
        self.resolution = (int(first.shape[-2]), int(first.shape[-1]))

    def _run(self, z: torch.Tensor, y: np.ndarray | None) -> torch.Tensor:
        G = self.generator
        was_training = G.training
        G.eval()
        device = next(G.parameters()).device
        try:
            with torch.no_grad():
                if y is None:
                    out = G(z.to(device))
                else:
                    out = G(z.to(device), torch.as_tensor(y, dtype=torch.int64, device=device))
                x = torch.nan_to_num(out.float(), nan=0.0)
        finally:
            G.train(was_training)
        return ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)

    def batches(self, batch: int) -> Iterator[torch.Tensor]:
        z = torch.randn(self.count, latent_size(self.generator), generator=torch.Generator().manual_seed(self.seed))
        for start in range(0, self.count, batch):
            y = None if self.labels is None else self.labels[start:start + batch]
            yield self._run(z[start:start + batch], y)


def features_of(extractor: FeatureExtractor, images: ImageSet, batch: int) -> np.ndarray:
    return extractor.features(images.batches(batch))
