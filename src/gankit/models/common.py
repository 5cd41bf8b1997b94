"""Pieces both architectures share: the resolution plan and DCGAN init."""
from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
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


class GeneratorBase(nn.Module):
    """What every gankit generator declares: the image size it draws, the
    length of its latent vector and its classes (0: unconditional)."""

    def __init__(self, height: int, width: int, channels: int, latent: int, num_classes: int = 0):
        super().__init__()
        self.latent, self.height, self.width, self.channels = latent, height, width, channels
        self.num_classes = num_classes


def latent_size(G: nn.Module) -> int:
    """Length of a generator's latent vector (every gankit generator sets ``latent``)."""
    return cast(int, G.latent)  # a plain int attribute; Module.__getattr__ is typed Tensor | Module


def class_count(G: nn.Module) -> int:
    """Classes a generator is conditioned on: 0 for an unconditional one (or one from before labels)."""
    return int(getattr(G, "num_classes", 0) or 0)


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
    for m in module.modules():  # attention keeps PyTorch's own init (gamma = 0 makes it a no-op at first)
        if isinstance(m, SelfAttention):
            m.reset_parameters()


class MinibatchStd(nn.Module):
    """ProGAN's minibatch standard deviation: one extra feature map holding how
    much the samples of a small group differ from each other.

    Why: a generator that draws the same thing (or the same blurred average of
    things, such as a paddle smeared over several places) in every sample
    hides nothing from a per-sample discriminator; with this feature D sees
    that a group of fakes varies less than a group of real images.

    (B, C, H, W) -> (B, C + 1, H, W).  Groups are samples i, i + B/g, ...;
    ``g`` is the largest divisor of B not above ``group``, so any batch size
    works (a batch of one gets zeros).
    """

    def __init__(self, group: int = 4):
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        g = max(d for d in range(1, min(self.group, B) + 1) if B % d == 0)
        y = x.float().reshape(g, B // g, C, H, W)
        # The variance written out: Tensor.var over this leading dimension is ~10x slower on a CPU.
        y = y - y.mean(dim=0)
        y = (y.square().mean(dim=0) + 1e-8).sqrt()  # (B/g, C, H, W): spread within each group
        y = y.mean(dim=(1, 2, 3)).reshape(B // g, 1, 1, 1)  # (B/g, 1, 1, 1): one number per group
        y = y.repeat(g, 1, H, W).to(x.dtype)  # (B, 1, H, W): sample i gets its group's number
        return torch.cat([x, y], dim=1)


def coord_maps(height: int, width: int, device: torch.device | str = "cpu",
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(1, 2, H, W): each pixel's row and column, each from -1 to 1."""
    rows = torch.linspace(-1.0, 1.0, height, device=device, dtype=dtype).view(1, 1, height, 1)
    cols = torch.linspace(-1.0, 1.0, width, device=device, dtype=dtype).view(1, 1, 1, width)
    return torch.cat([rows.expand(1, 1, height, width), cols.expand(1, 1, height, width)], dim=1)


class CoordConv(nn.Module):
    """CoordConv (Liu et al. 2018): a convolution that also sees each pixel's
    row and column as two extra input channels.

    Why: a convolution cannot tell where it is, so a convolutional generator
    asked to put a small object at a place that depends on z tends to fade
    copies in and out at several places instead of moving one (Breakout's
    paddle drawn faintly, or twice); with the coordinates as inputs, "where"
    becomes something a layer can compute.  In D they let "a paddle in the
    bottom rows" be one feature.

    The maps are the same for every sample and a convolution is linear in its
    input channels, so conv([x, maps]) is computed as conv(x) + xy(maps) with
    ``xy`` run once on a (1, 2, h, w) input and broadcast over the batch:
    the same function and parameters as concatenating, without copying the
    batch (concatenating cost ~20% of a CPU step of the breakout preset, this ~10%).

    (B, C, h, w) -> whatever ``conv`` gives for it.
    """

    def __init__(self, conv: nn.Conv2d | nn.ConvTranspose2d):
        super().__init__()
        self.conv = conv
        # torch types a built conv's kernel_size/stride/padding as tuple[int, ...]; they are the 2-tuples it took
        self.xy = type(conv)(2, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,  # type: ignore[arg-type]
                             bias=False)
        # The maps for the last input seen: made once, not every step.  A plain
        # attribute, not a buffer, so checkpoints and DDP's buffer sync skip it.
        self._maps: torch.Tensor | None = None

    def _coord_maps(self, x: torch.Tensor, channels_last: bool) -> torch.Tensor:
        """(1, 2, h, w) maps matching x's size, device, dtype and y's layout."""
        maps = self._maps
        if (maps is None or maps.shape[2:] != x.shape[2:] or maps.device != x.device or maps.dtype != x.dtype
                or maps.is_contiguous(memory_format=torch.channels_last) != channels_last):
            maps = coord_maps(x.shape[2], x.shape[3], x.device, x.dtype)
            if channels_last:  # keep y's layout through the add
                maps = maps.contiguous(memory_format=torch.channels_last)
            self._maps = maps
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)  # (B, c_out, h', w')
        channels_last = y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous()
        return _AddOverBatch.apply(y, self.xy(self._coord_maps(x, channels_last)))  # + (1, c_out, h', w')


class _AddOverBatch(torch.autograd.Function):
    """y (B, C, h, w) + b (1, C, h, w), whose backward sums the gradient over
    the batch as a (B, n) matrix in memory order.

    Why: autograd's own reduction of a broadcast add over dim 0 took ~1.7 ms
    for a (16, 32, 32, 32) CPU tensor, 30x longer than this, and CoordConv
    pays it on every convolution of every step.  The backward is made of
    differentiable ops, so double backward (R1) still works.
    """

    @staticmethod
    def forward(ctx, y: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return y + b

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        B, C, h, w = grad.shape
        if grad.is_contiguous(memory_format=torch.channels_last) and not grad.is_contiguous():
            rows = grad.permute(0, 2, 3, 1).reshape(B, -1)  # (B, h*w*C), a view
            grad_b = rows.sum(dim=0).view(1, h, w, C).permute(0, 3, 1, 2)  # (1, C, h, w), channels_last
        else:
            grad_b = grad.reshape(B, -1).sum(dim=0).view(1, C, h, w)
        return grad, grad_b


class _DenseMixin:
    """Keeps the weight in plain (NCHW) order when the model moves to
    channels_last: it is used as a matrix, and a channels_last weight would be
    copied into one (and its gradient back) on every call."""

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        super()._apply(fn, recurse)  # type: ignore[misc]
        if not self.weight.is_contiguous():  # type: ignore[attr-defined]
            self.weight.data = self.weight.data.contiguous()  # type: ignore[attr-defined]
        return self


class DenseConv2d(_DenseMixin, nn.Conv2d):
    """A convolution whose kernel covers its whole input, (B, C, kh, kw) ->
    (B, out, 1, 1): DCGAN's last D layer, or the hidden layer over D's last
    map and the 1x1 one after it.

    Computed as one matrix product on the flattened input when the input is
    exactly the kernel's size (~5x faster on a CPU than the convolution
    routine, which handles a 1x1 output badly); same parameters and
    state_dict as nn.Conv2d, and any other input size is a plain convolution.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.shape[2:] != self.weight.shape[2:] or self.padding != (0, 0) or self.dilation != (1, 1)
                or self.groups != 1):
            return super().forward(x)
        y = F.linear(x.flatten(1), self.weight.flatten(1), self.bias)  # (B, C*kh*kw) -> (B, out)
        return y[:, :, None, None]  # (B, out, 1, 1)


class DenseConvTranspose2d(_DenseMixin, nn.ConvTranspose2d):
    """A transposed convolution from a 1x1 input to a (kh, kw) map: DCGAN's
    first G layer, (B, latent, 1, 1) -> (B, out, kh, kw), computed as one
    matrix product (same parameters and state_dict as nn.ConvTranspose2d)."""

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if (x.shape[2:] != (1, 1) or output_size is not None or self.stride != (1, 1) or self.padding != (0, 0)
                or self.dilation != (1, 1) or self.groups != 1):
            return super().forward(x, output_size)
        B = x.shape[0]
        y = x.flatten(1) @ self.weight.flatten(1)  # (B, latent) @ (latent, out*kh*kw)
        y = y.view(B, *self.weight.shape[1:])  # (B, out, kh, kw)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return y


def coord(coords: bool, conv: nn.Conv2d | nn.ConvTranspose2d) -> nn.Module:
    """``conv`` wrapped in a CoordConv when ``coords`` is on, else ``conv``."""
    return CoordConv(conv) if coords else conv


class SelfAttention(nn.Module):
    """Self-attention over a feature map (SAGAN, Zhang et al. 2019), added to
    its input through a learnt gate ``gamma`` that starts at 0.

    Why: convolutions only relate nearby pixels, so "exactly one paddle,
    somewhere along the bottom" is a constraint no layer of a small
    convolutional generator sees whole; one attention layer lets every
    position look at every other.  Queries and keys have C/8 channels, as in
    SAGAN; the dot products are not scaled, also as there.

    (B, C, h, w) -> (B, C, h, w).  Costs O((h*w)^2) per sample: put it on a
    small map (16x16 is 256 positions).
    """

    def __init__(self, channels: int):
        super().__init__()
        inner = max(channels // 8, 1)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(()))

    def reset_parameters(self) -> None:
        for conv in (self.query, self.key, self.value):
            conv.reset_parameters()
        nn.init.zeros_(self.gamma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2).unsqueeze(1)  # (B, 1, hw, C/8)
        k = self.key(x).flatten(2).transpose(1, 2).unsqueeze(1)  # (B, 1, hw, C/8)
        v = self.value(x).flatten(2).transpose(1, 2).unsqueeze(1)  # (B, 1, hw, C)
        out = F.scaled_dot_product_attention(q, k, v, scale=1.0)  # (B, 1, hw, C): softmax(q k^T) v
        out = out.squeeze(1).transpose(1, 2).reshape(B, C, h, w)
        return x + self.gamma * out


def generator_layout(height: int, width: int, base: int, attention: int, first: int) -> tuple[Plan, int | None, int]:
    """What a doubling generator needs before its first layer: the plan, the
    block after which ``--attention`` puts SelfAttention (None: none) and the
    first block's channels.  Block k's maps are ``base_w * 2**(first + k)``
    wide: ``first`` 0 when the start block may take attention (dcgan), 1 when
    only upsampled maps may (seed)."""
    plan = plan_resolution(height, width)
    n = plan.doublings
    attend = attention_at(attention, [plan.base_w * 2 ** level for level in range(first, n)])
    return plan, attend, channels_at(base, 0, n - 1)


def attention_at(size: int, widths: list[int]) -> int | None:
    """Index into ``widths`` (the feature-map widths a model goes through) of
    the map ``size`` pixels wide that gets a SelfAttention; None for size 0."""
    if not size:
        return None
    if size not in widths:
        raise UsageError(f"--attention: no {size}-pixel-wide feature map in this model; "
                         f"choose one of {sorted(set(widths))} (or 0 for none)")
    return widths.index(size)
