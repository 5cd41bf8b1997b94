"""Training: the loop (`loop.py`) around the parts it drives (`parts.py`:
hardware, state, step, budget), checkpoints, EMA, batches, torchrun support.
docs/architecture.md walks through them.

``gankit.train(config)`` is the API entry point.  The package is itself
callable for that, because once ``gankit.train.loop`` is imported Python binds
the name ``gankit.train`` to this package, which would otherwise hide a plain
function of the same name.
"""
from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from gankit.config import TrainConfig


class _CallablePackage(types.ModuleType):
    def __call__(self, config: TrainConfig | None = None, resume: str | Path | None = None, **kw: Any) -> Path:
        """Train to the config's budget; returns the run directory (see loop.train)."""
        from gankit.train.loop import train

        return train(config, resume=resume, **kw)


sys.modules[__name__].__class__ = _CallablePackage
