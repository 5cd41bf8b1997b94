"""Run directories: ``runs/00007-breakout``, numbered so that runs sort in the
order they were started and a name is never reused."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from gankit.config import TrainConfig
from gankit.errors import UsageError

NUMBERED = re.compile(r"^(\d{5})-")


def next_run_name(out: Path, label: str) -> str:
    used = [int(m.group(1)) for p in out.iterdir() if (m := NUMBERED.match(p.name))] if out.is_dir() else []
    return f"{max(used, default=-1) + 1:05d}-{label}"


def make_run_dir(config: TrainConfig, dist: Any = None) -> Path:
    """Create the run directory on rank 0 and tell the other ranks its name."""
    out = Path(config.out)
    name = config.name
    if dist is None or dist.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        if not name:
            name = next_run_name(out, config.preset or config.model)
        run = out / name
        if run.is_dir() and any(run.iterdir()):
            raise UsageError(f"--name: run directory {run} already holds a run; continue it with --resume {run} "
                             "or pick another name")
        run.mkdir(parents=True, exist_ok=True)
    if dist is not None and dist.enabled:
        from gankit.train.distributed import broadcast_object

        name = broadcast_object(name, dist)
    return out / name


def write_config(run_dir: Path, config: TrainConfig, shape: tuple[int, int, int]) -> Path:
    values = config.to_dict()
    values["image_shape"] = list(shape)  # (C, H, W) the models were built for
    path = run_dir / "config.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def read_config(run_dir: Path) -> dict[str, Any]:
    return yaml.safe_load((Path(run_dir) / "config.yaml").read_text())
