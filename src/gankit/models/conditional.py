"""The class-conditional pieces of gankit's models (issue 20): class-dependent
BatchNorm for generators and the projection term for discriminators.

Why here and not in each model: `dcgan` and `seed` (and any model added later)
condition the same way, so a model becomes conditional by building its
BatchNorm layers with `batch_norm` and adding a `Projection` to D's features.
With ``num_classes`` 0 both give exactly the unconditional layers.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from gankit.models.common import MinibatchStd, channels_at, init_weights, plan_resolution


class ConditionalBatchNorm(nn.Module):
    """BatchNorm whose gain and bias depend on the class (de Vries et al.
    2017; the conditioning of SNGAN's and BigGAN's generators).

    Why: the class reaches every block of the generator, not only its input,
    so a coarse layout (Pong's two paddles) and fine texture (Breakout's
    bricks) both follow it.  The statistics are shared by all classes (plain
    BatchNorm without affine); gain = 1 + embed_gain(y) starts at DCGAN's
    N(1, 0.02), bias = embed_bias(y) at 0.

    (B, C) or (B, C, H, W) with y (B,) int64 -> same shape.
    """

    def __init__(self, channels: int, num_classes: int, dims: int = 2):
        super().__init__()
        self.bn = (nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d)(channels, affine=False)
        self.gain = nn.Embedding(num_classes, channels)
        self.bias = nn.Embedding(num_classes, channels)
        nn.init.normal_(self.gain.weight, 0.0, 0.02)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``y``: (B,) int64 classes, or (B, num_classes) float class weights (a
        mix of classes: `gankit interpolate --class-from A --class-to B`)."""
        shape = (x.shape[0], -1) + (1,) * (x.ndim - 2)  # (B, C, 1, 1) for maps, (B, C) for vectors
        if y.is_floating_point():  # an embedding lookup is one_hot(y) @ weight; this is its linear extension
            gain, bias = y @ self.gain.weight, y @ self.bias.weight  # (B, C)
        else:
            gain, bias = self.gain(y), self.bias(y)  # (B, C)
        return self.bn(x) * (1.0 + gain).view(shape).to(x.dtype) + bias.view(shape).to(x.dtype)


def batch_norm(channels: int, num_classes: int, dims: int = 2) -> nn.Module:
    """Plain BatchNorm for an unconditional generator (its parameters and
    init unchanged), ConditionalBatchNorm for a conditional one."""
    if num_classes:
        return ConditionalBatchNorm(channels, num_classes, dims)
    return nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm1d(channels)


def run_conditional(layers: nn.Sequential, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """``layers(x)``, handing ``y`` to every ConditionalBatchNorm on the way."""
    if y is None:
        return layers(x)
    for layer in layers:
        x = layer(x, y) if isinstance(layer, ConditionalBatchNorm) else layer(x)
    return x


class Projection(nn.Module):
    """The class term of a projection discriminator (Miyato & Koyama 2018):
    <embed(y), sum over positions of D's last features>, added to D's logit.

    Why projection and not concatenating y to the input: D's score then
    measures how well the image's features match *this* class's direction,
    the form the log-density ratio of a class-conditional model takes; it is
    what SNGAN and BigGAN use.  ``--spectral-norm`` normalises D's Linear and
    convolution layers only: this embedding keeps its N(0, 0.02) scale.

    features (B, C, h, w) or (B, C), y (B,) -> (B,).
    """

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.embed = nn.Embedding(num_classes, channels)
        nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, features: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        pooled = features.float().flatten(2).sum(2) if features.ndim == 4 else features.float()  # (B, C)
        return (self.embed(y).float() * pooled).sum(1)


def check_labels(y: torch.Tensor | None, num_classes: int, who: str) -> None:
    """A clear error when a conditional model is called without classes (or the other way round)."""
    if num_classes and y is None:
        raise TypeError(f"{who} is conditional ({num_classes} classes): call it with class indices y (B,) too")
    if not num_classes and y is not None:
        raise TypeError(f"{who} is unconditional: call it without y")


class DiscriminatorBase(nn.Module):
    """What the down-sampling discriminators share: the resolution plan, the
    channels of each stride-2 level, the optional minibatch-std map, and the
    projection term, made last so that the unconditional parameters are drawn
    exactly as without classes."""

    check_size = staticmethod(plan_resolution)  # the sizes this family builds (MODELS' check_size)

    def __init__(self, height: int, width: int, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.plan = plan_resolution(height, width)

    def levels(self, channels: int, base: int) -> list[tuple[int, int]]:
        """(in, out) channels of each stride-2 level: channels -> ... -> up to 8*base."""
        n = self.plan.doublings
        outs = [channels_at(base, n - 1 - level, n - 1) for level in range(n)]  # base, 2*base, ... (capped)
        return list(zip([channels, *outs[:-1]], outs))

    @staticmethod
    def add_mbstd(layers: list[nn.Module], group: int, channels: int) -> int:
        """Append a MinibatchStd map when ``group`` > 0; the channel count after it."""
        if not group:
            return channels
        layers.append(MinibatchStd(group))  # (B, c, h0, w0) -> (B, c + 1, h0, w0)
        return channels + 1

    def finish(self, features: int, he_init: Sequence[nn.Conv2d] = ()) -> None:
        """DCGAN init (``he_init``'s convolutions: He init for LeakyReLU(0.2)
        instead), then the projection reading ``features``-channel maps
        (B, c, h0, w0) -> (B,)."""
        init_weights(self)
        for conv in he_init:
            nn.init.kaiming_normal_(conv.weight, a=0.2, nonlinearity="leaky_relu")
        if self.num_classes:
            self.projection = Projection(features, self.num_classes)
