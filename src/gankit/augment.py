"""Augmentations the generator cannot learn to reproduce.

With a few thousand images the discriminator memorises the training set and
its gradients stop telling the generator anything useful.  Augmenting the
reals alone would teach G to draw augmented images, so the two cures here
transform *every* image D sees, real and generated, in the D passes and in
the G pass, with differentiable operations so G's gradient flows through them:

* `diff_augment` (Zhao et al. 2020, "DiffAugment"): colour, translation and
  cutout applied to every image, at a fixed strength.  ``translation_x``
  shifts along the width only, for data with something small pinned near the
  top or bottom edge (Breakout's paddle): a vertical shift pushes it out of
  the frame in a share of the real images, which teaches D that frames
  without it are real.
* `AdaptiveAugment` (Karras et al. 2020, "StyleGAN2-ADA"): each operation is
  applied to each image with a probability p that follows the discriminator's
  over-fitting signal r_t = E[sign(D(real))]: p rises while r_t is above the
  target and falls below it.  Because every operation is skipped with
  probability 1 - p, G can only match the data by drawing un-augmented
  images, as long as p stays below roughly 0.8.

The operations themselves are registered by name in `gankit.augment_ops`;
they are batched (no Python loop over the images), so augmentation runs on
the training device at any batch size, and a seeded ``torch.Generator`` makes
the draws reproducible.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from gankit.augment_ops import check_images, draw
from gankit.errors import UsageError
from gankit.parsing import parse_list
from gankit.registry import ADA_OPS, DIFFAUGMENT_OPS

if TYPE_CHECKING:  # pragma: no cover
    from gankit.config import TrainConfig

def diff_augment(x: torch.Tensor, ops: str | Sequence[str], strength: float = 1.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply DiffAugment's operations, in the order given, to every image.

    x: (B, C, H, W) images in [-1, 1], any C, H, W; returns the same shape and
    dtype.  ``ops`` is any subset of ``color``, ``translation``,
    ``translation_x``, ``cutout`` (list or comma-separated string).  At
    strength 1:

    * color: brightness + U(-0.5, 0.5), saturation x U(0, 2), contrast
      x U(0.5, 1.5) around each image's mean.  Values can leave [-1, 1]
      (worst case |x| <= 31/6, about 5.2; in practice rarely beyond 2).
    * translation: integer shift of up to H/8 and W/8 pixels, zero padded.
    * translation_x: the same with no vertical shift.
    * cutout: a rectangle of half each side, centred at a random pixel, set to 0.

    ``strength`` scales each op's range (brightness offset, factors' distance
    from 1, shift, cutout size); 0 returns x unchanged.  Differentiable w.r.t. x.
    """
    check_images(x)
    if strength < 0:
        raise ValueError(f"diff_augment: strength must be >= 0, got {strength}")
    names = parse_list(ops, "--diffaugment", list(DIFFAUGMENT_OPS), "operation")
    if strength == 0 or not names:
        return x
    for op in names:
        x = DIFFAUGMENT_OPS.get(op).builder(x, strength, generator)
    return x


class AdaptiveAugment:
    """StyleGAN2-ADA-style augmentation with probability p tuned on the fly.

    Use, once per D step::

        real_logits = D(ada(real)); fake_logits = D(ada(fake))   # and D(ada(fake)) in the G pass
        ada.accumulate(real_logits.detach())    # no host sync
        ada.update(images_this_step)            # adjusts p every `interval` calls

    Every ``interval`` calls to `update`, r_t = mean(sign(real_logits)) over
    the logits accumulated since the last adjustment is compared with
    ``target`` and p moves by sign(r_t - target) * images / (speed_kimg * 1000),
    clamped to [0, 1]: at that rate p would go from 0 to 1 in ``speed_kimg``
    thousand images.  p is held as a device tensor, so neither call waits for
    the GPU; reading ``p`` or ``r_t`` (floats) does.  Under torch.distributed
    the sign statistics are summed over ranks so every rank keeps the same p.

    ``ops`` (any of flip, translation, color, cutout) are each applied to each
    image independently with probability p: a horizontal flip, an integer
    translation of up to 1/8 of each side with mirrored borders, ADA's colour
    transform (brightness + N(0, 0.2), contrast x lognormal(0, 0.5 ln 2),
    saturation x lognormal(0, ln 2)), and a half-side cutout.  Drop ``flip``
    for data whose orientation matters (Atari frames, text).
    """

    def __init__(self, target: float = 0.6, speed_kimg: float = 100.0, interval: int = 4, batch: int = 64,
                 ops: Sequence[str] = ("flip", "translation", "color"), p: float = 0.0):
        if not 0.0 < target < 1.0:
            raise UsageError(f"--ada-target: must be in (0, 1), got {target}")
        if not speed_kimg > 0:
            raise UsageError(f"--ada-kimg: must be > 0, got {speed_kimg}")
        if interval < 1 or batch < 1:
            raise ValueError(f"AdaptiveAugment: interval and batch must be >= 1, got {interval} and {batch}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"AdaptiveAugment: p must be in [0, 1], got {p}")
        self.ops = parse_list(ops, "--ada-ops", list(ADA_OPS), "operation")
        self.target, self.speed_kimg = float(target), float(speed_kimg)
        self.interval, self.batch = int(interval), int(batch)
        self._p = torch.tensor(float(p))
        self._stats: torch.Tensor | None = None  # [sum of signs, count] since the last adjustment
        self._last_rt: torch.Tensor | None = None
        self._calls = 0  # update() calls since the last adjustment
        self._images = 0  # images reported since the last adjustment

    # ------------------------------------------------------------ p and r_t
    @property
    def p(self) -> float:
        return float(self._p)

    @p.setter
    def p(self, value: float) -> None:
        self._p = torch.tensor(min(1.0, max(0.0, float(value))), device=self._p.device)

    @property
    def r_t(self) -> float:
        """r_t of the last adjustment (or of the logits pending, before the first); NaN if none."""
        if self._last_rt is not None:
            return float(self._last_rt)
        if self._stats is not None and float(self._stats[1]) > 0:
            return float(self._stats[0] / self._stats[1])
        return math.nan

    # ------------------------------------------------------------- tracking
    def accumulate(self, real_logits: torch.Tensor) -> None:
        """Add the signs of D's logits on (augmented) real images; no host sync."""
        logits = real_logits.detach().float().flatten()
        count = torch.full((), float(logits.numel()), device=logits.device)  # a fill, not a host copy
        step = torch.stack([logits.sign().sum(), count])
        self._stats = step if self._stats is None else self._stats.to(step.device) + step

    def update(self, images: int | None = None) -> bool:
        """Count one D step of ``images`` images (default ``batch``); every
        ``interval`` calls, move p toward the target.  Returns True when p was
        adjusted.  Call it on every rank (it all-reduces under torch.distributed)."""
        self._calls += 1
        self._images += self.batch if images is None else int(images)
        if self._calls < self.interval:
            return False
        stats = self._stats
        if stats is None:
            stats = torch.zeros(2, device=self._p.device)
        if dist.is_available() and dist.is_initialized():
            stats = stats.clone()
            dist.all_reduce(stats)
        rt = stats[0] / stats[1].clamp(min=1.0)
        step = torch.sign(rt - self.target) * (stats[1] > 0) * (self._images / (self.speed_kimg * 1000))
        self._p = (self._p.to(rt.device) + step).clamp(0.0, 1.0)
        self._last_rt = rt
        self._stats, self._calls, self._images = None, 0, 0
        return True

    # ---------------------------------------------------------------- apply
    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment each image of x (B, C, H, W) with each op at probability p.
        Same shape and dtype; differentiable w.r.t. x; identity when p is 0
        (the random draws still happen, so the RNG stream does not depend on p)."""
        check_images(x)
        B = x.shape[0]
        if self._p.device != x.device:
            self._p = self._p.to(x.device)  # once; later updates keep it there
        p = self._p
        for op in self.ops:
            apply = draw("rand", (B,), x, generator) < p  # (B,) which images get this op
            x = ADA_OPS.get(op).builder(x, apply, generator)
        return x

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Plain floats and ints (loads with weights_only=True).  Pending
        statistics are kept so a resumed run adjusts p exactly as an unbroken one."""
        stats = [0.0, 0.0] if self._stats is None else [float(v) for v in self._stats]
        return {"p": self.p, "target": self.target, "speed_kimg": self.speed_kimg, "interval": self.interval,
                "ops": list(self.ops), "pending_signs": stats[0], "pending_count": stats[1],
                "pending_calls": self._calls, "pending_images": self._images,
                "last_rt": None if self._last_rt is None else float(self._last_rt)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore p and the pending statistics.  target, speed and ops stay as
        constructed (the run's config decides them)."""
        if "p" not in state:
            raise ValueError("AdaptiveAugment.load_state_dict: state has no 'p'")
        self.p = float(state["p"])
        count = float(state.get("pending_count", 0.0))
        self._stats = torch.tensor([float(state.get("pending_signs", 0.0)), count]) if count > 0 else None
        self._calls = int(state.get("pending_calls", 0))
        self._images = int(state.get("pending_images", 0))
        last = state.get("last_rt")
        self._last_rt = None if last is None else torch.tensor(float(last))


def config_ada(cfg: TrainConfig) -> AdaptiveAugment | None:
    """The adaptive augmentation a run with this config uses; None without --ada."""
    if not cfg.ada:
        return None
    return AdaptiveAugment(target=cfg.ada_target, speed_kimg=cfg.ada_kimg, batch=cfg.batch, ops=cfg.ada_op_list)
