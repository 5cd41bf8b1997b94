"""The one dataset format every source writes and every stage reads.

A dataset is a folder with two files (three when it is labelled):

- ``images.npy``: uint8 array of shape (N, H, W, C), C = 3 (RGB) or 1 (grey),
  stored as a plain NumPy file so it can be memory-mapped: training on 50k
  frames never needs them all in RAM.
- ``manifest.json``: count, height, width, channels, the source and its
  parameters, creation time, gankit version and every skipped input with its
  reason.
- ``labels.npy`` (optional): int64 array of shape (N,), the class index of
  each image; the manifest then holds ``classes`` (names, index order) and
  ``class_counts``.  Datasets without it are unlabelled, as before labels
  existed, and load unchanged.

The manifest is written last (by `gankit.data.writer`), so a folder without
one is an unfinished dataset; every file is written under a temporary name
and renamed.  A folder
that holds a manifest is never replaced or extended unless the caller says so
(``existing="overwrite"`` or ``"append"``): a typo in ``--out`` must not cost
a dataset that took hours to collect.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gankit.errors import UsageError

IMAGES = "images.npy"
MANIFEST = "manifest.json"
LABELS = "labels.npy"
EXISTING = ("refuse", "overwrite", "append")  # what a writer does with a dataset already at its folder


@dataclass
class ImageDataset:
    """A dataset on disk: ``images`` is a read-only memory map (N, H, W, C);
    ``labels`` is the (N,) int64 class index of each image, or None."""

    path: Path
    images: np.ndarray
    manifest: dict[str, Any]
    labels: np.ndarray | None = None

    @property
    def classes(self) -> list[str]:
        """Class names in index order; [] for an unlabelled dataset."""
        return list(self.manifest.get("classes") or []) if self.labels is not None else []

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def class_counts(self) -> list[int]:
        """Images per class, in index order ([] when unlabelled)."""
        if self.labels is None:
            return []
        return [int(n) for n in np.bincount(self.labels, minlength=self.num_classes)]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> np.ndarray:
        return self.images[index]

    @property
    def height(self) -> int:
        return int(self.images.shape[1])

    @property
    def width(self) -> int:
        return int(self.images.shape[2])

    @property
    def channels(self) -> int:
        return int(self.images.shape[3])

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one image."""
        return self.height, self.width, self.channels


def load_dataset(path: str | os.PathLike[str]) -> ImageDataset:
    """Open a dataset folder without reading the images into memory."""
    root = Path(path)
    manifest_path = root / MANIFEST
    images_path = root / IMAGES
    if not root.is_dir():
        raise UsageError(f"dataset {root}: no such folder (make one with `gankit data ...`)")
    if not manifest_path.is_file() or not images_path.is_file():
        raise UsageError(
            f"dataset {root}: not a gankit dataset (needs {IMAGES} and {MANIFEST}; "
            "an interrupted `gankit data` run leaves no manifest)"
        )
    try:
        manifest = json.loads(manifest_path.read_text())
        images = np.load(images_path, mmap_mode="r")
    except (ValueError, OSError) as err:
        raise UsageError(f"dataset {root}: cannot read it: {err}") from err
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] not in (1, 3):
        raise UsageError(
            f"dataset {root}: {IMAGES} must be uint8 (N, H, W, 1|3), found {images.dtype} {images.shape}"
        )
    if int(manifest.get("count", -1)) != images.shape[0]:
        raise UsageError(
            f"dataset {root}: manifest says {manifest.get('count')} images, {IMAGES} holds {images.shape[0]}"
        )
    return ImageDataset(root, images, manifest, _load_labels(root, manifest, images.shape[0]))


def _load_labels(root: Path, manifest: dict[str, Any], count: int) -> np.ndarray | None:
    """labels.npy checked against the manifest; None for an unlabelled dataset."""
    path = root / LABELS
    classes = manifest.get("classes")
    if classes is None and not path.is_file():
        return None
    if classes is None or not path.is_file():
        raise UsageError(
            f"dataset {root}: {LABELS} and the manifest's classes come together; "
            f"found only {'the classes' if classes is not None else LABELS} (an interrupted rewrite?)"
        )
    try:
        labels = np.load(path)
    except (ValueError, OSError) as err:
        raise UsageError(f"dataset {root}: cannot read {LABELS}: {err}") from err
    if labels.dtype != np.int64 or labels.shape != (count,):
        raise UsageError(f"dataset {root}: {LABELS} must be int64 ({count},), found {labels.dtype} {labels.shape}")
    if count and (labels.min() < 0 or labels.max() >= len(classes)):
        raise UsageError(f"dataset {root}: {LABELS} holds class indices outside 0..{len(classes) - 1}")
    labels.flags.writeable = False
    return labels


def resolve_class(classes: Sequence[str], value: str | int, flag: str = "--class") -> int:
    """A class given by name or index -> its index; `UsageError` (naming
    ``flag``) lists the valid ones.  A name wins over an index, so folders
    named 0..9 mean what they say."""
    if not classes:
        raise UsageError(f"{flag}: the dataset or generator has no classes")
    text = str(value).strip()
    if text in classes:
        return list(classes).index(text)
    if text.lstrip("-").isdigit() and 0 <= int(text) < len(classes):
        return int(text)
    listed = ", ".join(f"{i}={name}" for i, name in enumerate(classes))
    raise UsageError(f"{flag}: unknown class {value!r}; valid: {listed}")


def fingerprint(ds: ImageDataset) -> dict[str, Any]:
    """What identifies a dataset's contents: count, image shape (H, W, C) and a
    hash of its manifest (which records the source, its parameters and the
    creation time).  Stored in checkpoints and evaluation records, so a resumed
    run or a score is never silently computed against other data."""
    try:
        digest = hashlib.sha256((ds.path / MANIFEST).read_bytes()).hexdigest()[:16]
    except OSError:
        digest = ""
    return {"count": len(ds), "shape": list(ds.shape), "manifest_sha256": digest}


def describe_fingerprint(fp: dict[str, Any]) -> str:
    h, w, c = fp.get("shape", ["?", "?", "?"])
    return f"{fp.get('count')} images {h}x{w}x{c}, manifest {fp.get('manifest_sha256')}"


def iter_batches(ds: ImageDataset, batch: int) -> Iterator[np.ndarray]:
    """Yield consecutive (B, H, W, C) slices without loading the whole file."""
    for i in range(0, len(ds), batch):
        yield np.asarray(ds.images[i : i + batch])


def __getattr__(name: str) -> Any:
    # The writer moved to gankit.data.writer (it imports this module);
    # `gankit.data.dataset.DatasetWriter` and friends keep working.
    if name in ("DatasetWriter", "write_dataset", "check_target"):
        from gankit.data import writer

        return getattr(writer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
