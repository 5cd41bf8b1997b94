"""What ``--device`` may say, and the torch device it means, for every command.

One reading for `train`, `bench`, `sample`, `interpolate` and `eval`:
``auto`` (CUDA, else Apple's MPS, else the CPU), ``cpu``, ``cuda``,
``cuda:N`` or ``mps``.  A device this machine lacks is a one-line
`UsageError` naming what is there, never a traceback from deep inside torch.
The spelling is checked without importing torch (`check_device_name`), so
``gankit train --dry-run`` stays fast; `resolve_device` asks torch.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from gankit.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    import torch

DEVICE_HELP = "auto (CUDA, else Apple MPS, else CPU), cpu, cuda, cuda:N or mps"
_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_device_name(text: str, flag: str = "--device") -> str:
    """The name itself, or a UsageError when it is none of DEVICE_HELP."""
    if not _PATTERN.match(str(text)):
        raise UsageError(f"{flag}: expected {DEVICE_HELP}, got {text!r}")
    return str(text)


def mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def present() -> str:
    """The devices this machine offers, in words (for error messages)."""
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        found.append("cuda" + (f" (cuda:0..cuda:{count - 1})" if count > 1 else ""))
    if mps_available():
        found.append("mps")
    return ", ".join(found)


def resolve_device(text: str, flag: str = "--device") -> torch.device:
    """The torch device for a --device value; a UsageError when it is absent here."""
    import torch

    name = check_device_name(text, flag)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_available() else "cpu")
    device = torch.device(name)
    hint = f"this machine has: {present()}; use --device auto or cpu"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this PyTorch is a CPU-only build" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise UsageError(f"{flag}: {name} requested but {why}", hint=hint)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"{flag}: {name} requested but there are only {torch.cuda.device_count()} CUDA device(s)",
                             hint=hint)
    if device.type == "mps" and not mps_available():
        raise UsageError(f"{flag}: mps requested but this machine has no Apple GPU (MPS) for PyTorch", hint=hint)
    return device
