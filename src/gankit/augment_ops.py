"""The differentiable image operations of `gankit.augment`, registered by name.

Each DiffAugment operation registers itself in `gankit.registry.DIFFAUGMENT_OPS`
under its ``--diffaugment`` name and maps (x, strength, generator) -> x; each
ADA operation registers in `gankit.registry.ADA_OPS` under its ``--ada-ops``
name and maps (x, apply, generator) -> x.  Registration order is the order
``--help`` lists them.  A new operation is one registered function here plus
its test.

Random parameters are drawn per image as tensors from ``generator`` (which may
live on the CPU while the images are on CUDA) and applied with gathers and
masks, never with a Python loop over the batch.
"""
from __future__ import annotations

import math

import torch

from gankit.registry import ADA_OPS, DIFFAUGMENT_OPS

TRANSLATION_RATIO = 1 / 8  # largest shift, as a fraction of each side
CUTOUT_RATIO = 1 / 2  # side of the erased rectangle, as a fraction of each side


# ------------------------------------------------------------ random draws
def draw(kind: str, shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None,
          low: int = 0, high: int = 1) -> torch.Tensor:
    """Random numbers on the generator's device, moved to ``like``'s device."""
    device = generator.device if generator is not None else like.device
    if kind == "rand":
        out = torch.rand(shape, generator=generator, device=device)
    elif kind == "randn":
        out = torch.randn(shape, generator=generator, device=device)
    else:
        out = torch.randint(low, high, shape, generator=generator, device=device)
    return out.to(like.device)


def check_images(x: torch.Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"augmentation expects images of shape (B, C, H, W), got {tuple(x.shape)}")


# -------------------------------------------------------- shared operations
def _color(x: torch.Tensor, brightness: torch.Tensor, saturation: torch.Tensor, contrast: torch.Tensor) -> torch.Tensor:
    """Brightness offset, then saturation and contrast factors, per image.

    Each parameter has shape (B, 1, 1, 1); 0 / 1 / 1 leave an image unchanged.
    Saturation scales each pixel's distance from its channel mean, so it is a
    no-op on one-channel images; contrast scales each image's distance from
    its overall mean.
    """
    x = x + brightness.to(x.dtype)
    if x.shape[1] > 1:
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * saturation.to(x.dtype) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * contrast.to(x.dtype) + mean


def _reflect(index: torch.Tensor, n: int) -> torch.Tensor:
    """Mirror out-of-range indices back inside [0, n) (shift < n assumed)."""
    index = index.abs()
    return torch.where(index >= n, 2 * (n - 1) - index, index)


def _translate(x: torch.Tensor, dy: torch.Tensor | None, dx: torch.Tensor, pad: str) -> torch.Tensor:
    """Shift image b by (dy[b], dx[b]) pixels; uncovered pixels are 0 or mirrored.

    dy, dx: (B,) integer tensors; ``dy=None`` shifts sideways only (one gather
    fewer).  Implemented as gathers, so it is differentiable w.r.t. x and costs
    the same for any batch size.
    """
    B, C, H, W = x.shape
    cols = torch.arange(W, device=x.device)[None, :] - dx[:, None]  # (B, W) source column of each output column
    rows = None if dy is None else torch.arange(H, device=x.device)[None, :] - dy[:, None]  # (B, H)
    if pad == "reflection":
        cols = _reflect(cols, W)
        rows = None if rows is None else _reflect(rows, H)
        valid = None
    else:
        valid = ((cols >= 0) & (cols < W))[:, None, None, :]
        cols = cols.clamp(0, W - 1)
        if rows is not None:
            valid = valid & ((rows >= 0) & (rows < H))[:, None, :, None]
            rows = rows.clamp(0, H - 1)
    out = x if rows is None else x.gather(2, rows[:, None, :, None].expand(B, C, H, W))
    out = out.gather(3, cols[:, None, None, :].expand(B, C, H, W))
    return out if valid is None else out * valid.to(x.dtype)


def _max_shift(side: int, strength: float) -> int:
    return min(side - 1, int(side * TRANSLATION_RATIO * strength + 0.5))


def _random_shifts(x: torch.Tensor, strength: float,
                   generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    B, _, H, W = x.shape
    my, mx = _max_shift(H, strength), _max_shift(W, strength)
    dy = draw("randint", (B,), x, generator, -my, my + 1)
    dx = draw("randint", (B,), x, generator, -mx, mx + 1)
    return dy, dx


def _cutout(x: torch.Tensor, strength: float, generator: torch.Generator | None,
            apply: torch.Tensor | None = None) -> torch.Tensor:
    """Zero a rectangle of (H/2, W/2) * strength centred at a random pixel
    (it may hang over the border).  ``apply``: optional (B,) bool mask of the
    images to erase."""
    B, _, H, W = x.shape
    sh, sw = min(H, int(H * CUTOUT_RATIO * strength + 0.5)), min(W, int(W * CUTOUT_RATIO * strength + 0.5))
    cy = draw("randint", (B,), x, generator, 0, H)
    cx = draw("randint", (B,), x, generator, 0, W)
    if sh == 0 or sw == 0:
        return x
    top, left = cy - sh // 2, cx - sw // 2
    r = torch.arange(H, device=x.device)[None, :] - top[:, None]  # (B, H)
    c = torch.arange(W, device=x.device)[None, :] - left[:, None]  # (B, W)
    hole = ((r >= 0) & (r < sh))[:, None, :, None] & ((c >= 0) & (c < sw))[:, None, None, :]  # (B, 1, H, W)
    if apply is not None:
        hole = hole & apply[:, None, None, None]
    return x * (~hole).to(x.dtype)


# --------------------------------------------------------------- DiffAugment
# Each operation registers itself under its --diffaugment name (registration
# order is the order `--help` lists them) and maps (x, strength, generator) -> x.
@DIFFAUGMENT_OPS.register("color")
def _diff_color(x: torch.Tensor, strength: float, generator: torch.Generator | None) -> torch.Tensor:
    u = draw("rand", (3, x.shape[0], 1, 1, 1), x, generator)
    return _color(x, (u[0] - 0.5) * strength, 1 + (2 * u[1] - 1) * strength, 1 + (u[2] - 0.5) * strength)


@DIFFAUGMENT_OPS.register("translation")
def _diff_translation(x: torch.Tensor, strength: float, generator: torch.Generator | None) -> torch.Tensor:
    dy, dx = _random_shifts(x, strength, generator)
    return _translate(x, dy, dx, pad="zeros")


@DIFFAUGMENT_OPS.register("translation_x")
def _diff_translation_x(x: torch.Tensor, strength: float, generator: torch.Generator | None) -> torch.Tensor:
    _, dx = _random_shifts(x, strength, generator)  # dy drawn all the same: the random stream matches translation's
    return _translate(x, None, dx, pad="zeros")


@DIFFAUGMENT_OPS.register("cutout")
def _diff_cutout(x: torch.Tensor, strength: float, generator: torch.Generator | None) -> torch.Tensor:
    return _cutout(x, strength, generator)


# ------------------------------------------------------ adaptive augmentation
# Each ADA operation registers itself under its --ada-ops name and maps
# (x, apply, generator) -> x, changing only the images where the (B,) bool
# mask ``apply`` is set; it draws the same random numbers whatever the mask.
@ADA_OPS.register("flip")
def _ada_flip(x: torch.Tensor, apply: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.where(apply[:, None, None, None], x.flip(3), x)


@ADA_OPS.register("translation")
def _ada_translation(x: torch.Tensor, apply: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    dy, dx = _random_shifts(x, 1.0, generator)
    return _translate(x, dy * apply, dx * apply, pad="reflection")


@ADA_OPS.register("color")
def _ada_color(x: torch.Tensor, apply: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    n = draw("randn", (3, x.shape[0], 1, 1, 1), x, generator)
    coloured = _color(x, n[0] * 0.2, torch.exp(n[2] * math.log(2)), torch.exp(n[1] * (0.5 * math.log(2))))
    return torch.where(apply[:, None, None, None], coloured, x)  # exact identity where skipped


@ADA_OPS.register("cutout")
def _ada_cutout(x: torch.Tensor, apply: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return _cutout(x, 1.0, generator, apply=apply)
