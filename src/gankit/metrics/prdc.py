"""Precision, recall (Kynkäänniemi et al. 2019) and density, coverage (Naeem
et al. 2020) from k-nearest-neighbour balls in feature space.

Each sample gets a ball whose radius is the distance to its k-th nearest
neighbour in its own set (k = 3, the papers' default).

- precision: share of fakes inside some real ball (are fakes realistic?);
- recall: share of reals inside some fake ball (is the real variety covered?);
- density: real balls containing each fake, divided by k, averaged (can
  exceed 1; robust to real outliers, unlike precision);
- coverage: share of reals whose ball contains at least one fake.

Distances are computed in float64 in row blocks, so memory stays at
``block x N`` even for 50 000 samples.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

DEFAULT_K = 3
BLOCK = 1024


def _blocks(a: np.ndarray, b: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield (rows, Euclidean distances of a[rows] to all of b)."""
    bb = (b * b).sum(1)
    for start in range(0, len(a), BLOCK):
        rows = slice(start, start + BLOCK)
        ab = a[rows]
        d2 = (ab * ab).sum(1)[:, None] + bb[None, :] - 2.0 * ab @ b.T
        yield rows, np.sqrt(np.clip(d2, 0.0, None))


def knn_radii(x: np.ndarray, k: int = DEFAULT_K) -> np.ndarray:
    """Distance from each row of x to its k-th nearest other row."""
    if len(x) <= k:
        raise ValueError(f"need more than k={k} samples, got {len(x)}")
    radii = np.empty(len(x))
    for rows, d in _blocks(x, x):
        # column k of the sorted row: column 0 is the sample itself (distance 0)
        radii[rows] = np.partition(d, k, axis=1)[:, k]
    return radii


def prdc(real: np.ndarray, fake: np.ndarray, k: int = DEFAULT_K) -> dict[str, float]:
    """precision, recall, density and coverage of ``fake`` against ``real``."""
    x = np.asarray(real, dtype=np.float64)
    y = np.asarray(fake, dtype=np.float64)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature sizes differ: {x.shape[1]} vs {y.shape[1]}")
    r_real, r_fake = knn_radii(x, k), knn_radii(y, k)
    fake_in_real = np.zeros(len(y), dtype=bool)  # precision
    balls_per_fake = np.zeros(len(y))  # density
    nearest_fake = np.full(len(x), np.inf)  # coverage
    real_in_fake = np.zeros(len(x), dtype=bool)  # recall
    for rows, d in _blocks(x, y):  # d: (block of reals, all fakes)
        inside = d <= r_real[rows, None]
        fake_in_real |= inside.any(0)
        balls_per_fake += inside.sum(0)
        nearest_fake[rows] = d.min(1)
        real_in_fake[rows] = (d <= r_fake[None, :]).any(1)
    return {
        "precision": float(fake_in_real.mean()),
        "recall": float(real_in_fake.mean()),
        "density": float(balls_per_fake.mean() / k),
        "coverage": float((nearest_fake <= r_real).mean()),
    }
