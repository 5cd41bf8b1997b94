"""One training iteration: a discriminator step, and every ``critic_steps``
iterations a generator step, returning what happened as `StepStats`.

Statistics stay on the device: a step adds tensors, and the host reads them
once per ``--log-every`` iterations (`StepStats.to_record`), so a GPU never
waits on the CPU inside the loop.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from gankit.augment import diff_augment
from gankit.config import TrainConfig
from gankit.losses import config_loss
from gankit.registry import MODELS
from gankit.regularize import instance_noise, r1_active, r1_penalty, r1_weight
from gankit.train import distributed as dist_util
from gankit.train.conditioning import Conditioning, bind
from gankit.train.hardware import autocast_dtype
from gankit.train.state import TrainState


@dataclass
class StepStats:
    """Sums over D steps (or G steps) of a log interval, as 0-dim device tensors.

    One step's stats (from `TrainStep`) leave the G fields None when no G step
    was taken and the gradient norms None when they were not measured; an
    interval's total (`zeros`, then `add`) keeps the last measured norms."""

    loss_d: torch.Tensor
    d_real: torch.Tensor  # mean sigmoid(D(x))
    d_fake: torch.Tensor  # mean sigmoid(D(G(z))) in the D step
    acc_real: torch.Tensor  # fraction of reals D calls real
    acc_fake: torch.Tensor  # fraction of fakes D calls fake
    loss_g: torch.Tensor | None = None
    d_fake_g: torch.Tensor | None = None  # mean sigmoid(D(G(z))) in the G step
    grad_norm_d: torch.Tensor | None = None
    grad_norm_g: torch.Tensor | None = None
    d_steps: int = 1
    g_steps: int = 0

    D_SUMS = ("loss_d", "d_real", "d_fake", "acc_real", "acc_fake")
    G_SUMS = ("loss_g", "d_fake_g")
    LAST = ("grad_norm_d", "grad_norm_g")

    @classmethod
    def zeros(cls, device: torch.device) -> StepStats:
        z = {f.name: torch.zeros((), device=device) for f in fields(cls) if f.name not in ("d_steps", "g_steps")}
        return cls(**z, d_steps=0, g_steps=0)

    def add(self, step: StepStats) -> None:
        """Accumulate one step's stats into this total (in place, no host sync)."""
        for name in self.D_SUMS:
            getattr(self, name).add_(getattr(step, name))
        if step.g_steps:
            for name in self.G_SUMS:
                getattr(self, name).add_(getattr(step, name))
        for name in self.LAST:
            value = getattr(step, name)
            if value is not None:
                getattr(self, name).copy_(value)
        self.d_steps += step.d_steps
        self.g_steps += step.g_steps

    def reset(self) -> None:
        for name in self.D_SUMS + self.G_SUMS + self.LAST:
            getattr(self, name).zero_()
        self.d_steps = self.g_steps = 0

    def _tensor_names(self) -> tuple[str, ...]:
        return self.D_SUMS + self.G_SUMS + self.LAST

    def all_reduce(self, dist: dist_util.DistInfo) -> None:
        """Average over ranks (one collective), so every rank logs and judges the same numbers."""
        if not dist.enabled:
            return
        packed = dist_util.all_reduce_mean(torch.stack([getattr(self, n) for n in self._tensor_names()]), dist)
        for name, value in zip(self._tensor_names(), packed.unbind()):
            getattr(self, name).copy_(value)

    def to_record(self) -> dict[str, float]:
        """Means per step, read with the one host sync of the log interval."""
        v = dict(zip(self._tensor_names(), torch.stack([getattr(self, n) for n in self._tensor_names()]).tolist()))
        n_d, n_g = max(self.d_steps, 1), max(self.g_steps, 1)
        return {
            "loss_d": v["loss_d"] / n_d, "loss_g": v["loss_g"] / n_g, "d_x": v["d_real"] / n_d,
            "d_g_z1": v["d_fake"] / n_d, "d_g_z2": v["d_fake_g"] / n_g, "acc_real": v["acc_real"] / n_d,
            "acc_fake": v["acc_fake"] / n_d, "grad_norm_g": v["grad_norm_g"], "grad_norm_d": v["grad_norm_d"],
        }


class TrainStep:
    """The step for a config: ``step(real, measure_grads)`` trains on one real batch.

    It changes the state (weights, optimisers, EMA, augmentation, counters, z
    stream) and nothing else; ``progress`` (fraction of the budget done) anneals
    instance noise."""

    def __init__(self, cfg: TrainConfig, state: TrainState, progress: Callable[[], float],
                 cond: Conditioning | None = None) -> None:
        self.cfg, self.state, self.progress, self.cond = cfg, state, progress, cond
        # a model whose D reconstructs real images from its features (fastgan) adds that loss to D's
        self.reconstructs = bool(MODELS.get(cfg.model).get("reconstructs"))
        self.loss = config_loss(cfg)
        self.amp_dtype = autocast_dtype(cfg.precision)

    def _autocast(self) -> Any:
        return torch.autocast(self.state.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        if cfg.diffaugment_ops:
            x = diff_augment(x, cfg.diffaugment_ops)
        if self.state.ada is not None:
            x = self.state.ada(x)
        if cfg.instance_noise > 0:
            x = instance_noise(x, cfg.instance_noise, self.progress())
        return x

    def _fake_labels(self, batch: int) -> torch.Tensor | None:
        """Classes of a generated batch (conditional runs; None and no draw otherwise)."""
        return self.cond.fake_labels(batch) if self.cond is not None else None

    def __call__(self, real: torch.Tensor, y_real: torch.Tensor | None = None,
                 measure_grads: bool = False) -> StepStats:
        """Train on ``real`` (with its classes ``y_real`` in a conditional run; generated
        classes come from the conditioning, G and D get them through `bind`)."""
        s, c = self.state, self.state.counters
        B = real.shape[0]
        take_g_step = (c.d_steps + 1) % self.cfg.critic_steps == 0
        reuse_fake = take_g_step and self.cfg.critic_steps == 1  # the G step backpropagates through this fake
        with self._autocast(), torch.set_grad_enabled(reuse_fake):
            y_fake = self._fake_labels(B)
            fake = bind(s.G_train, y_fake)(s.sample_z(B))
        stats = self._d_step(real, y_real, fake.detach(), y_fake, measure_grads)
        if take_g_step:
            self._g_step((fake, y_fake) if reuse_fake else None, B, stats, measure_grads)
        s.scaler.update()
        if s.ada is not None:
            s.ada.update(B * s.dist.world)
        return stats

    def _d_step(self, real: torch.Tensor, y_real: torch.Tensor | None, fake: torch.Tensor,
                y_fake: torch.Tensor | None, measure_grads: bool) -> StepStats:
        cfg, s, c = self.cfg, self.state, self.state.counters
        do_r1 = r1_active(cfg, c.kimg) and c.d_steps % cfg.r1_every == 0
        with self._autocast():
            real_in = self._augment(real)
            if do_r1:
                real_in = real_in.detach().requires_grad_(True)
            recon = None
            if self.reconstructs:  # (unconditional models only: no labels to pass)
                real_logits, recon = s.D_train(real_in, reconstruct=True)
                real_logits = real_logits.float()
            else:
                real_logits = bind(s.D_train, y_real)(real_in).float()  # augmentation changes images, never labels
            fake_logits = bind(s.D_train, y_fake)(self._augment(fake)).float()
            loss_d = self.loss.d_loss(real_logits, fake_logits)
            # wgan-gp's points between real and fake images are scored as the real images' classes
            penalty = self.loss.d_penalty(bind(s.D_train, y_real), real_in.detach(), fake)
            if penalty is not None:
                loss_d = loss_d + penalty
            if recon is not None:
                loss_d = loss_d + recon.float()
            if do_r1:  # lazy R1: every r1_every steps, weighted up by as much
                loss_d = loss_d + r1_penalty(real_logits, real_in) * (r1_weight(cfg, s.lr_scale) / 2) * cfg.r1_every
        if s.ada is not None:
            s.ada.accumulate(real_logits.detach())
        s.opt_d.zero_grad(set_to_none=True)
        s.scaler.scale(loss_d).backward()
        grad_d = _grad_norm(s.D) if measure_grads else None
        s.scaler.step(s.opt_d)
        self.loss.after_d_step(s.D)
        c.d_steps += 1
        real_logits, fake_logits = real_logits.detach(), fake_logits.detach()
        return StepStats(loss_d=loss_d.detach(), d_real=torch.sigmoid(real_logits).mean(),
                         d_fake=torch.sigmoid(fake_logits).mean(), acc_real=(real_logits > 0).float().mean(),
                         acc_fake=(fake_logits < 0).float().mean(), grad_norm_d=grad_d)

    def _g_step(self, reused: tuple[torch.Tensor, torch.Tensor | None] | None, B: int, stats: StepStats,
                measure_grads: bool) -> None:
        """``reused``: the D step's (fake, classes) to backpropagate through, or None to draw new ones."""
        s, c = self.state, self.state.counters
        with self._autocast():
            if reused is None:
                y_fake = self._fake_labels(B)
                fake = bind(s.G_train, y_fake)(s.sample_z(B))
            else:
                fake, y_fake = reused
            s.D.requires_grad_(False)
            fake_logits = bind(s.D_g, y_fake)(self._augment(fake)).float()
            s.D.requires_grad_(True)
            loss_g = self.loss.g_loss(fake_logits)
        s.opt_g.zero_grad(set_to_none=True)
        s.scaler.scale(loss_g).backward()
        stats.grad_norm_g = _grad_norm(s.G) if measure_grads else None
        s.scaler.step(s.opt_g)
        c.step += 1
        s.ema.update(s.G, B * s.dist.world * self.cfg.critic_steps)
        stats.loss_g, stats.d_fake_g, stats.g_steps = loss_g.detach(), torch.sigmoid(fake_logits.detach()).mean(), 1


def _grad_norm(module: nn.Module) -> torch.Tensor:
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)).float())
