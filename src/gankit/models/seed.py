"""The Breakout GAN the project grew from.

Generator: z -> Linear -> reshape -> [upsample x2 + 3x3 conv + BN + ReLU] x n
-> 3x3 conv -> Tanh.  Nearest upsampling + conv avoids the checkerboard of
transposed convolutions, which matters for thin walls and brick edges.
Discriminator: [4x4 stride-2 conv + LeakyReLU(0.2)] x n -> flatten -> Linear.
``coords`` wraps every convolution in a CoordConv: it also sees the row and
column of each pixel (D's Linear head already knows positions).
``head`` > 0 puts a hidden layer in D's head (why: see models/dcgan.py);
``attention`` > 0 puts a SelfAttention layer in G after the block whose maps
are that many pixels wide.  ``num_classes`` > 0 makes both conditional
(G(z, y): class-dependent BatchNorm gain and bias; D(x, y): a projection term),
as in models/dcgan.py; 0 builds exactly the unconditional models.
"""
from __future__ import annotations

import torch
from torch import nn

from gankit.models.common import GeneratorBase, SelfAttention, channels_at, coord, generator_layout, init_weights
from gankit.models.conditional import DiscriminatorBase, batch_norm, check_labels, run_conditional
from gankit.registry import MODELS


class SeedGenerator(GeneratorBase):
    def __init__(self, height: int = 64, width: int = 64, channels: int = 3, latent: int = 100, base: int = 64,
                 coords: bool = False, attention: int = 0, num_classes: int = 0):
        super().__init__(height, width, channels, latent, num_classes)
        # block `level` makes maps base_w * 2**(level + 1) wide; the last (full-size) one takes no attention
        plan, attend, c0 = generator_layout(height, width, base, attention, first=1)
        self.start = (c0, plan.base_h, plan.base_w)
        self.fc = nn.Sequential(
            nn.Linear(latent, c0 * plan.base_h * plan.base_w),  # (B, latent) -> (B, c0*h0*w0)
            batch_norm(c0 * plan.base_h * plan.base_w, num_classes, dims=1),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        c_in = c0
        top = plan.doublings - 1
        for level in range(plan.doublings):
            c_out = channels_at(base, level + 1, top) if level < top else base
            blocks += [
                nn.Upsample(scale_factor=2, mode="nearest"),  # (B, c_in, h, w) -> (B, c_in, 2h, 2w)
                coord(coords, nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False)),  # -> (B, c_out, 2h, 2w)
                batch_norm(c_out, num_classes),
                nn.ReLU(inplace=True),
            ]
            if attend == level:
                blocks.append(SelfAttention(c_out))  # (B, c_out, 2h, 2w) -> same
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        # (B, c, H, W) -> (B, C, H, W) in [-1, 1]
        self.to_rgb = nn.Sequential(coord(coords, nn.Conv2d(c_in, channels, 3, 1, 1)), nn.Tanh())
        init_weights(self)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        check_labels(y, self.num_classes, "this generator")
        x = run_conditional(self.fc, z, y).view(z.shape[0], *self.start)  # (B, c0, h0, w0)
        return self.to_rgb(run_conditional(self.blocks, x, y))  # (B, C, H, W)


class SeedDiscriminator(DiscriminatorBase):
    def __init__(self, height: int = 64, width: int = 64, channels: int = 3, base: int = 64, mbstd: int = 0,
                 coords: bool = False, head: int = 0, num_classes: int = 0):
        super().__init__(height, width, num_classes)
        layers: list[nn.Module] = []
        convs: list[nn.Conv2d] = []
        for c_in, c_out in self.levels(channels, base):
            # (B, c_in, h, w) -> (B, c_out, h/2, w/2), with a bias: no BatchNorm follows
            convs.append(nn.Conv2d(c_in, c_out, 4, 2, 1))
            layers += [coord(coords, convs[-1]), nn.LeakyReLU(0.2, inplace=True)]
        c_in = self.add_mbstd(layers, mbstd, c_out)
        self.features = nn.Sequential(*layers)
        flat = c_in * self.plan.base_h * self.plan.base_w
        self.head: nn.Module
        if head:
            # (B, c*h0*w0) -> (B, head) -> (B, 1)
            self.head = nn.Sequential(nn.Linear(flat, head), nn.LeakyReLU(0.2, inplace=True), nn.Linear(head, 1))
        else:
            self.head = nn.Linear(flat, 1)  # (B, c*h0*w0) -> (B, 1)
        # Without normalisation, N(0, 0.02) shrinks the signal ~10x per layer: at 64 px every image got the
        # same logit (sd 4e-5 over a batch) and D learnt nothing for the first ~10 kimg.  He init keeps
        # the features' scale through the LeakyReLUs (docs/presets/seed-breakout.md).
        self.finish(c_in, he_init=convs)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        check_labels(y, self.num_classes, "this discriminator")
        features = self.features(x)  # (B, c, h0, w0)
        logits = self.head(features.flatten(1)).squeeze(1)  # (B,) logits
        return logits if y is None else logits + self.projection(features, y)


# D has no BatchNorm to switch off; conditional: both take num_classes (G(z, y), D(x, y))
MODELS.add("seed", generator=SeedGenerator, discriminator=SeedDiscriminator, d_norm=False, conditional=True,
           check_size=SeedDiscriminator.check_size)
