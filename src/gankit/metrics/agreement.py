"""Class agreement: does a conditional generator draw the class it was asked for?

FID cannot tell: a generator that draws perfect Pong frames when asked for
Breakout (and the reverse) has the overall FID of a perfect one.  So a
classifier trained on the real labelled images labels the generated ones,
and the score is the share whose predicted class is the requested one.

The classifier is a linear probe (multinomial logistic regression) on the
`dataset` extractor's features: nothing to download, seconds to fit, and
deterministic (full-batch L-BFGS in float64 from zero weights).  A fifth of
each class's real images is held out; the probe's accuracy on them is the
*ceiling*: a generator whose images are indistinguishable from real ones
scores about that, so agreement is read against it, not against 1.

The fitted probe is cached beside the dataset like the real statistics
(``probe-<dataset fingerprint>-<key>.npz``; the key covers the extractor's
id, the resolution and `PROBE`), so every evaluation on a dataset labels
images with the same classifier.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gankit.data.dataset import ImageDataset
from gankit.metrics.stats_cache import atomic_save_npz, cache_dir, dataset_fingerprint, remove_stale

# Changing any value here fits (and caches) a new probe.
PROBE: dict[str, Any] = {
    "version": 1,
    "max_images": 5000,   # real images the probe sees (the default `gankit eval --num`: shares its features)
    "holdout": 0.2,       # share of each class held out to measure the ceiling
    "steps": 200,         # L-BFGS iterations; 128-d features and a few classes converge well before
    "weight_decay": 1e-3,  # L2 on the weights: separable classes would otherwise push them to infinity
    "seed": 0,            # picks the real images and the held-out split
}


@dataclass
class Probe:
    """A fitted linear probe: features (N, D) -> class index."""

    mean: np.ndarray     # (D,) feature mean of the training split
    scale: np.ndarray    # (D,) feature standard deviation of the training split
    weight: np.ndarray   # (D, K)
    bias: np.ndarray     # (K,)
    ceiling: float       # accuracy on the held-out real images
    ceiling_per_class: np.ndarray  # (K,) the same, per class (NaN for a class with no held-out image)
    num_train: int
    num_holdout: int

    @property
    def num_classes(self) -> int:
        return int(self.bias.shape[0])

    def predict(self, features: np.ndarray) -> np.ndarray:
        x = (np.asarray(features, np.float64) - self.mean) / self.scale
        return np.argmax(x @ self.weight + self.bias, axis=1).astype(np.int64)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "scale": self.scale, "weight": self.weight, "bias": self.bias,
                "ceiling": np.array(self.ceiling), "ceiling_per_class": self.ceiling_per_class,
                "counts": np.array([self.num_train, self.num_holdout])}

    @classmethod
    def from_arrays(cls, f: Any) -> Probe:
        num_train, num_holdout = (int(v) for v in f["counts"])
        return cls(f["mean"], f["scale"], f["weight"], f["bias"], float(f["ceiling"]), f["ceiling_per_class"],
                   num_train, num_holdout)


def stratified_split(labels: np.ndarray, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, held-out indices): ``holdout`` of each class held out
    (at least one image of a class that has two or more), sorted."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for k in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == k))
        n_test = 0 if len(idx) < 2 else max(1, int(round(holdout * len(idx))))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def fit_probe(features: np.ndarray, labels: np.ndarray, num_classes: int,
              settings: dict[str, Any] = PROBE) -> Probe:
    """Multinomial logistic regression on standardised features, its ceiling
    measured on a stratified held-out split."""
    labels = np.asarray(labels, np.int64)
    train, test = stratified_split(labels, settings["holdout"], settings["seed"])
    x = np.asarray(features, np.float64)
    mean = x[train].mean(axis=0)
    scale = x[train].std(axis=0) + 1e-6  # a constant feature must not divide by zero
    xt = torch.from_numpy((x[train] - mean) / scale)
    yt = torch.from_numpy(labels[train])
    weight = torch.zeros(x.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=settings["steps"], history_size=20,
                            tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ weight + bias, yt)
        loss = loss + 0.5 * settings["weight_decay"] * (weight * weight).sum()
        loss.backward()
        return loss

    opt.step(closure)
    probe = Probe(mean, scale, weight.detach().numpy().copy(), bias.detach().numpy().copy(), float("nan"),
                  np.full(num_classes, np.nan), len(train), len(test))
    if len(test):
        right = probe.predict(x[test]) == labels[test]
        probe.ceiling = float(right.mean())
        for k in range(num_classes):
            mine = labels[test] == k
            if mine.any():
                probe.ceiling_per_class[k] = float(right[mine].mean())
    return probe


def probe_path(ds: ImageDataset, extractor_id: str, resolution: tuple[int, int],
               settings: dict[str, Any] = PROBE) -> Any:
    key = hashlib.sha256(json.dumps([extractor_id, list(resolution), settings], sort_keys=True).encode())
    return cache_dir(ds) / f"probe-{dataset_fingerprint(ds)}-{key.hexdigest()[:12]}.npz"


def cached_probe(ds: ImageDataset, extractor_id: str, resolution: tuple[int, int],
                 real_features: Callable[[int, int], tuple[np.ndarray, np.ndarray]],
                 settings: dict[str, Any] = PROBE) -> tuple[Probe, bool]:
    """(the probe of ``ds`` at ``resolution``, whether it came from the cache).
    ``real_features(count, seed)`` gives (features, labels) of ``count`` real
    images picked with ``seed``; it is called only when the probe is fitted."""
    if ds.labels is None:
        raise ValueError(f"dataset {ds.path} has no labels to fit a probe on")
    path = probe_path(ds, extractor_id, resolution, settings)
    if path.is_file():
        try:
            with np.load(path) as f:
                probe = Probe.from_arrays(f)
            if probe.num_classes == ds.num_classes:
                return probe, True
        except (OSError, ValueError, KeyError):
            pass  # damaged cache file: refit and overwrite
    feats, labels = real_features(min(settings["max_images"], len(ds)), settings["seed"])
    probe = fit_probe(feats, labels, ds.num_classes, settings)
    remove_stale(path.parent, "probe", dataset_fingerprint(ds))
    atomic_save_npz(path, **probe.arrays())
    return probe, False


def agreement(probe: Probe, features: np.ndarray, requested: np.ndarray) -> dict[str, Any]:
    """The share of images the probe puts in their requested class, overall
    and per class, with the probe's ceiling beside it."""
    requested = np.asarray(requested, np.int64)
    hit = probe.predict(features) == requested
    per_class = [float(hit[requested == k].mean()) if (requested == k).any() else None
                 for k in range(probe.num_classes)]
    return {"agreement": float(hit.mean()) if len(hit) else float("nan"), "agreement_ceiling": probe.ceiling,
            "per_class": per_class,
            "ceiling_per_class": [None if np.isnan(v) else float(v) for v in probe.ceiling_per_class]}
