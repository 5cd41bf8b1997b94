"""Generators and discriminators, built by name.

Each architecture registers its pair of classes in `gankit.registry.MODELS`
beside its code (``MODELS.add("dcgan", generator=..., discriminator=...)``,
at the end of ``models/dcgan.py``) and declares what it needs: ``d_norm``
(its D takes ``norm=`` and can drop BatchNorm) and ``check_size`` (the image
sizes it can build).  A new model is one new file in this package plus its
test: the registry imports every module here on first use.

`config_generator` and `config_discriminator` build what a run with a given
TrainConfig trains, so the trainer and ``load_generator`` cannot disagree;
`build_generator` and `build_discriminator` take the sizes one by one.
Every generator has ``.latent`` and maps z (B, latent) to images
(B, C, H, W) in [-1, 1]; every discriminator maps images to logits (B,).
Every model has ``.num_classes``: 0 for an unconditional one; a conditional
one (``num_classes`` > 0, declared ``conditional=True`` in the registry) is
called G(z, y) and D(x, y) with y (B,) int64 class indices
(docs/conditional.md).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from gankit.errors import UsageError
from gankit.models.common import plan_resolution
from gankit.models.dcgan import DCGANDiscriminator, DCGANGenerator
from gankit.models.generator_file import architecture
from gankit.models.seed import SeedDiscriminator, SeedGenerator
from gankit.models.spectral import apply_spectral_norm
from gankit.registry import LOSSES, MODELS

if TYPE_CHECKING:
    from gankit.config import TrainConfig

__all__ = ["build_generator", "config_generator", "build_discriminator", "config_discriminator", "plan_resolution",
           "d_keeps_batchnorm", "SeedGenerator", "SeedDiscriminator", "DCGANGenerator", "DCGANDiscriminator"]


def build_generator(model: str, height: int, width: int, channels: int, latent: int, width_g: int,
                    coords: bool = False, attention: int = 0, num_classes: int = 0,
                    image_layer: str = "transposed") -> nn.Module:
    """The generator of architecture ``model`` (the keys of a generator file's ``architecture``)."""
    entry = MODELS.get(model)
    extra: dict[str, Any] = {"num_classes": num_classes} if num_classes else {}
    if num_classes and not entry.get("conditional"):
        raise UsageError(f"--model: {model} has no class-conditional form; use --no-conditional")
    if image_layer != "transposed":  # only models that declare the option take it
        if not entry.get("image_layers"):
            raise UsageError(f"--image-layer: the {model} model has no such option; drop it (or use --model fastgan)")
        extra["image_layer"] = image_layer
    return entry["generator"](height, width, channels, latent, width_g, coords=coords, attention=attention, **extra)


def config_generator(cfg: TrainConfig, shape: tuple[int, int, int], num_classes: int = 0) -> nn.Module:
    """The generator a run with this config trains, for images of shape (C, H, W)
    (conditional on ``num_classes`` classes when that is > 0)."""
    return build_generator(**architecture(cfg, shape, num_classes))


def d_keeps_batchnorm(loss: str, spectral_norm: bool = False) -> bool:
    """Whether D may keep BatchNorm under this loss: not when the loss penalises
    each sample's gradient (BatchNorm mixes samples), nor under spectral norm,
    which already conditions D (SNGAN uses no BatchNorm)."""
    return bool(LOSSES.get(loss).builder.d_keeps_batchnorm) and not spectral_norm


def build_discriminator(model: str, height: int, width: int, channels: int, width_d: int, loss: str = "bce",
                        spectral_norm: bool = False, mbstd: int = 0, coords: bool = False,
                        head: int = 0, num_classes: int = 0) -> nn.Module:
    """The discriminator of architecture ``model``: without BatchNorm where the loss
    or spectral norm asks (`d_keeps_batchnorm`), spectral-normalised if asked, a
    projection discriminator over ``num_classes`` classes when that is > 0."""
    entry = MODELS.get(model)
    options: dict[str, Any] = {}
    if entry["d_norm"]:
        options["norm"] = "batch" if d_keeps_batchnorm(loss, spectral_norm) else "none"
    if num_classes:
        if not entry.get("conditional"):
            raise UsageError(f"--model: {model} has no class-conditional form; use --no-conditional")
        options["num_classes"] = num_classes
    D = entry["discriminator"](height, width, channels, width_d, mbstd=mbstd, coords=coords, head=head, **options)
    return apply_spectral_norm(D) if spectral_norm else D


def config_discriminator(cfg: TrainConfig, shape: tuple[int, int, int], num_classes: int = 0) -> nn.Module:
    """The discriminator a run with this config trains, for images of shape (C, H, W),
    spectral norm included (a projection D when ``num_classes`` > 0)."""
    C, H, W = shape
    return build_discriminator(cfg.model, H, W, C, cfg.width_d, cfg.loss, cfg.spectral_norm, cfg.mbstd,
                               coords=cfg.coord_conv, head=cfg.d_head, num_classes=num_classes)
