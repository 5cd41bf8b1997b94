"""Pieces both architectures share: the resolution plan and DCGAN init."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from gankit.errors import UsageError


@dataclass(frozen=True)
class Plan:
    """How a model reaches an H x W image: ``doublings`` upsamplings from a
    ``base_h`` x ``base_w`` start (64x64 -> 4 doublings from 4x4; 84x64 -> 2
    doublings from 21x16)."""

    height: int
    width: int
    doublings: int

    @property
    def base_h(self) -> int:
        return self.height >> self.doublings

    @property
    def base_w(self) -> int:
        return self.width >> self.doublings


def plan_resolution(height: int, width: int, min_base: int = 4, max_base: int = 32) -> Plan:
    """Largest number of x2 steps that keeps both sides integral and >= min_base.

    Every power of two from 16 to 256 works, and so do non-square frames whose
    sides share a factor of 4 (84x64, 160x128).  Anything else raises a
    UsageError that says why.
    """
    n = 0
    while (height % (2 ** (n + 1)) == 0 and width % (2 ** (n + 1)) == 0
           and min(height, width) // 2 ** (n + 1) >= min_base):
        n += 1
    plan = Plan(height, width, n)
    if n < 2:
        raise UsageError(
            f"--resolution: cannot build a model for {height}x{width}: both sides must be divisible by 4 "
            f"and at least {4 * min_base} (try 64, 128 or 84x64)"
        )
    if max(plan.base_h, plan.base_w) > max_base:
        raise UsageError(
            f"--resolution: {height}x{width} would start from a {plan.base_h}x{plan.base_w} grid, too large "
            f"(sides must share more factors of two; try 64 or 84x64)"
        )
    return plan


def channels_at(width: int, level: int, top: int, cap: int = 8) -> int:
    """Channel count at a level: ``width * 2**(top - level)``, capped at cap*width."""
    return width * min(cap, 2 ** max(0, top - level))


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation: conv/linear weights N(0, 0.02), BN weights N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
            if m.weight is not None:
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)
