"""gankit: train GANs on your images and see, while they train, whether they learn.

The Python API mirrors the CLI::

    import gankit
    ds = gankit.data.load_dataset("data/breakout")
    run_dir = gankit.train(gankit.TrainConfig.from_preset("breakout", data="data/breakout"))
    G = gankit.load_generator(run_dir)      # z -> images in [-1, 1]
    images = gankit.sample.generate(G, 16)  # submodules load on first use
"""
from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

__all__ = ["__version__", "train", "load_generator", "TrainConfig"]
# `gankit.sample.generate(...)` and the like work after a bare `import gankit`
SUBMODULES = ("sample", "data", "metrics", "models", "losses", "monitor", "augment", "presets")

if TYPE_CHECKING:  # pragma: no cover
    from gankit.config import TrainConfig


def __getattr__(name: str) -> Any:
    # Imported lazily so that `gankit --help` and `gankit data ...` do not pay
    # for importing torch and the models.
    if name == "train":
        import gankit.train  # a callable package: gankit.train(config)

        return gankit.train
    if name == "load_generator":
        from gankit.sample import load_generator

        return load_generator
    if name == "TrainConfig":
        from gankit.config import TrainConfig

        return TrainConfig
    if name in SUBMODULES:
        import importlib

        return importlib.import_module(f"gankit.{name}")
    raise AttributeError(f"module 'gankit' has no attribute {name!r}")
