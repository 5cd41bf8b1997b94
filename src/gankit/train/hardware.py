"""Where training runs and in which precision, decided once at start.

``--precision auto`` picks bf16 only where the hardware does it natively
(emulated bf16 is slower than fp32), and the process-wide CPU settings
(threads, flush-to-zero of subnormal floats) are made here, not in the loop.
"""
from __future__ import annotations

import torch

from gankit.config import TrainConfig
from gankit.errors import UsageError

# x86 AVX512-BF16 / AMX, and the Arm feature name.
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def pick_precision(name: str, device: torch.device) -> str:
    """Resolve ``auto``: bf16 only where it is native (bf16 emulated on an old
    CPU is slower than fp32)."""
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "mps":  # autocast on MPS is young: fp32 is the safe choice
        return "fp32"
    native = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    flags = cpu_flags()
    if flags is not None:
        # oneDNN also says "supported" on AVX-512 CPUs without bf16 units, where
        # it converts in software: 74 vs 116 images/s against fp32 for the
        # breakout preset on such a Xeon (`gankit bench --preset breakout`).
        native = native and bool(flags & BF16_CPU_FLAGS)
    return "bf16" if native else "fp32"


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str] | None:
    """The CPU feature flags Linux reports, or None where there is no such file."""
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return set(value.split())
    except OSError:
        return None
    return None


def pick_device(name: str) -> torch.device:
    from gankit.device import resolve_device

    return resolve_device(name)


def configure(config: TrainConfig, device: torch.device) -> TrainConfig:
    """Apply the process-wide settings; returns the config with its precision resolved."""
    if config.threads:
        torch.set_num_threads(config.threads)
    # Subnormal floats make x86 CPUs 10x slower per operation; GAN weights
    # and Adam moments drift into that range within an epoch.
    torch.set_flush_denormal(True)
    config = config.replace(precision=pick_precision(config.precision, device))
    if config.precision == "fp16" and device.type != "cuda":
        raise UsageError("--precision: fp16 needs a CUDA device; use bf16 on the CPU")
    return config


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a resolved precision (None: fp32, no autocast)."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
