"""Feature extractors: one base class and a registry of names.

Every metric here compares two clouds of feature vectors, so the only thing a
metric needs from a network is "images in, (N, D) float64 out".  Keeping that
contract in one base class means a new extractor (CLIP, DINO, ...) is one
subclass and one `register` call, and the stats cache can key on the
extractor's ``id`` (its name plus a hash of its weights) without knowing what
the network is.

Image conventions accepted by `FeatureExtractor.features`:

- NumPy uint8 ``(N, H, W, C)``: the dataset layout;
- torch uint8 ``(N, C, H, W)`` in [0, 255];
- torch float ``(N, C, H, W)`` in [-1, 1]: what generators produce.

Subclasses receive float ``(N, C, H, W)`` in [0, 1] on their device, with C
already converted to ``self.channels`` (grey repeated to RGB, RGB averaged
with luma weights to grey).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from gankit.errors import UsageError

_LUMA = (0.299, 0.587, 0.114)


def to_unit_nchw(images: np.ndarray | torch.Tensor, channels: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Any accepted image batch -> float32 (N, channels, H, W) in [0, 1] on ``device``."""
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8 or images.ndim != 4:
            raise ValueError(f"NumPy images must be uint8 (N, H, W, C), got {images.dtype} {images.shape}")
        arr = np.ascontiguousarray(images)
        arr = arr if arr.flags.writeable else arr.copy()  # memory-mapped datasets are read-only
        # contiguous NCHW: a channels-last view would take other conv kernels and change the last bits
        x = torch.from_numpy(arr).to(device).permute(0, 3, 1, 2).contiguous().float() / 255.0
    elif isinstance(images, torch.Tensor):
        if images.ndim != 4:
            raise ValueError(f"tensor images must be (N, C, H, W), got shape {tuple(images.shape)}")
        if images.dtype == torch.uint8:
            x = images.to(device).contiguous().float() / 255.0
        else:
            x = ((images.to(device).contiguous().float() + 1.0) / 2.0).clamp(0.0, 1.0)
    else:
        raise TypeError(f"expected a NumPy array or a torch tensor, got {type(images).__name__}")
    have = x.shape[1]
    if have == channels:
        return x
    if have == 1 and channels == 3:
        return x.expand(-1, 3, -1, -1)
    if have == 3 and channels == 1:
        w = torch.tensor(_LUMA, device=x.device).view(1, 3, 1, 1)
        return (x * w).sum(1, keepdim=True)
    raise ValueError(f"cannot turn {have}-channel images into {channels}-channel ones")


@contextlib.contextmanager
def _full_fp32() -> Iterator[None]:
    """CUDA may compute float32 convolutions in TF32 (10-bit mantissa); features
    are measured in true float32 so GPU and CPU numbers agree."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


class FeatureExtractor(nn.Module):
    """Images -> (N, ``dim``) float64 features.  Subclasses set ``name``,
    ``dim``, ``channels`` and ``id`` and implement `embed`."""

    name: str = ""
    dim: int = 0
    channels: int = 3
    id: str = ""  # name + weights hash: what the stats cache keys on

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(N, channels, H, W) float in [0, 1] on the extractor's device -> (N, dim)."""
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def train(self, mode: bool = True) -> FeatureExtractor:
        # always in eval mode: batch norm must use its running statistics so
        # that an image's features never depend on the rest of its batch
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: np.ndarray | torch.Tensor) -> np.ndarray:  # type: ignore[override]
        """One batch of images (any accepted convention) -> (N, dim) float64."""
        self.eval()
        with _full_fp32():
            return self.embed(to_unit_nchw(images, self.channels, self.device)).double().cpu().numpy()

    def features(self, batches: Iterable[np.ndarray | torch.Tensor]) -> np.ndarray:
        """Features of every batch, stacked: (N, dim) float64.  Each image is
        embedded on its own (eval mode), so the batching never changes a value."""
        parts = [self(b) for b in batches]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim))

    def describe(self) -> str:
        return f"{self.name} ({self.id}, {self.dim}-d)"


# name -> factory(options) -> FeatureExtractor
_REGISTRY: dict[str, Callable[..., FeatureExtractor]] = {}


def register(name: str, factory: Callable[..., FeatureExtractor]) -> None:
    """Make ``name`` usable as ``--extractor name``."""
    _REGISTRY[name] = factory


def names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get_extractor(name: str, **options: Any) -> FeatureExtractor:
    """Build the extractor ``name``; options are passed to its factory
    (``dataset=``, ``device=``, ``weights=``, ``download=`` ...)."""
    _load_builtin()
    if name not in _REGISTRY:
        raise UsageError(f"--extractor: unknown extractor {name!r}; choose from {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](**options)


def _load_builtin() -> None:
    # imported here so that importing the registry stays cheap and cycle-free
    from gankit.metrics import dataset_encoder, inception  # noqa: F401
