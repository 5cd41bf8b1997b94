"""Adversarial losses behind one interface.

Every loss sees raw discriminator outputs (logits / critic values, shape (B,))
and owns its extras: WGAN clips D's weights after each D step, WGAN-GP adds
its gradient penalty.  The training loop never branches on the loss name.

| name    | D loss                                   | G loss             | default D steps |
|---------|------------------------------------------|--------------------|-----------------|
| bce     | BCE(real, 1 - smoothing) + BCE(fake, 0)  | BCE(fake, 1)       | 1               |
| wgan    | mean(fake) - mean(real), weights clipped | -mean(fake)        | 5               |
| wgan-gp | as wgan + 10 * gradient penalty          | -mean(fake)        | 5               |
| hinge   | relu(1 - real) + relu(1 + fake)          | -mean(fake)        | 1               |
| lsgan   | 0.5 (real - 1)^2 + 0.5 fake^2            | 0.5 (fake - 1)^2   | 1               |

Each loss registers itself in `gankit.registry.LOSSES` and declares, as class
attributes, what the rest of training needs to know about it: its default
number of D steps per G step (``--n-critic 0``), whether D may keep
BatchNorm, whether it clips D's weights and which TrainConfig options it
takes.  A new loss is one registered subclass here plus its test.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from gankit.registry import LOSSES

if TYPE_CHECKING:  # pragma: no cover
    from gankit.config import TrainConfig

Discriminator = Callable[[torch.Tensor], torch.Tensor]


_Loss = TypeVar("_Loss", bound="type[GANLoss]")


def register_loss(cls: _Loss) -> _Loss:
    """Class decorator: make the loss usable as ``--loss <cls.name>``."""
    return LOSSES.register(cls.name)(cls)


class GANLoss:
    """Base class: override ``d_loss`` and ``g_loss``."""

    name = "base"
    default_critic_steps = 1  # D steps per G step when --n-critic is 0
    # A penalty on each sample's gradient needs D to treat samples independently;
    # BatchNorm mixes them, so such losses build D without it.
    d_keeps_batchnorm = True
    clips_weights = False  # D's weights are clipped: spectral norm and R1 would fight it
    options: tuple[str, ...] = ()  # the TrainConfig fields passed to the constructor

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def d_penalty(self, D: Discriminator, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor | None:
        """Extra D term needing another pass (WGAN-GP); None when there is none."""
        return None

    def after_d_step(self, D: nn.Module) -> None:
        """Hook run after each D optimiser step (WGAN weight clipping)."""


@register_loss
class BCELoss(GANLoss):
    """Non-saturating GAN loss on logits (BCEWithLogits), as in the seed projects."""

    name = "bce"
    options = ("label_smoothing",)

    def __init__(self, label_smoothing: float = 0.0):
        self.real_target = 1.0 - label_smoothing

    def d_loss(self, real_logits, fake_logits):
        real = F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, self.real_target))
        fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        return real + fake

    def g_loss(self, fake_logits):
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


@register_loss
class WGANLoss(GANLoss):
    """Wasserstein critic with weight clipping (Arjovsky et al. 2017)."""

    name = "wgan"
    default_critic_steps = 5
    clips_weights = True

    def __init__(self, clip: float = 0.01):
        self.clip = clip

    def d_loss(self, real_logits, fake_logits):
        return fake_logits.float().mean() - real_logits.float().mean()

    def g_loss(self, fake_logits):
        return -fake_logits.float().mean()

    @torch.no_grad()
    def after_d_step(self, D: nn.Module) -> None:
        for p in D.parameters():
            p.clamp_(-self.clip, self.clip)


@register_loss
class WGANGPLoss(WGANLoss):
    """Wasserstein critic with gradient penalty (Gulrajani et al. 2017), lambda 10."""

    name = "wgan-gp"
    d_keeps_batchnorm = False  # the penalty is per sample
    clips_weights = False

    def __init__(self, gp_weight: float = 10.0):
        self.gp_weight = gp_weight

    def d_penalty(self, D, real, fake):
        from gankit.regularize import gradient_penalty

        return self.gp_weight * gradient_penalty(D, real, fake)

    def after_d_step(self, D: nn.Module) -> None:
        pass


@register_loss
class HingeLoss(GANLoss):
    name = "hinge"

    def d_loss(self, real_logits, fake_logits):
        return F.relu(1.0 - real_logits.float()).mean() + F.relu(1.0 + fake_logits.float()).mean()

    def g_loss(self, fake_logits):
        return -fake_logits.float().mean()


@register_loss
class LSGANLoss(GANLoss):
    """Least squares GAN (Mao et al. 2017) with targets 0 (fake) and 1 (real)."""

    name = "lsgan"

    def d_loss(self, real_logits, fake_logits):
        return 0.5 * ((real_logits.float() - 1.0) ** 2).mean() + 0.5 * (fake_logits.float() ** 2).mean()

    def g_loss(self, fake_logits):
        return 0.5 * ((fake_logits.float() - 1.0) ** 2).mean()


def loss_class(name: str) -> type[GANLoss]:
    """The registered loss class ``name`` (UsageError naming the valid ones)."""
    return LOSSES.get(name).builder


def build_loss(name: str, label_smoothing: float = 0.0) -> GANLoss:
    """The loss ``name``, given only the options it declares (label smoothing is bce's)."""
    cls = loss_class(name)
    values = {"label_smoothing": label_smoothing}
    return cls(**{k: values[k] for k in cls.options})


def config_loss(cfg: TrainConfig) -> GANLoss:
    """The loss a run with this config trains with."""
    cls = loss_class(cfg.loss)
    return cls(**{k: getattr(cfg, k) for k in cls.options})
