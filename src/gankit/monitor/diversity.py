"""How varied a batch of images is: the numbers behind the mode-collapse check.

`diversity` is the mean pairwise distance of a batch, `contrast` how far each
image is from flat; `variety_ratio` compares generated with real batches in
units of their own contrast, so faint but independent images are not called
copies.  `class_diversities` does the same within each class of a
conditional run, where a generator that draws one image per class still
looks varied over the whole batch.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch


def contrast(images: torch.Tensor) -> float:
    """Mean over the batch of each image's pixel standard deviation (0 = flat images)."""
    import torch

    x = torch.nan_to_num(images.detach().float().cpu().flatten(1), nan=0.0)
    return float(x.std(dim=1, unbiased=False).mean()) if x.shape[1] > 1 else 0.0


def variety_ratio(fake_div: float, fake_contrast: float, real_div: float, real_contrast: float) -> float:
    """How varied generated images are compared with real ones, each measured in units of
    its own contrast: about 1 for faint-but-independent images, near 0 for copies of one image."""
    eps = 1e-8
    real = real_div / max(real_contrast, eps)
    fake = fake_div / max(fake_contrast, eps) if fake_div > eps else 0.0
    return fake / real if real > 0 else 1.0


def diversity(images: torch.Tensor) -> float:
    """Mean pairwise distance between the images of a batch, as RMS per pixel (0 = all identical)."""
    import torch

    x = images.detach().float().cpu().flatten(1)
    x = torch.nan_to_num(x, nan=0.0)
    b = x.shape[0]
    if b < 2:
        return 0.0
    d = torch.cdist(x, x) / math.sqrt(x.shape[1])
    return float(d.sum() / (b * (b - 1)))


@dataclass
class ClassDiversity:
    """Diversity of one class's generated images and of its real ones."""

    name: str
    fake_div: float
    real_div: float
    fake_contrast: float
    real_contrast: float

    @property
    def ratio(self) -> float:
        return self.fake_div / self.real_div if self.real_div > 0 else 1.0

    @property
    def relative(self) -> float:
        return variety_ratio(self.fake_div, self.fake_contrast, self.real_div, self.real_contrast)

    def collapsed(self, threshold: float) -> bool:
        """The same test as the overall one: alike, and not merely faint."""
        return self.ratio < threshold and self.relative < threshold


def class_diversities(fake: torch.Tensor, real: torch.Tensor, fake_labels: torch.Tensor | Sequence[int],
                      real_labels: torch.Tensor | Sequence[int], names: Sequence[str] | None = None,
                      min_images: int = 4) -> list[ClassDiversity]:
    """One `ClassDiversity` per class with at least ``min_images`` generated and
    real images in the batches (other classes cannot be judged from them)."""
    import torch

    fl = torch.as_tensor(fake_labels).flatten().cpu()
    rl = torch.as_tensor(real_labels).flatten().cpu()
    if len(fl) != len(fake) or len(rl) != len(real):
        raise ValueError(f"labels do not match the batches: {len(fl)} for {len(fake)} generated and "
                         f"{len(rl)} for {len(real)} real images")
    out = []
    for k in sorted(set(fl.tolist()) & set(rl.tolist())):
        f, r = fake[(fl == k).to(fake.device)], real[(rl == k).to(real.device)]
        if len(f) < min_images or len(r) < min_images:
            continue
        name = names[k] if names is not None and 0 <= k < len(names) else f"class {k}"
        out.append(ClassDiversity(name, diversity(f), diversity(r), contrast(f), contrast(r)))
    return out
