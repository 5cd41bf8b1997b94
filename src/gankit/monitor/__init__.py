"""Seeing the GAN learn: metrics, plots, sample grids, progress GIF,
TensorBoard, health checks with plain-word advice, and an HTML report.

The training loop creates one `RunMonitor` per run and calls it; everything
else here is the machinery behind it, also used by `gankit report RUN`.
`RunMonitor` is imported on first use so that `gankit report` does not pay
for importing torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gankit.monitor.events import HealthEvent
from gankit.monitor.health import HealthThresholds
from gankit.monitor.report import build_outputs

if TYPE_CHECKING:  # pragma: no cover
    from gankit.monitor.run_monitor import RunMonitor

__all__ = ["RunMonitor", "HealthEvent", "HealthThresholds", "build_outputs"]


def __getattr__(name: str) -> Any:
    if name == "RunMonitor":
        from gankit.monitor.run_monitor import RunMonitor

        return RunMonitor
    raise AttributeError(name)
