"""Class conditioning for the trainer: which runs are conditional, the classes
of generated batches, and the fixed classes of the sample grids.

Why a module of its own: the training loop stays the same for conditional and
unconditional runs (it calls G and D through `bind`), and an unconditional
run draws exactly the random numbers it drew before labels existed: nothing
here touches an RNG unless the run is conditional.

Real images bring their own labels (train/batches.py); generated ones get
classes drawn from the run's z stream, with the data's class frequencies (so
G is asked for what D sees) or uniformly with ``--class-balance`` (where real
batches are drawn uniformly over classes too).  Like z they are drawn for the
global batch and sliced per rank, so N ranks compute what one process would.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from gankit.config import TrainConfig
from gankit.data.dataset import ImageDataset
from gankit.errors import UsageError

MAX_GRID_CLASSES = 16  # sample grids show one row per class for at most this many classes
GRID_COLUMNS = 8  # fixed latents per row of a conditional sample grid (at most --num-samples)


def resolve_conditional(cfg: TrainConfig, dataset: ImageDataset) -> TrainConfig:
    """``cfg`` with ``conditional`` decided (True when the dataset has labels,
    unless --no-conditional), so the saved config and a resume are exact."""
    labelled = dataset.labels is not None
    if cfg.conditional and not labelled:
        raise UsageError(f"--conditional: dataset {dataset.path} has no labels; make a labelled one "
                         "(`gankit data folder SRC --labels subdirs`, `data fetch --label-column`, "
                         "`data atari --game A,B`) or drop --conditional")
    if cfg.class_balance and not labelled:
        raise UsageError(f"--class-balance: dataset {dataset.path} has no labels to balance")
    if labelled and dataset.num_classes < 2 and cfg.conditional is None:
        return cfg.replace(conditional=False)  # one class: nothing to condition on
    return cfg.replace(conditional=labelled if cfg.conditional is None else bool(cfg.conditional))


def bind(module: nn.Module | Callable[..., torch.Tensor], y: torch.Tensor | None) -> Callable[..., torch.Tensor]:
    """``module`` itself when ``y`` is None, else x -> module(x, y): the loop
    (and a loss's penalty, which calls D on images alone) stays label-blind."""
    if y is None:
        return module
    return lambda x: module(x, y)


class Conditioning:
    """The class side of a run.  ``enabled`` False: every method returns None
    and draws nothing."""

    def __init__(self, cfg: TrainConfig, dataset: ImageDataset, z_gen: torch.Generator, device: torch.device,
                 rank: int = 0, world: int = 1):
        self.enabled = bool(cfg.conditional)
        self.classes = list(dataset.classes) if self.enabled else []
        self.num_classes = len(self.classes)
        self.z_gen, self.device, self.rank, self.world = z_gen, device, rank, world
        self.probs: torch.Tensor | None = None
        if self.enabled:
            counts = torch.tensor(dataset.class_counts, dtype=torch.float64)
            weights = (counts > 0).double() if cfg.class_balance else counts
            self.probs = (weights / weights.sum()).float().to(device)  # (K,): P(class) of a generated image
        rows = min(self.num_classes, MAX_GRID_CLASSES)
        self.grid = (rows, min(cfg.num_samples, GRID_COLUMNS)) if self.enabled else None  # (rows, cols)

    def fake_labels(self, batch: int) -> torch.Tensor | None:
        """This rank's (batch,) int64 classes of the global batch's generated images."""
        if self.probs is None:
            return None
        y = torch.multinomial(self.probs, batch * self.world, replacement=True, generator=self.z_gen)
        return y[self.rank * batch : (self.rank + 1) * batch]

    def grid_inputs(self, fixed_z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(z, y) for a sample grid: unconditional, ``fixed_z`` as it is; conditional,
        one row per class (the first 16) and the same first latents in every row."""
        if self.grid is None:
            return fixed_z, None
        rows, cols = self.grid
        z = fixed_z[:cols].repeat(rows, 1)  # (rows*cols, latent): row r, column c holds latent c
        y = torch.arange(rows).repeat_interleave(cols)  # (rows*cols,): row r is class r
        return z, y

    @property
    def grid_cols(self) -> int | None:
        """Columns of the sample grids (None: the usual near-square grid)."""
        return self.grid[1] if self.grid is not None else None

    def state(self) -> dict[str, Any]:
        """What a checkpoint of this run carries: ``classes`` when conditional."""
        return {"classes": list(self.classes)} if self.enabled else {}
