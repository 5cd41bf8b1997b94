"""Complete, crash-safe checkpoints.

A checkpoint is a plain dict of state_dicts, tensors and numbers (no pickled
modules), so it loads with ``torch.load(weights_only=True)``: G, D, the EMA
generator, both optimisers, the gradient scaler, augmentation state, counters,
every RNG state, the resolved config and the gankit version.

Writing goes to a temporary file in the same folder, is flushed to disk, then
renamed over the final name: a crash leaves either the old set of checkpoints
or the new one, never a half-written file.  Older checkpoints are deleted only
after the new one is in place, and so are the temporary files that a process
killed mid-write (kill -9, power loss) left behind.  A write that fails for
lack of space or permission raises a one-line `EnvironmentProblem` naming the
file, after removing its own temporary file.
"""
from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

__all__ = ["BEST", "atomic_save", "checkpoint_name", "latest_checkpoint", "list_checkpoints", "load_checkpoint",
           "save_checkpoint", "rng_state", "set_rng_state", "all_finite", "remove_temporary"]

import numpy as np
import torch

from gankit.errors import UsageError
from gankit.fsproblems import is_environment, os_error_in, problem
from gankit.runpaths import RunDir, checkpoint_name, latest_checkpoint, list_checkpoints

TEMPORARY = re.compile(r"^\..+\.pt\.tmp\d*$")  # atomic_save's names: .ckpt-000000256.pt.tmp<pid>
BEST = RunDir.BEST  # the state with the lowest evaluation score (see metrics/training.py)
# checkpoint_name, list_checkpoints and latest_checkpoint live in gankit.runpaths, with the run's other names


def atomic_save(obj: Any, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except Exception as err:
        cause = os_error_in(err)  # torch reports a failed write as RuntimeError("unexpected pos ...")
        if cause is not None and is_environment(cause):
            raise problem(cause, path, "cannot write checkpoint") from None
        raise
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def remove_temporary(folder: Path) -> list[Path]:
    """Delete temporary checkpoint files left by killed writers (call with the run locked)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    gone = [p for p in folder.iterdir() if TEMPORARY.match(p.name)]
    for p in gone:
        p.unlink(missing_ok=True)
    return gone


def save_checkpoint(state: dict[str, Any], folder: Path, images_seen: int, keep: int) -> Path:
    """Write ``ckpt-<images>.pt`` atomically, then prune to the newest ``keep``."""
    path = atomic_save(state, Path(folder) / checkpoint_name(images_seen))
    for old in list_checkpoints(folder)[:-keep]:
        if old != path:
            old.unlink(missing_ok=True)
    remove_temporary(folder)
    return path


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with weights_only=True; any damage becomes an error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--checkpoint: no such file {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for a damaged file
        raise UsageError(f"checkpoint {path} is damaged or not a gankit checkpoint: {err}") from None
    if not isinstance(state, dict) or "G" not in state or "config" not in state:
        raise UsageError(f"checkpoint {path} is not a gankit checkpoint (no generator/config inside)")
    return state


def rng_state() -> dict[str, Any]:
    """Every RNG the training touches, in a weights_only-loadable form."""
    np_state: Any = np.random.get_state()  # (name, keys, pos, has_gauss, cached)
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def all_finite(*modules: torch.nn.Module) -> bool:
    """True when every parameter and buffer of the modules is finite."""
    for m in modules:
        for t in list(m.parameters()) + list(m.buffers()):
            if t.is_floating_point() and not torch.isfinite(t).all():
                return False
    return True
