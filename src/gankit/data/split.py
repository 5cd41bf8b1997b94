"""A held-out part of a dataset: ``split.json`` beside ``manifest.json``.

A generator that copies its training images and one that draws new images
like them score alike on FID and KID against the whole dataset.  Telling
them apart needs real images the generator never saw: `gankit data split
DATASET --holdout 0.1` sets a share of the images aside, training then reads
only the rest, and the memorisation check (`gankit.metrics.memorization`)
measures how close unseen real images are to the training ones.

The split is a file of its own, not a manifest field, so the dataset's
fingerprint (and every cache keyed on it: the trained `dataset` extractor,
the real features) stays valid; nothing in ``images.npy`` moves.  It lists
the held-out indices, chosen with a seeded generator, class by class when
the dataset is labelled (each class keeps its share), and records the
dataset's count and manifest hash: a split made for other contents (the
dataset was rewritten or appended to) is refused with the command that
makes a new one, never silently applied to other images.  It is written
under a temporary name and renamed, so an interrupted write leaves the old
split or none, never half of one.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gankit.data.dataset import ImageDataset, fingerprint
from gankit.errors import UsageError

SPLIT = "split.json"
VERSION = 1


@dataclass(frozen=True)
class Split:
    """Which images of a dataset are held out; the rest are the training part."""

    holdout: float  # the fraction asked for
    seed: int
    stratified: bool  # chosen class by class (a labelled dataset)
    count: int  # the dataset's size when the split was made
    heldout: np.ndarray  # sorted int64 indices of the held-out images

    @property
    def training(self) -> np.ndarray:
        """Sorted int64 indices of the training images (every index not held out)."""
        keep = np.ones(self.count, bool)
        keep[self.heldout] = False
        return np.flatnonzero(keep).astype(np.int64)

    @property
    def digest(self) -> str:
        """12 hex digits naming exactly these held-out indices (cache keys, records)."""
        return hashlib.sha256(self.heldout.astype("<i8").tobytes()).hexdigest()[:12]

    def describe(self) -> str:
        how = ", stratified by class" if self.stratified else ""
        return (f"{len(self.heldout)} of {self.count} images held out (--holdout {self.holdout:g}, "
                f"--seed {self.seed}{how}); {self.count - len(self.heldout)} for training")


def parse_fraction(text: str | float, flag: str = "--holdout") -> float:
    """A held-out fraction strictly between 0 and 1 (UsageError naming ``flag``)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise UsageError(f"{flag}: expected a fraction between 0 and 1, e.g. 0.1; got {text!r}") from None
    if not 0.0 < value < 1.0:  # (NaN fails this too)
        raise UsageError(f"{flag}: the held-out fraction must be between 0 and 1 (exclusive), e.g. 0.1; got {text!r}")
    return value


def choose_heldout(count: int, fraction: float, seed: int, labels: np.ndarray | None = None) -> np.ndarray:
    """Sorted indices of round(``fraction`` x n) images drawn with ``seed``; with
    ``labels``, round(``fraction`` x n_c) of each class c, so every class keeps its
    share on both sides.  At least one image is held out and one kept."""
    rng = np.random.default_rng(seed)
    groups = [np.arange(count)] if labels is None else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    picked = [rng.choice(g, int(round(fraction * len(g))), replace=False) for g in groups]
    chosen = np.concatenate(picked) if picked else np.zeros(0, np.int64)
    if len(chosen) == 0 and count >= 2:  # every class too small for its share: one image overall
        chosen = rng.choice(count, 1, replace=False)
    if len(chosen) >= count:  # a fraction near 1 on a tiny set: keep one image for training
        chosen = np.delete(np.sort(chosen), rng.integers(len(chosen)))
    return np.sort(chosen).astype(np.int64)


def split_path(ds: ImageDataset) -> Path:
    return ds.path / SPLIT


def make_split(ds: ImageDataset, fraction: float, seed: int = 0) -> Split:
    """The split of ``ds`` for ``fraction`` and ``seed`` (not written)."""
    fraction = parse_fraction(fraction)
    if len(ds) < 2:
        raise UsageError(f"DATASET: {ds.path} holds {len(ds)} image(s); a split needs at least 2")
    heldout = choose_heldout(len(ds), fraction, seed, ds.labels)
    return Split(fraction, int(seed), ds.labels is not None, len(ds), heldout)


def write_split(ds: ImageDataset, split: Split) -> Path:
    """Write ``split.json`` atomically (temporary file, fsync, rename); returns its path."""
    fp = fingerprint(ds)
    body = {"version": VERSION, "holdout": split.holdout, "seed": split.seed, "stratified": split.stratified,
            "count": split.count, "manifest_sha256": fp["manifest_sha256"],
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "heldout": [int(i) for i in split.heldout]}
    path = split_path(ds)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp"
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(json.dumps(body) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_split(ds: ImageDataset) -> Split | None:
    """The dataset's split, or None when it has none.  A damaged split, or one
    made for other contents of the folder, is a UsageError saying how to redo it."""
    path = split_path(ds)
    if not path.is_file():
        return None
    redo = f"make a new one with `gankit data split {ds.path} --holdout F`, or delete {path}"
    try:
        body: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        heldout = np.asarray(body["heldout"], dtype=np.int64)
        split = Split(float(body["holdout"]), int(body["seed"]), bool(body["stratified"]), int(body["count"]),
                      np.sort(heldout))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UsageError(f"dataset {ds.path}: cannot read {SPLIT} ({err}); {redo}") from None
    now = fingerprint(ds)
    if split.count != len(ds) or body.get("manifest_sha256") != now["manifest_sha256"]:
        raise UsageError(f"dataset {ds.path}: {SPLIT} was made for other contents of this folder ({split.count} "
                         f"images then, {len(ds)} now: it was rewritten or appended to); make a new one with "
                         f"`gankit data split {ds.path} --holdout {split.holdout:g} --seed {split.seed}`, "
                         f"or delete {path}")
    if len(heldout) and (heldout.min() < 0 or heldout.max() >= len(ds) or len(np.unique(heldout)) != len(heldout)):
        raise UsageError(f"dataset {ds.path}: {SPLIT} lists indices outside 0..{len(ds) - 1} or twice; {redo}")
    return split


def training_indices(ds: ImageDataset) -> np.ndarray | None:
    """The indices training may read: the training part of a split dataset, None (all) without a split."""
    split = read_split(ds)
    return None if split is None else split.training


def split_dataset(path: str | os.PathLike[str], fraction: float, seed: int = 0) -> list[str]:
    """`gankit data split`: make and write the split of the dataset at ``path``,
    replacing any earlier one; returns the lines saying what was done."""
    from gankit.data.dataset import load_dataset

    ds = load_dataset(path)
    try:
        before, stale = read_split(ds), ""
    except UsageError as err:  # a stale or damaged split is what this command replaces
        before, stale = None, str(err).split(": ", 1)[-1].split(";")[0]
    split = make_split(ds, fraction, seed)
    where = write_split(ds, split)
    if before is not None and np.array_equal(before.heldout, split.heldout):
        return [f"{where}: unchanged: {split.describe()}"]
    lines = [f"{where}: {split.describe()}"]
    if before is not None:
        lines.append(f"  replaced the previous split (--holdout {before.holdout:g}, --seed {before.seed}: "
                     f"{len(before.heldout)} held out); memorization scores compare only between runs trained "
                     "under the same split")
    elif stale:
        lines.append(f"  replaced a split that no longer fitted the dataset ({stale})")
    if ds.labels is not None:
        total = np.bincount(ds.labels, minlength=ds.num_classes)
        out = np.bincount(ds.labels[split.heldout], minlength=ds.num_classes)
        lines += [f"  class {name}: {o} of {t} held out" for name, t, o in zip(ds.classes, total, out)]
    lines.append(f"training on {ds.path} now reads only the {len(split.training)} training images")
    return lines
