"""A trained generator in one safetensors file: weights plus a JSON header.

Why: a training checkpoint is a pickle (``torch.load``) holding optimisers,
RNG states and the whole config; sharing it means asking the receiver to
unpickle it, and rebuilding the network needs gankit's config machinery.  A
safetensors file is raw tensors behind a JSON header, so reading one can
never run code, and the header here says everything ``build_generator``
needs (architecture, latent size, resolution, channels, classes), how to feed
and read the network (z ~ N(0, I); output in [-1, 1]) and where it came
from.  Nothing in this module calls pickle or ``torch.load``.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gankit.errors import EnvironmentProblem, UsageError

FORMAT = "gankit-generator/1"
SUFFIX = ".safetensors"
# build_generator's keyword arguments: the whole architecture
ARCH_KEYS = ("model", "height", "width", "channels", "latent", "width_g", "coords", "attention")
# ... and those only a conditional generator's header holds (files without them are unconditional)
# (and ``image_layer``, written only when it is not the default "transposed", so older files still load)
OPTIONAL_ARCH_KEYS = ("num_classes", "image_layer")
# How to feed the network and read what it gives; written into every header.
NORMALISATION = {"input": "z ~ N(0, I), shape (B, latent), float32",
                 "output": "images (B, C, H, W), float32 in [-1, 1]; (x + 1) * 127.5 gives 0..255"}


def architecture(cfg: Any, shape: tuple[int, int, int], num_classes: int = 0) -> dict[str, Any]:
    """The ``build_generator`` arguments of a run with TrainConfig ``cfg`` and image shape (C, H, W)
    (``num_classes`` for a conditional generator)."""
    C, H, W = shape
    arch = {"model": cfg.model, "height": int(H), "width": int(W), "channels": int(C), "latent": int(cfg.latent),
            "width_g": int(cfg.width_g), "coords": bool(cfg.coord_conv), "attention": int(cfg.attention)}
    if num_classes:
        arch["num_classes"] = int(num_classes)
    if getattr(cfg, "image_layer", "transposed") != "transposed":
        arch["image_layer"] = str(cfg.image_layer)
    return arch


def save_generator_file(G: nn.Module, arch: dict[str, Any], path: str | Path,
                        source: dict[str, Any] | None = None, classes: list[str] | None = None) -> dict[str, Any]:
    """Write G's weights and a header to ``path`` (atomically); returns the header."""
    from safetensors.torch import save_file

    from gankit import __version__

    missing = [k for k in ARCH_KEYS if k not in arch]
    if missing:
        raise ValueError(f"architecture lacks {missing}")
    keys = ARCH_KEYS + tuple(k for k in OPTIONAL_ARCH_KEYS if arch.get(k))
    header = {"format": FORMAT, "architecture": {k: arch[k] for k in keys}, "classes": classes,
              "normalisation": NORMALISATION, "gankit_version": __version__, "source": source or {}}
    # safetensors refuses shared or non-contiguous storage: give it plain copies
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in G.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"gankit": json.dumps(header, sort_keys=True)})
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; the file is meant to be shared
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise EnvironmentProblem(f"cannot write {path}: {err.strerror or err}") from None
    return header


def read_header(path: str | Path) -> dict[str, Any]:
    """The gankit header of a generator file (weights are not read)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no such generator file {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise UsageError(f"{path} is not a safetensors file: {err}") from None
    try:
        header = json.loads(meta["gankit"])
    except (KeyError, ValueError):
        raise UsageError(f"{path} is a safetensors file but not a gankit generator (no gankit header)") from None
    if header.get("format") != FORMAT:
        raise UsageError(f"{path}: unsupported generator format {header.get('format')!r} (this gankit reads {FORMAT})")
    arch = header.get("architecture")
    if not isinstance(arch, dict) or sorted(set(arch) - set(OPTIONAL_ARCH_KEYS)) != sorted(ARCH_KEYS):
        raise UsageError(f"{path}: the header's architecture must name exactly {', '.join(ARCH_KEYS)} "
                         f"(and optionally {', '.join(OPTIONAL_ARCH_KEYS)})")
    classes = header.get("classes")
    if arch.get("num_classes") and (not isinstance(classes, list) or len(classes) != arch["num_classes"]):
        raise UsageError(f"{path}: a conditional generator's header must list its {arch['num_classes']} classes")
    return header


def load_generator_file(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The generator stored in ``path``, rebuilt from its header alone, in eval mode."""
    from safetensors.torch import load_file

    from gankit.models import build_generator

    header = read_header(path)
    G = build_generator(**header["architecture"])
    try:
        G.load_state_dict(load_file(str(path), device="cpu"))
    except RuntimeError as err:
        raise UsageError(f"{path}: weights do not match the header's architecture: "
                         f"{str(err).splitlines()[0]}") from None
    G.header = header  # type: ignore[assignment]  # callers may want the source and classes
    G.classes = list(header.get("classes") or []) if G.num_classes else []  # type: ignore[assignment]
    return G.to(device).eval().requires_grad_(False)
