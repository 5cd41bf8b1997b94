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
    # Breakout frames on a CPU in under 10 minutes: see the tuning notes below.
    "breakout": dict(model="seed", loss="bce", batch=64, lr_g=2e-4, lr_d=2e-4, minutes=8.0),
    # 64x64 RGB sets of 1k-15k images (the trading-cards case).
    "cards64": dict(model="dcgan", loss="bce", batch=64, lr_g=2e-4, lr_d=2e-4, epochs=50),
}
