"""Generators and discriminators, built by name.

``build_generator`` and ``build_discriminator`` make them from a model name
and the config's sizes (``config_generator`` from a whole TrainConfig, so the
trainer and ``load_generator`` cannot disagree); every generator has ``.latent`` and maps z
(B, latent) to images (B, C, H, W) in [-1, 1]; every discriminator maps
images to logits (B,).  Every model has ``.num_classes``: 0 for an
unconditional one; a conditional one is called G(z, y) and D(x, y) with y (B,)
int64 class indices (see docs/conditional.md).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from gankit.errors import UsageError
from gankit.models.common import plan_resolution
from gankit.models.dcgan import DCGANDiscriminator, DCGANGenerator
from gankit.models.seed import SeedDiscriminator, SeedGenerator

if TYPE_CHECKING:
    from gankit.config import TrainConfig

__all__ = ["build_generator", "config_generator", "build_discriminator", "plan_resolution",
           "SeedGenerator", "SeedDiscriminator", "DCGANGenerator", "DCGANDiscriminator"]


def build_generator(model: str, height: int, width: int, channels: int, latent: int, width_g: int,
                    coords: bool = False, attention: int = 0, num_classes: int = 0) -> nn.Module:
    if model == "seed":
        return SeedGenerator(height, width, channels, latent, width_g, coords=coords, attention=attention,
                             num_classes=num_classes)
    if model == "dcgan":
        return DCGANGenerator(height, width, channels, latent, width_g, coords=coords, attention=attention,
                              num_classes=num_classes)
    raise UsageError(f"--model: unknown model {model!r}")


def config_generator(cfg: "TrainConfig", shape: tuple[int, int, int], num_classes: int = 0) -> nn.Module:
    """The generator a run with this config trains, for images of shape (C, H, W)
    (conditional on ``num_classes`` classes when that is > 0)."""
    C, H, W = shape
    return build_generator(cfg.model, H, W, C, cfg.latent, cfg.width_g, coords=cfg.coord_conv,
                           attention=cfg.attention, num_classes=num_classes)


def build_discriminator(model: str, height: int, width: int, channels: int, width_d: int, loss: str = "bce",
                        spectral_norm: bool = False, mbstd: int = 0, coords: bool = False,
                        head: int = 0, num_classes: int = 0) -> nn.Module:
    if model == "seed":
        return SeedDiscriminator(height, width, channels, width_d, mbstd=mbstd, coords=coords, head=head,
                                 num_classes=num_classes)
    if model == "dcgan":
        # A gradient penalty is per-sample and BatchNorm mixes samples; spectral
        # norm already conditions D (SNGAN uses no BN): drop BN in both cases.
        plain = loss == "wgan-gp" or spectral_norm
        return DCGANDiscriminator(height, width, channels, width_d, norm="none" if plain else "batch", mbstd=mbstd,
                                  coords=coords, head=head, num_classes=num_classes)
    raise UsageError(f"--model: unknown model {model!r}")
