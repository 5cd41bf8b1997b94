"""The parts of a split dataset as real image sets: the memorisation check,
the nearest-neighbours panel, and `gankit eval --real-part`.

`gankit.metrics.memorization` does the maths on feature arrays; this module
picks the images: up to ``num`` training images (seeded) as the reference
and up to ``num`` held-out ones for the threshold, both from the split of
`gankit data split` and both through the stats cache (keyed by the split's
digest, so another split never reads these features).  Without a split the
check refuses (exit 2) rather than splitting on the fly: the generator has
seen every image of an unsplit dataset, so no image of it can stand in for
an unseen one, and copies of the images set aside would go uncounted.

The panel shows, of the first `PANEL_POOL` generated images, the
`PANEL_ROWS` closest to a training image (the likeliest copies) beside
their `NEIGHBOURS` nearest training images, so a reader can judge with
their own eyes whether "close" means "copied".

`real_part` picks the real side of FID/KID/PR/DC: the whole dataset (as
before splits existed), or only its training or held-out part; scoring a
generator against both tells "close to what it saw" from "generalises".
Every image choice from a part goes through `part_images`.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from gankit.data.dataset import ImageDataset
from gankit.data.split import Split, read_split
from gankit.errors import UsageError
from gankit.metrics.image_sets import DatasetImages, ImageSet, features_of
from gankit.metrics.memorization import NEIGHBOURS, PERCENTILE, copy_score
from gankit.metrics.registry import FeatureExtractor
from gankit.metrics.stats_cache import cached_real_features

PANEL_POOL = 64  # generated images the panel picks from (regenerated cheaply: one batch)
PANEL_ROWS = 8
SEED = 0  # which training images form the reference when there are more than ``num``
REAL_PARTS = ("all", "train", "heldout")  # --real-part: the whole dataset, or one part of its split
PART_WORDS = {"train": "training", "heldout": "held-out"}


def require_split(ds: ImageDataset, flag: str = "--metrics", what: str = "memorization") -> Split:
    """The dataset's split, or a UsageError (naming ``flag``) that says how to make one."""
    split = read_split(ds)
    if split is None:
        raise UsageError(f"{flag}: {what} needs a held-out part of {ds.path}: run `gankit data split "
                         f"{ds.path} --holdout 0.1`, then train on it (the generator must not see the held-out "
                         "images); see docs/evaluation.md")
    return split


class PartImages(DatasetImages):
    """The images of a dataset at ``indices`` (sorted), resized to ``resolution``."""

    def __init__(self, ds: ImageDataset, indices: np.ndarray, resolution: tuple[int, int]) -> None:
        self.ds, self.resolution, self.seed = ds, resolution, SEED
        self.indices = np.sort(np.asarray(indices, dtype=np.int64))
        self.count = len(self.indices)
        self.labels = None if ds.labels is None else np.asarray(ds.labels[self.indices])
        self.classes = ds.classes


def part_images(ds: ImageDataset, split: Split, part: str, num: int, resolution: tuple[int, int],
                rng: np.random.Generator) -> PartImages:
    """Up to ``num`` images of the split's ``part`` ("train" or "heldout"),
    drawn with ``rng`` when the part holds more (all of it otherwise)."""
    pool = {"train": split.training, "heldout": split.heldout}[part]
    chosen = pool if len(pool) <= num else np.sort(rng.choice(pool, num, replace=False))
    return PartImages(ds, chosen, resolution)


@dataclass
class RealPart:
    """The real side of an evaluation: its images and the stats-cache id of their features."""

    part: str  # one of REAL_PARTS
    images: DatasetImages
    cache_id: str  # the extractor's id, plus the part and the split's digest for a part
    split: Split | None  # None for "all"

    def record(self) -> dict[str, Any] | None:
        """What an eval record says about the split (None for "all")."""
        if self.split is None:
            return None
        return {"part": self.part, "split": self.split.describe(), "split_digest": self.split.digest,
                "part_size": len(self.split.training if self.part == "train" else self.split.heldout)}


def real_part(ds: ImageDataset, part: str, num: int, resolution: tuple[int, int], seed: int,
              extractor_id: str) -> RealPart:
    """Up to ``num`` real images of ``part`` of ``ds``, picked with ``seed``.

    "all" is exactly the real side of evaluations before splits existed (same
    images, same cache key).  A part's cache id adds the part and the split's
    digest, so the parts never share features and a new split never reads
    old ones; "real:" keeps it apart from `part_features`' keys, whose
    held-out draw follows the training one on a shared generator."""
    if part == "all":
        return RealPart(part, DatasetImages(ds, num, resolution, seed=seed), extractor_id, None)
    if part not in PART_WORDS:
        raise UsageError(f"--real-part: expected one of {', '.join(REAL_PARTS)}; got {part!r}")
    split = require_split(ds, "--real-part", part)
    images = part_images(ds, split, part, num, resolution, np.random.default_rng(seed))
    return RealPart(part, images, f"{extractor_id}|real:{part}|{split.digest}", split)


@dataclass
class PartFeatures:
    """Features of a split dataset's two parts at one resolution."""

    split: Split
    train_index: np.ndarray  # (n_train,) dataset index of each row of ``train``
    train: np.ndarray  # (n_train, D)
    heldout: np.ndarray  # (n_heldout, D)


def part_features(ds: ImageDataset, split: Split, extractor: FeatureExtractor, resolution: tuple[int, int],
                  num: int, batch: int = 64) -> PartFeatures:
    """Up to ``num`` training images (seeded) and up to ``num`` held-out ones, through the cache."""
    rng = np.random.default_rng(SEED)
    parts = {}
    for name in ("train", "heldout"):
        images = part_images(ds, split, name, num, resolution, rng)
        feats, _ = cached_real_features(ds, f"{extractor.id}|{name}|{split.digest}", resolution, images.count, SEED,
                                        partial(features_of, extractor, images, batch))
        parts[name] = (images.indices, feats)
    return PartFeatures(split, parts["train"][0], parts["train"][1], parts["heldout"][1])


def memorization(parts: PartFeatures, fake_feats: np.ndarray) -> tuple[dict[str, float], dict[str, Any]]:
    """(the record's numbers, the details: threshold, sizes, split and the panel's rows)."""
    cs = copy_score(fake_feats, parts.train, parts.heldout)
    pool = min(PANEL_POOL, len(fake_feats))
    rows = np.argsort(cs.distances[:pool, 0], kind="stable")[:PANEL_ROWS]
    details = {
        "copy_score": cs.score, "threshold": cs.threshold, "percentile": PERCENTILE, "nn_ratio": cs.nn_ratio,
        "num_train": len(parts.train), "num_heldout": len(parts.heldout) - cs.heldout_twins,
        "heldout_twins": cs.heldout_twins, "num_fake": len(fake_feats),
        "split": parts.split.describe(), "split_digest": parts.split.digest,
        "panel": [{"fake": int(i), "nearest": [int(parts.train_index[j]) for j in cs.nearest[i]],
                   "distances": [float(d) for d in cs.distances[i]]} for i in rows],
    }
    return cs.values(), details


def memorization_of(real: ImageDataset, extractor: FeatureExtractor, resolution: tuple[int, int],
                    fake_feats: np.ndarray, num: int, batch: int = 64) -> tuple[dict[str, float], dict[str, Any]]:
    """`memorization` for ``real``'s split (UsageError without one)."""
    parts = part_features(real, require_split(real), extractor, resolution, num, batch)
    return memorization(parts, fake_feats)


def write_neighbours(path: Path, real: ImageDataset, fake: ImageSet, details: dict[str, Any]) -> Path:
    """Draw the panel of ``details`` (from `memorization`) to ``path`` (PNG, atomically)."""
    from gankit.monitor.neighbours import draw_panel

    first = next(fake.batches(PANEL_POOL)).permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, C) uint8
    rows = details["panel"]
    generated = first[[r["fake"] for r in rows]]
    near = [[_image(real, j, fake.resolution) for j in r["nearest"][:NEIGHBOURS]] for r in rows]
    copies = [r["distances"][0] < details["threshold"] for r in rows]
    return draw_panel(path, generated, near, copies)


def _image(ds: ImageDataset, index: int, resolution: tuple[int, int]) -> np.ndarray:
    """Dataset image ``index`` at the panel's resolution, (H, W, C) uint8."""
    return next(PartImages(ds, np.array([index]), resolution).batches(1))[0].permute(1, 2, 0).numpy()


def describe(details: dict[str, Any], panel: Path | None = None) -> str:
    """The lines `gankit eval` prints under the table about the copy score."""
    text = (f"memorization: {details['copy_score']:.3f} of {details['num_fake']} generated images are closer to one "
            f"of {details['num_train']} training images than {100 - details['percentile']:g}% of "
            f"{details['num_heldout']} held-out images are (threshold {details['threshold']:.4g}; about "
            f"{details['percentile'] / 100:.2f} when nothing is copied)")
    twins = details.get("heldout_twins", 0)
    if details["threshold"] == 0:
        text += "; the threshold is 0: every held-out image has an exact duplicate among the training images"
    elif twins:
        text += (f"; {twins} more held-out image(s) left out: each has an exact duplicate among the training "
                 "images, so it is not unseen")
    return text + (f"\nnearest neighbours: {panel}" if panel is not None else "")
