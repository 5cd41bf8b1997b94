"""Exponential moving average of the generator's weights.

The decay is set by a half-life in images (StyleGAN's convention), so it does
not change meaning when the batch size does: after ``half_life_kimg * 1000``
images an old weight counts half.  Buffers (BatchNorm statistics) are copied.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, generator: nn.Module, half_life_kimg: float):
        self.half_life_kimg = half_life_kimg
        self.model = copy.deepcopy(generator).eval().requires_grad_(False)

    def beta(self, images: int) -> float:
        if self.half_life_kimg <= 0:
            return 0.0
        return 0.5 ** (images / (self.half_life_kimg * 1000.0))

    @torch.no_grad()
    def update(self, generator: nn.Module, images: int) -> None:
        """Move toward ``generator`` after it has seen ``images`` more images."""
        weight = 1.0 - self.beta(images)
        ema_p: list[torch.Tensor] = list(self.model.parameters())
        src_p = [p.detach() for p in generator.parameters()]
        torch._foreach_lerp_(ema_p, src_p, weight)
        for b_ema, b in zip(self.model.buffers(), generator.buffers()):
            b_ema.copy_(b)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)
