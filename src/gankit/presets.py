"""Named starting points for `gankit train --preset NAME`.

A preset is a set of overrides on the TrainConfig defaults; every value can
still be overridden by a flag.  The comments say why each value was chosen.
"""
from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    # The canonical DCGAN recipe (Radford et al.; PyTorch's dcgan example):
    # batch 64, Adam 2e-4 / (0.5, 0.999), BCE.  The baseline the others beat.
    "dcgan": dict(model="dcgan", loss="bce", batch=64, lr_g=2e-4, lr_d=2e-4, epochs=5),
    # Breakout frames on a 2-core CPU in under 10 minutes (`make run`).
    # Measured on 64x64 frames collected by the ball-following agent:
    # - the DCGAN recipe above saturates: D(x) 0.999, D(G(z)) 0.003 within two
    #   epochs and the generator still draws noise (D tells real from fake by
    #   trivial cues);
    # - DiffAugment translation+cutout on D's inputs (real and fake alike)
    #   takes those cues away without leaking into the samples: D stays near
    #   85-95% right and walls, score bar and brick rows appear within a
    #   thousand steps;
    # - hinge + spectral norm learnt slower here at the same compute;
    # - width 32 and batch 32: about 4x less compute per step than width 64 /
    #   batch 64, so 3-4x more generator steps in the time, which is what the
    #   small paddle and ball need; bf16 autocast where the CPU has it (~1.5x).
    "breakout": dict(model="dcgan", loss="bce", width_g=32, width_d=32, batch=32, lr_g=2e-4, lr_d=2e-4,
                     diffaugment="translation,cutout", precision="auto", minutes=7.0, log_every=100,
                     ema_kimg=2.0),
    # 64x64 RGB sets of 1k-15k images (the trading-cards case).
    "cards64": dict(model="dcgan", loss="bce", batch=64, lr_g=2e-4, lr_d=2e-4, epochs=50),
}
