"""Shared fixtures: small real datasets made on the fly."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

# Keep the suite predictable on the 2-core CI machine.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def blobs(n: int, size: int = 16, channels: int = 3, seed: int = 0) -> np.ndarray:
    """(n, size, size, channels) uint8 images: a coloured square on a dark
    background at a random place, enough structure for a GAN to learn."""
    rng = np.random.default_rng(seed)
    out = np.full((n, size, size, channels), 20, np.uint8)
    s = max(2, size // 4)
    for i in range(n):
        y, x = rng.integers(0, size - s, 2)
        out[i, y:y + s, x:x + s] = rng.integers(120, 255, channels)
    return out


@pytest.fixture
def tiny_dataset(tmp_path):
    """256 images of 16x16 RGB written in the gankit dataset format."""
    from gankit.data import write_dataset

    return write_dataset(tmp_path / "tiny", blobs(256), source="test-blobs")


def train_plots_once(argv: list[str]) -> int:
    """`gankit ARGV` with the run's plots drawn once at the start and once at the end, not
    every few seconds: tests that check evaluation plumbing need not pay for redraws."""
    from gankit.cli import main

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("gankit.monitor.run_monitor.REDRAW_EVERY_S", 1e9)
        return main(argv)


@pytest.fixture(scope="module")
def quick_encoder():
    """For a module: the dataset extractor with a third of its recipe's steps, the same
    network trained faster, where tests check evaluation plumbing, not the extractor."""
    from gankit.metrics import dataset_encoder

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(dataset_encoder.RECIPE, "steps", 40)
        mp.setitem(dataset_encoder.RECIPE, "long", {**dataset_encoder.RECIPE["long"], "steps": 40})
        yield
