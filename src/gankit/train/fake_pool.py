"""A pool of past generated images that D sees beside the newest ones.

Why: D only ever sees what G draws now, so it can forget the mistakes G made
before.  On Breakout past ~100 kimg, once G draws a paddle in most frames D
stops weighing the paddle, and G's paddles drift into doubles and dashes until
D learns it again (docs/presets/breakout.md).  Replacing half of each fake
batch with images drawn from a pool of older fakes (the image history of
Shrivastava et al. 2017) keeps those mistakes in D's view.  The pool is a
reservoir sample: every fake offered to it since it started has the same
chance to be in it, so its memory spans the whole run, not the last few
hundred steps a pool with random replacement would hold.

The pool holds images as uint8, as real images are stored, so a few hundred
64x64 frames cost a few MB in the checkpoint; it draws from its own random
stream, saved with it, so a resume continues bit for bit.
"""
from __future__ import annotations

from typing import Any

import torch

POOL_SEED = 313  # offset from --seed for the pool's own stream


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] (any float dtype) -> uint8 in [0, 255]."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def from_uint8(q: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return (q.float() / 127.5 - 1).to(dtype)


class FakePool:
    """``mix(fake)`` returns a batch of the same shape whose first half comes
    from the pool once it is full; the fakes that half displaced are offered to
    the reservoir (the n-th offer replaces a random entry with chance size/n)."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.images: torch.Tensor | None = None  # (n <= size, C, H, W) uint8 on the fakes' device
        self.offered = 0  # fakes offered so far, the reservoir's n
        self.gen = torch.Generator().manual_seed(seed)  # CPU stream: the same draws on any device

    def __len__(self) -> int:
        return 0 if self.images is None else int(self.images.shape[0])

    def mix(self, fake: torch.Tensor) -> torch.Tensor:
        """fake: (B, C, H, W) in [-1, 1], detached -> (B, C, H, W), half of it from the pool."""
        q = to_uint8(fake)
        if len(self) < self.size:  # filling: D sees this batch as it is
            room = self.size - len(self)
            self.images = q[:room] if self.images is None else torch.cat([self.images, q[:room]])
            self.offered += min(room, q.shape[0])
            return fake
        assert self.images is not None
        k = fake.shape[0] // 2
        drawn = torch.randint(self.size, (k,), generator=self.gen).to(q.device)
        old = from_uint8(self.images[drawn], fake.dtype).contiguous(memory_format=_layout(fake))
        slots = torch.randint(2**62, (k,), generator=self.gen).tolist()
        for i, r in enumerate(slots):  # reservoir sampling, one offer at a time
            self.offered += 1
            if (j := r % self.offered) < self.size:
                self.images[j] = q[i]
        return torch.cat([old, fake[k:]])

    def state_dict(self) -> dict[str, Any]:
        # copies: the pool changes in place, and a roll-back keeps this dict in memory
        return {"size": self.size, "images": None if self.images is None else self.images.cpu().clone(),
                "offered": self.offered, "rng": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        images = state.get("images")
        self.images = None if images is None else images[: self.size].to(device).clone()
        self.offered = int(state.get("offered", len(self)))
        self.gen.set_state(state["rng"])


def _layout(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous() else torch.contiguous_format
