"""A FastGAN-style pair for small data sets (100-5,000 images).

Follows the two ideas of Liu et al. 2021 ("Towards faster and stabilized GAN
training for high-fidelity few-shot image synthesis"), written for gankit's
resolution plans rather than the paper's fixed 256-1024 px towers:

* **Skip-layer excitation (SLE)** in the generator: a low-resolution map is
  pooled to 4x4 and turned into one gate per channel of a map several
  doublings higher up.  The coarse layout (where the subject is) then steers
  the fine layers directly, and gradients reach the early layers along a short
  path, which is what makes the generator train in few steps.
* **A self-supervised discriminator**: small decoders reconstruct the real
  image from D's coarse features (the whole image from the base-x2 map, one
  random quadrant from the base-x4 map).  D must keep a description of the
  image, not only of what tells it from a fake; on a small set this is what
  stops it from memorising the training images and saturating.

Where the paper is specific to its sizes we chose: gates go from the map at
``base*2`` pixels to the one 3 doublings up (4 on plans with 5+ doublings),
at most three gates; the decoders draw half the image side (at most
128 px) and are compared with the real image (or quadrant) resized to that;
the distance is L1 (the paper uses LPIPS, which needs downloaded weights).  The discriminator returns one logit
per image, like every gankit discriminator, so every loss applies.

Shapes are noted for a 64x64 RGB image (plan: 4x4 base, 4 doublings).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gankit.config import IMAGE_LAYERS
from gankit.errors import UsageError
from gankit.models.common import GeneratorBase, Plan, channels_at, init_weights, plan_resolution
from gankit.registry import MODELS


def _up_block(c_in: int, c_out: int) -> nn.Sequential:
    """(B, c_in, h, w) -> (B, c_out, 2h, 2w): 4x4 transposed conv (stride 2), BN, GLU.

    The GLU halves the channels of a 2*c_out conv: one half gates the other.
    The paper upsamples and then runs a 3x3 conv at the doubled size; the
    transposed conv does the same doubling with 4/9 of the multiply-adds and
    measured 1.8-2x faster per block on a CPU (docs/small-data.md)."""
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, 2 * c_out, 4, 2, 1, bias=False),
        nn.BatchNorm2d(2 * c_out),
        nn.GLU(dim=1),
    )


class SkipExcitation(nn.Module):
    """Channel gates for a high-resolution map from a low-resolution one.

    (B, c_low, h, w) -> (B, c_high, 1, 1) in (0, 1), multiplied into the high map."""

    def __init__(self, c_low: int, c_high: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.AdaptiveAvgPool2d(4),  # (B, c_low, 4, 4)
            nn.Conv2d(c_low, c_high, 4, 1, 0, bias=False),  # (B, c_high, 1, 1)
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(c_high, c_high, 1, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return high * self.net(low)


def decoder_doublings(height: int, map_height: int) -> int:
    """Upsamplings from a ``map_height`` map to half the image height (at most 128), at least one.

    64 px from an 8x8 map: 2 (to 32x32); 256 px: 4 (to 128x128)."""
    target, ups = min(height // 2, 128), 1
    while map_height * 2 ** (ups + 1) <= target:
        ups += 1
    return ups


def excitation_pairs(doublings: int) -> list[tuple[int, int]]:
    """(source level, target level) of each gate; level k is the map at base * 2**k pixels.

    The generator keeps feature maps up to level ``doublings - 1`` (its last
    doubling draws the image), so the gates target those: 64 px from a 4x4
    base (4 doublings): [(1, 3)], the 8x8 map gates the 32x32 one; 32 px:
    [(0, 2)]; 256 px (6 doublings): [(1, 5)]; 1024 px: [(1, 5), (2, 6), (3, 7)]."""
    top = doublings - 1
    gap = 4 if top >= 5 else max(2, top - 1)
    first = 1 if top >= 3 else 0
    return [(s, s + gap) for s in range(first, top + 1) if s + gap <= top][:3]


def _refuse(**options: object) -> None:
    """A UsageError naming the first option this model does not have."""
    for flag, value in options.items():
        if value:
            raise UsageError(f"--{flag.replace('_', '-')}: the fastgan model has no such option; drop it "
                             "(or use --model dcgan)")


def check_size(height: int, width: int) -> Plan:
    """The resolution plan, if the decoders have the maps they read (3 doublings or more)."""
    plan = plan_resolution(height, width)
    if plan.doublings < 3:
        raise UsageError(f"--model fastgan: {height}x{width} is too small for its decoders; use 32 px or more "
                         "(sides divisible by 8)")
    return plan


class FastGANGenerator(GeneratorBase):
    """z (B, latent) -> images (B, C, H, W) in [-1, 1]."""

    def __init__(self, height: int = 64, width: int = 64, channels: int = 3, latent: int = 100, base: int = 32,
                 coords: bool = False, attention: int = 0, image_layer: str = "transposed"):
        _refuse(coord_conv=coords, attention=attention)
        if image_layer not in IMAGE_LAYERS:
            raise UsageError(f"--image-layer: must be one of {', '.join(IMAGE_LAYERS)}, got {image_layer!r}")
        super().__init__(height, width, channels, latent)
        plan = plan_resolution(height, width)
        n = plan.doublings
        widths = [channels_at(base, level, n) for level in range(n + 1)]  # 64 px, base 32: 512 256 128 64 32
        # (B, latent, 1, 1) -> (B, 2*w0, h0, w0) -> GLU -> (B, w0, h0, w0)
        self.start = nn.Sequential(
            nn.ConvTranspose2d(latent, 2 * widths[0], (plan.base_h, plan.base_w), 1, 0, bias=False),
            nn.BatchNorm2d(2 * widths[0]),
            nn.GLU(dim=1),
        )
        # levels 1 .. n-1: (B, w_{k-1}, h, w) -> (B, w_k, 2h, 2w), gated by a coarse map where paired
        self.ups = nn.ModuleList(_up_block(widths[k - 1], widths[k]) for k in range(1, n))
        self.pairs = excitation_pairs(n)
        self.gates = nn.ModuleList(SkipExcitation(widths[s], widths[t]) for s, t in self.pairs)
        # the last doubling draws the image: (B, w_{n-1}, H/2, W/2) -> (B, C, H, W).  The paper keeps a
        # feature map at full size and ends in a 3x3 conv; on a CPU the BatchNorm, GLU and conv on that
        # map cost more than the rest of G together (docs/small-data.md), so G draws the image straight
        # from the half-size map: a transposed conv as DCGAN's (each pixel of a 2x2 cell has its own
        # weights), or "upsample": nearest doubling and a 3x3 conv, whose neighbouring pixels share
        # weights, so no checkerboard, at the same speed (docs/presets/small64.md).
        self.to_image: nn.Module
        if image_layer == "upsample":
            self.to_image = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                          nn.Conv2d(widths[n - 1], channels, 3, 1, 1))
        else:
            self.to_image = nn.ConvTranspose2d(widths[n - 1], channels, 4, 2, 1)
        init_weights(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.start(z.view(z.shape[0], -1, 1, 1))
        maps = [x]
        for level, up in enumerate(self.ups, start=1):
            x = up(x)
            for (s, t), gate in zip(self.pairs, self.gates, strict=True):
                if t == level:
                    x = gate(maps[s], x)
            maps.append(x)
        return torch.tanh(self.to_image(x))


def _down_block(c_in: int, c_out: int, norm: bool) -> nn.Sequential:
    """(B, c_in, h, w) -> (B, c_out, h/2, w/2)."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


class Decoder(nn.Module):
    """(B, c, h, w) -> (B, C, h * 2**ups, w * 2**ups) in [-1, 1]: ``ups`` upsample
    blocks (``width`` channels in the last, twice as many in each before) and a conv.

    Small on purpose: it must not be able to reconstruct from features that
    carry no description of the image."""

    def __init__(self, c_in: int, channels: int, width: int = 32, ups: int = 3):
        super().__init__()
        widths = [width * 2 ** (ups - 1 - i) for i in range(ups)]  # ups=3: 4w, 2w, w
        blocks = [_up_block(a, b) for a, b in zip([c_in, *widths[:-1]], widths, strict=True)]
        self.net = nn.Sequential(*blocks, nn.Conv2d(widths[-1], channels, 3, 1, 1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FastGANDiscriminator(nn.Module):
    """images (B, C, H, W) -> logits (B,); with ``reconstruct=True`` also the
    reconstruction loss (a scalar) of the decoders on this batch, which the
    training step adds to D's loss on real images only.

    ``norm='none'`` drops BatchNorm (gradient-penalty losses need per-sample D)."""

    def __init__(self, height: int = 64, width: int = 64, channels: int = 3, base: int = 32, norm: str = "batch",
                 decoder_width: int | None = None, mbstd: int = 0, coords: bool = False, head: int = 0):
        _refuse(mbstd=mbstd, coord_conv=coords, d_head=head)
        super().__init__()
        self.num_classes = 0
        plan = check_size(height, width)
        n = plan.doublings
        self.doublings = n
        widths = [channels_at(base, level, n) for level in range(n + 1)]  # indexed by level, as in G
        use_bn = norm == "batch"
        # level n (H x W) -> level n-1 without norm on the image, then down to the base (level 0)
        downs: list[nn.Module] = [_down_block(channels, widths[n - 1], norm=False)]
        downs += [_down_block(widths[k], widths[k - 1], use_bn) for k in range(n - 1, 0, -1)]
        self.downs = nn.ModuleList(downs)
        self.logit = nn.Conv2d(widths[0], 1, (plan.base_h, plan.base_w), 1, 0)  # (B, w0, h0, w0) -> (B, 1, 1, 1)
        decoder_width = decoder_width or base  # the decoders are as wide as D's last block
        # Both decoders start from maps of the base*2 size (the whole base*2 map, a quadrant of the
        # base*4 one) and draw half the image side, at most 128 px, as the paper does at 256 px:
        # drawing the full side cost 16-20x D's scoring path on a CPU (docs/small-data.md).
        ups = decoder_doublings(height, plan.base_h * 2)
        self.decode_whole = Decoder(widths[1], channels, decoder_width, ups)
        self.decode_part = Decoder(widths[2], channels, decoder_width, ups)
        init_weights(self)

    def features(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """The maps by level: {n-1: ..., ..., 0: base map}."""
        maps = {}
        level = self.doublings
        for down in self.downs:
            x = down(x)
            level -= 1
            maps[level] = x
        return maps

    def forward(self, x: torch.Tensor, reconstruct: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        maps = self.features(x)
        logits = self.logit(maps[0]).flatten()  # (B,)
        if not reconstruct:
            return logits
        return logits, self.reconstruction_loss(x, maps)

    def reconstruction_loss(self, x: torch.Tensor, maps: dict[int, torch.Tensor]) -> torch.Tensor:
        """L1 between the decoders' images and the real image (whole, and one random quadrant).

        The quadrant is drawn from torch's global generator, so a resumed run
        draws the same ones (its state is in the checkpoint)."""
        loss = _l1_at_smaller(self.decode_whole(maps[1].float()), x.float())  # the whole image
        part_map = maps[2].float()  # (B, c2, h2, w2): quadrants of h2/2 x w2/2
        h, w = part_map.shape[-2] // 2, part_map.shape[-1] // 2
        q = int(torch.randint(4, (1,)).item())
        r, c = q // 2, q % 2
        part = self.decode_part(part_map[:, :, r * h:(r + 1) * h, c * w:(c + 1) * w])  # (B, C, 8h, 8w)
        H, W = x.shape[-2] // 2, x.shape[-1] // 2
        return loss + _l1_at_smaller(part, x[:, :, r * H:(r + 1) * H, c * W:(c + 1) * W].float())


def _l1_at_smaller(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of two image batches, the larger area-resized to the smaller."""
    if a.shape[-1] * a.shape[-2] > b.shape[-1] * b.shape[-2]:
        a = F.interpolate(a, size=b.shape[-2:], mode="area")
    elif a.shape[-2:] != b.shape[-2:]:
        b = F.interpolate(b, size=a.shape[-2:], mode="area")
    return F.l1_loss(a, b)


# D's BatchNorm can be switched off; not class-conditional; its D reconstructs real images
# (the training step calls D(real, reconstruct=True) and adds the loss to D's)
MODELS.add("fastgan", generator=FastGANGenerator, discriminator=FastGANDiscriminator, d_norm=True,
           conditional=False, check_size=check_size, reconstructs=True, image_layers=True)
