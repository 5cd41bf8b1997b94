"""DCGAN (Radford et al. 2016): transposed-convolution generator, strided
convolution discriminator, BatchNorm in both, no pooling, no dense layers but
the ends.  Generalised from the fixed 64x64 recipe to any `plan_resolution`.

The discriminator's BatchNorm is replaced by nothing when ``norm='none'``
(required by gradient-penalty losses, which treat each sample on its own);
``mbstd`` > 0 adds a minibatch-standard-deviation map before its last layer;
``head`` > 0 makes that last layer a small MLP (features -> head units ->
LeakyReLU -> logit): a linear last layer scores two objects further apart than
one feature cell sees as the sum of each, so it can ask G for more or fewer
Breakout paddles but never for exactly one.
``coords`` wraps every convolution but G's first (which sees only z) in a
CoordConv: it also sees the row and column of each pixel.  ``attention`` > 0
puts a SelfAttention layer in G after the block whose maps are that many
pixels wide.  ``num_classes`` > 0 makes both conditional (G(z, y), D(x, y)):
every BatchNorm of G takes a class-dependent gain and bias, and D adds a
projection term to its logit (see models/conditional.py); 0 builds exactly the
unconditional models, parameter for parameter.
"""
from __future__ import annotations

import torch
from torch import nn

from gankit.models.common import (
    DenseConv2d,
    DenseConvTranspose2d,
    GeneratorBase,
    SelfAttention,
    channels_at,
    coord,
    generator_layout,
    init_weights,
)
from gankit.models.conditional import DiscriminatorBase, batch_norm, check_labels, run_conditional
from gankit.registry import MODELS


class DCGANGenerator(GeneratorBase):
    def __init__(self, height: int = 64, width: int = 64, channels: int = 3, latent: int = 100, base: int = 64,
                 coords: bool = False, attention: int = 0, num_classes: int = 0):
        super().__init__(height, width, channels, latent, num_classes)
        plan, attend, c0 = generator_layout(height, width, base, attention, first=0)
        n = plan.doublings
        layers: list[nn.Module] = [
            # (B, latent, 1, 1) -> (B, c0, h0, w0)
            DenseConvTranspose2d(latent, c0, (plan.base_h, plan.base_w), 1, 0, bias=False),
            batch_norm(c0, num_classes),
            nn.ReLU(True),
        ]
        if attend == 0:
            layers.append(SelfAttention(c0))  # (B, c0, h0, w0) -> same
        c_in = c0
        for level in range(1, n):
            c_out = channels_at(base, level, n - 1)
            layers += [
                # (B, c_in, h, w) -> (B, c_out, 2h, 2w)
                coord(coords, nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False)),
                batch_norm(c_out, num_classes),
                nn.ReLU(True),
            ]
            if attend == level:
                layers.append(SelfAttention(c_out))  # (B, c_out, 2h, 2w) -> same
            c_in = c_out
        # The output layer keeps a bias (the 2016 recipe has none): a flat
        # background such as Atari's black is then one number to learn.
        layers += [coord(coords, nn.ConvTranspose2d(c_in, channels, 4, 2, 1)), nn.Tanh()]  # -> (B, C, H, W) in [-1, 1]
        self.net = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        check_labels(y, self.num_classes, "this generator")
        return run_conditional(self.net, z.view(z.shape[0], -1, 1, 1), y)


class DCGANDiscriminator(DiscriminatorBase):
    def __init__(self, height: int = 64, width: int = 64, channels: int = 3, base: int = 64, norm: str = "batch",
                 mbstd: int = 0, coords: bool = False, head: int = 0, num_classes: int = 0):
        super().__init__(height, width, num_classes)
        plan = self.plan
        layers: list[nn.Module] = []
        for level, (c_in, c_out) in enumerate(self.levels(channels, base)):
            # (B, c_in, h, w) -> (B, c_out, h/2, w/2); the first level has no BatchNorm, as in the paper
            layers.append(coord(coords, nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False)))
            if level > 0 and norm == "batch":
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        c_in = self.add_mbstd(layers, mbstd, c_out)
        self.head_at = len(layers)  # net[:head_at] makes the features the projection reads
        if head:
            # (B, c, h0, w0) -> (B, head, 1, 1) -> (B, 1, 1, 1): a hidden layer over the whole map
            layers += [coord(coords, DenseConv2d(c_in, head, (plan.base_h, plan.base_w), 1, 0)),
                       nn.LeakyReLU(0.2, inplace=True), DenseConv2d(head, 1, 1)]
        else:
            # (B, c, h0, w0) -> (B, 1, 1, 1)
            layers.append(coord(coords, DenseConv2d(c_in, 1, (plan.base_h, plan.base_w), 1, 0, bias=False)))
        self.net = nn.Sequential(*layers)
        self.finish(c_in)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        check_labels(y, self.num_classes, "this discriminator")
        if y is None:
            return self.net(x).flatten()  # (B,) logits
        features = self.net[: self.head_at](x)  # (B, c, h0, w0)
        return self.net[self.head_at :](features).flatten() + self.projection(features, y)  # (B,) logits


# D's BatchNorm can be switched off (norm="none"): losses and spectral norm that need it off say so;
# conditional: both take num_classes (G(z, y), D(x, y))
MODELS.add("dcgan", generator=DCGANGenerator, discriminator=DCGANDiscriminator, d_norm=True, conditional=True,
           check_size=DCGANDiscriminator.check_size)
