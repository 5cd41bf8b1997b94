"""Everything a run carries from one step to the next, and its checkpoint.

`TrainState` holds G, D, the EMA generator, both optimisers (the learning
rates live in them, so roll-backs and remedies change them there), the
gradient scaler, the adaptive augmentation, the counters, the RNG streams
(the process-wide ones, the z stream and the fixed preview latents) and the
best evaluation score.  ``state_dict``/``load_state_dict`` round-trip all of
it; a resume that loads it continues bit for bit where the run stopped.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from gankit.config import TrainConfig
from gankit.errors import UsageError
from gankit.models import config_discriminator, config_generator
from gankit.train import checkpoint as ckpt
from gankit.train import distributed as dist_util
from gankit.train.ema import EMA

# Seed offsets from --seed, so each stream differs from the others and from the weights' init:
FIXED_Z_SEED = 777  # the preview latents: the same faces every epoch, whatever training draws
Z_SEED = 555  # training's z stream: one seed on every rank (each draws the global batch and keeps its slice)
RESEED_STRIDE = 1009  # a prime per D step: ranks re-seeded on a multi-rank resume get streams no earlier step had


@dataclass
class Counters:
    epoch: int = 1  # current epoch, 1-based
    iter: int = 0  # iterations done in the current epoch
    step: int = 0  # generator steps
    d_steps: int = 0  # discriminator steps
    images_seen: int = 0  # real images shown to D, all ranks together
    elapsed: float = 0.0  # training seconds before this session (resume)
    retries: int = 0  # non-finite roll-backs so far
    next_snapshot_kimg: float = 0.0

    @property
    def kimg(self) -> float:
        return self.images_seen / 1000


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class TrainState:
    """Models, optimisers, counters and RNG streams of one rank, built from a config."""

    def __init__(self, cfg: TrainConfig, shape: tuple[int, int, int], device: torch.device,
                 dist: dist_util.DistInfo, classes: list[str] | None = None) -> None:
        self.seed, self.shape, self.device, self.dist = cfg.seed, shape, device, dist
        self.classes = list(classes or [])  # a conditional run's class names (index order); [] otherwise
        seed_everything(cfg.seed + dist.rank)  # the weights' init draws from this stream
        self.G, self.D = _build_models(cfg, shape, device, len(self.classes))
        self.ema = EMA(self.G, cfg.ema_kimg)
        # One fused kernel per optimiser (CPU since torch 2.4): 3x faster than
        # foreach on the CPU, ~5% of a breakout step; same update up to rounding.
        fused = device.type in ("cuda", "cpu")  # MPS: the foreach kernels
        adam: dict[str, Any] = dict(betas=(cfg.beta1, cfg.beta2), foreach=not fused, fused=fused or None)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, **adam)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, **adam)
        self.scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
        self.ada = _build_ada(cfg)
        # What the step calls: the DDP / compiled wrappers of G and D.  The G step needs D
        # only as a function of its input: it calls the plain module (D_g) with frozen
        # parameters, so D's gradients are neither computed nor all-reduced.
        self.G_train: Any  # nn.Module, or what torch.compile makes of one
        self.D_train: Any
        self.G_train, self.D_train = dist_util.wrap(self.G, self.D, dist, cfg.sync_bn)
        self.D_g: Any = self.D
        if cfg.compile:
            self.D_g = torch.compile(self.D)
            self.G_train = torch.compile(self.G_train)
            self.D_train = self.D_g if self.D_train is self.D else torch.compile(self.D_train)
        self.counters = Counters()
        preview_gen = torch.Generator().manual_seed(cfg.seed + FIXED_Z_SEED)
        self.fixed_z = torch.randn(cfg.num_samples, cfg.latent, generator=preview_gen)
        self.latent = cfg.latent
        self.z_gen = torch.Generator(device=device).manual_seed(cfg.seed + Z_SEED)
        self.best: dict[str, Any] = {}  # metric, score, kimg of the state in checkpoints/best.pt (kept on resume)
        self.lr_scale = 1.0  # the --lr-steps factor the optimisers' rates include now

    # ------------------------------------------------------ learning rates
    @property
    def lr_g(self) -> float:
        return float(self.opt_g.param_groups[0]["lr"])

    @property
    def lr_d(self) -> float:
        return float(self.opt_d.param_groups[0]["lr"])

    def set_lr(self, lr_g: float, lr_d: float) -> None:
        for group in self.opt_g.param_groups:
            group["lr"] = lr_g
        for group in self.opt_d.param_groups:
            group["lr"] = lr_d

    def follow_lr_steps(self, factor: float) -> None:
        """Make both rates include ``factor`` (--lr-steps' factor now) instead of the one they include.

        Relative, so a rate a roll-back or a remedy halved stays halved; the
        factor in force is saved, so a resume neither repeats nor skips a step."""
        if factor != self.lr_scale:
            ratio = factor / self.lr_scale
            self.set_lr(self.lr_g * ratio, self.lr_d * ratio)
            self.lr_scale = factor

    # ------------------------------------------------------------- sampling
    def sample_z(self, batch: int) -> torch.Tensor:
        """This rank's (batch, latent) slice of the global batch's z: N ranks
        then compute what one process would."""
        world, rank = self.dist.world, self.dist.rank
        z = torch.randn(batch * world, self.latent, generator=self.z_gen, device=self.device)
        return z[rank * batch : (rank + 1) * batch]

    def sampling_generator(self, no_ema: bool) -> nn.Module:
        """The generator that samples and evaluations come from."""
        return self.G if no_ema else self.ema.model

    # ---------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "G_ema": self.ema.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ada": self.ada.state_dict() if self.ada is not None else {},
            "counters": dict(vars(self.counters)),
            "rng": ckpt.rng_state(),
            "z_rng": self.z_gen.get_state(),
            "fixed_z": self.fixed_z,
            "best": dict(self.best),
            "lr_scale": self.lr_scale,
            "shape": list(self.shape),
            **({"classes": list(self.classes)} if self.classes else {}),  # conditional runs only
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Everything above, learning rates included (those in the optimisers' state)."""
        if list(state.get("shape", [])) != list(self.shape):
            raise UsageError(f"--resume: checkpoint images are {state.get('shape')}, "
                             f"this config makes {list(self.shape)}")
        try:
            self.G.load_state_dict(state["G"])
            self.D.load_state_dict(state["D"])
            self.ema.load_state_dict(state["G_ema"])
        except RuntimeError as err:
            raise UsageError(f"--resume: checkpoint holds another architecture: {str(err).splitlines()[0]}") from None
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ada is not None and state.get("ada"):
            self.ada.load_state_dict(state["ada"])
        self.counters = Counters(**state["counters"])
        self.fixed_z = state["fixed_z"]
        self.best = dict(state.get("best") or {})
        self.lr_scale = float(state.get("lr_scale", 1.0))  # (checkpoints before --lr-steps: 1)
        if self.dist.world == 1 and state.get("world", 1) == 1:
            ckpt.set_rng_state(state["rng"])
        else:  # rank 0's RNG state alone was saved: give every rank its own stream again
            seed_everything(self.seed + self.dist.rank + RESEED_STRIDE * self.counters.d_steps)
        if "z_rng" in state:
            self.z_gen.set_state(state["z_rng"])


def _build_models(cfg: TrainConfig, shape: tuple[int, int, int], device: torch.device,
                  num_classes: int = 0) -> tuple[nn.Module, nn.Module]:
    G = config_generator(cfg, shape, num_classes).to(device)
    D = config_discriminator(cfg, shape, num_classes).to(device)  # spectral norm included
    if cfg.channels_last:
        G = G.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # (torch's stub lacks it)
        D = D.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return G, D


def _build_ada(cfg: TrainConfig) -> Any:
    if not cfg.ada:
        return None
    from gankit.augment import AdaptiveAugment

    return AdaptiveAugment(target=cfg.ada_target, speed_kimg=cfg.ada_kimg, batch=cfg.batch, ops=tuple(cfg.ada_op_list))
