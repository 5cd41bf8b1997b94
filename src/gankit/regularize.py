"""Regularisers that keep the discriminator from winning too easily.

A discriminator that separates real from fake perfectly has flat, useless
gradients for the generator.  Each function here limits D in another way:

* `r1_penalty` (Mescheder et al. 2018): penalise D's gradient on real images,
  so D cannot carve a steep cliff around the data.  Applied lazily (every k
  D steps, weight multiplied by k) as in StyleGAN2; see `lazy_r1_weight`.
  `r1_active` says whether it is on at a point of training (``--r1-from-kimg``),
  `r1_weight` what weight it has then (``--r1-follows-lr``).
* `gradient_penalty` (Gulrajani et al. 2017): WGAN-GP's unit-gradient-norm
  penalty on points between real and fake; `gankit.losses` calls it.
* `apply_spectral_norm` (Miyato et al. 2018): divide every D weight by its
  largest singular value, making each layer 1-Lipschitz (defined in
  `gankit.models.spectral`, whose discriminator factory applies it).
* `instance_noise` (Sønderby et al. 2017): Gaussian noise on D's inputs,
  annealed to zero, so real and fake distributions overlap early on.

Every function returns the unweighted term; the caller applies its weight.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from gankit.errors import UsageError
from gankit.models.spectral import SPECTRAL_NORM_LAYERS, apply_spectral_norm  # noqa: F401 - part of this module's API

if TYPE_CHECKING:
    from gankit.config import TrainConfig

Discriminator = Callable[[torch.Tensor], torch.Tensor]


def _squared_grad_norms(outputs: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """(B,) squared norms of d outputs.sum() / d inputs[b], with a graph so the
    penalty itself can be back-propagated into D's weights."""
    (grad,) = torch.autograd.grad(outputs.float().sum(), inputs, create_graph=True)
    return grad.float().flatten(1).pow(2).sum(dim=1)


def r1_active(cfg: TrainConfig, kimg: float) -> bool:
    """Whether R1 applies after ``kimg`` thousand images: a weight is set and ``r1_from_kimg`` is reached."""
    return cfg.r1 > 0 and kimg >= cfg.r1_from_kimg


def r1_weight(cfg: TrainConfig, lr_scale: float) -> float:
    """The R1 weight in force: ``cfg.r1``, divided by the --lr-steps factor ``lr_scale``
    with ``--r1-follows-lr`` (a step that halves the rates doubles the weight)."""
    return cfg.r1 / lr_scale if cfg.r1_follows_lr else cfg.r1


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1: mean over the batch of ||d D(real) / d real||^2, a scalar.

    The caller must make ``real`` a leaf that records gradients *before* the D
    forward pass, and pass D's output on exactly that tensor::

        real_in = augment(real).detach().requires_grad_(True)
        real_logits = D(real_in)
        loss_d = loss_d + r1_penalty(real_logits, real_in) * lazy_r1_weight(gamma, every)

    Each sample's logit depends only on its own image (true without BatchNorm
    in D; with BatchNorm the batch statistics couple them), so the gradient of
    the summed logits gives every image its own gradient.
    """
    if not real.requires_grad:
        raise ValueError("r1_penalty: call real.requires_grad_(True) before the D forward pass that made real_logits")
    if real_logits.grad_fn is None:
        raise ValueError("r1_penalty: real_logits carry no graph; compute them from `real` with gradients enabled")
    return _squared_grad_norms(real_logits, real).mean()


def lazy_r1_weight(gamma: float, every: int) -> float:
    """Weight of `r1_penalty` when it is applied every ``every`` D steps:
    gamma / 2 (R1's usual factor) times ``every``, so the average pull over
    training equals an R1 of weight gamma applied at every step."""
    if gamma < 0:
        raise UsageError(f"--r1: must be >= 0, got {gamma}")
    if every < 1:
        raise UsageError(f"--r1-every: must be >= 1, got {every}")
    return gamma / 2 * every


def gradient_penalty(D: Discriminator, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP: mean over the batch of (||grad D(x_hat)|| - 1)^2, where x_hat
    lies at a uniform random point on the line from each fake to its real.

    real, fake: (B, ...) of the same shape (pass them detached).  A scalar,
    unweighted (WGAN-GP uses lambda = 10).  D must treat samples independently
    (no BatchNorm), as the penalty is per sample.
    """
    if real.shape != fake.shape:
        raise ValueError(f"gradient_penalty: real {tuple(real.shape)} and fake {tuple(fake.shape)} differ in shape")
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    device = generator.device if generator is not None else real.device
    alpha = torch.rand(shape, generator=generator, device=device).to(real.device, real.dtype)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    norms = (_squared_grad_norms(D(x_hat), x_hat) + 1e-12).sqrt()  # eps keeps the sqrt differentiable at 0
    return ((norms - 1) ** 2).mean()


def instance_noise_sigma(sigma0: float, progress: float) -> float:
    """Noise std after ``progress`` (0..1, clamped) of training: sigma0 * (1 - progress)."""
    if sigma0 < 0:
        raise UsageError(f"--instance-noise: must be >= 0, got {sigma0}")
    return sigma0 * (1.0 - min(1.0, max(0.0, float(progress))))


def instance_noise(x: torch.Tensor, sigma0: float, progress: float,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """x + N(0, sigma^2) with sigma = `instance_noise_sigma(sigma0, progress)`;
    x itself (no copy, no draw) once sigma reaches 0.  Apply it to real and
    fake alike, in the D and the G pass."""
    sigma = instance_noise_sigma(sigma0, progress)
    if sigma == 0:
        return x
    device = generator.device if generator is not None else x.device
    noise = torch.randn(x.shape, generator=generator, device=device).to(x.device, x.dtype)
    return x + sigma * noise
