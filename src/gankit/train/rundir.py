"""Run directories: ``runs/00007-breakout``, numbered so that runs sort in the
order they were started and a name is never reused.

A run directory is claimed with an atomic ``mkdir`` (two runs started at once
get two numbers) and then locked (`gankit.train.lock`) by the one process
that writes it.  ``--name`` is a plain folder name: never a path that could
write outside ``--out``.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from gankit.config import TrainConfig
from gankit.errors import UsageError
from gankit.fsproblems import problem
from gankit.runpaths import RunDir
from gankit.train.lock import LOCK_FILE

NUMBERED = re.compile(r"^(\d{5})-")
# temporary files of interrupted writes: checkpoints (.ckpt-*.pt.tmpPID), images (x.tmp.png), the GIF, indexes
LEFTOVER = re.compile(r"(^\..*\.tmp\d*$)|(\.tmp\.png$)|(\.tmp$)")


def check_name(name: str) -> str:
    """``--name`` must be one plain folder name inside ``--out``."""
    if name in (".", "..") or "/" in name or "\\" in name or os.sep in name or "\0" in name or name.startswith("~"):
        raise UsageError(f"--name: {name!r} is not a plain name (no '/', '..' or absolute path); "
                         "use --out to choose where runs go")
    return name


def next_run_name(out: Path, label: str) -> str:
    used = [int(m.group(1)) for p in out.iterdir() if (m := NUMBERED.match(p.name))] if out.is_dir() else []
    return f"{max(used, default=-1) + 1:05d}-{label}"


def holds_run(run: Path) -> bool:
    """True when the folder has anything but the lock file in it."""
    return run.is_dir() and any(p.name != LOCK_FILE for p in run.iterdir())


def claim_run_dir(config: TrainConfig) -> tuple[Path, bool]:
    """Create (or reuse an empty) run directory; returns it and whether it was created here."""
    out = Path(config.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        if config.name:
            run = out / check_name(config.name)
            created = not run.exists()
            run.mkdir(exist_ok=True)
            return run, created
        label = config.preset or config.model
        for _ in range(1000):  # another process may take a number between listing and mkdir
            run = out / next_run_name(out, label)
            try:
                run.mkdir()
                return run, True
            except FileExistsError:
                continue
    except OSError as err:
        raise problem(err, out, "--out: cannot create a run directory in") from None
    raise UsageError(f"--out: could not claim a new run number in {out}")


def clear_run_dir(run: Path) -> list[str]:
    """Empty a run directory (all but the lock) for a restart in place; returns what was removed."""
    removed = []
    for p in sorted(run.iterdir()):
        if p.name == LOCK_FILE:
            continue
        removed.append(p.name)
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    return removed


def remove_leftovers(run: Path) -> list[Path]:
    """Delete the temporary files of writes that a crash or kill -9 interrupted."""
    gone = []
    for root, _dirs, files in os.walk(run):
        for name in files:
            if LEFTOVER.search(name):
                path = Path(root) / name
                path.unlink(missing_ok=True)
                gone.append(path)
    return gone


def write_config(run_dir: Path, config: TrainConfig, shape: tuple[int, int, int]) -> Path:
    values = config.to_dict()
    values["image_shape"] = list(shape)  # (C, H, W) the models were built for
    path = RunDir(run_dir).config
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(values, sort_keys=False))
    tmp.replace(path)  # never a half-written config.yaml
    return path


def read_config(run_dir: Path) -> dict[str, Any]:
    return yaml.safe_load(RunDir(run_dir).config.read_text())
