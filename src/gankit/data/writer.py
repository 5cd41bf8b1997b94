"""Writing the dataset format (see `gankit.data.dataset`): `DatasetWriter`
for sources that produce images as they go, `write_dataset` for a whole
array, and `check_target`, which refuses to write over a dataset unless told.

Images go to a raw scratch file as they arrive, then become ``images.npy``;
``labels.npy`` and the manifest are written under temporary names, synced and
renamed, the manifest last, so an interrupted run leaves no dataset behind.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from gankit.data.dataset import EXISTING, IMAGES, LABELS, MANIFEST, ImageDataset, load_dataset
from gankit.errors import UsageError


def check_target(out: str | os.PathLike[str], existing: str = "refuse", flag: str = "--out") -> ImageDataset | None:
    """Refuse (UsageError naming ``flag``) to write over a dataset unless
    ``existing`` says overwrite or append; returns the dataset found there
    (for append), else None.  Call it before any slow work."""
    if existing not in EXISTING:
        raise UsageError(f"existing: expected one of {', '.join(EXISTING)}, got {existing!r}")
    root = Path(out)
    if not (root / MANIFEST).is_file() or existing == "overwrite":
        return None  # nothing there (append then starts a new dataset), or it is to be replaced
    try:
        found = load_dataset(root)
    except UsageError:
        found = None
    what = "an unreadable dataset"
    if found is not None:
        h, w, c = found.shape
        what = f"{len(found)} images {h}x{w}x{c} from {found.manifest.get('source', '?')}"
    if existing == "refuse":
        extra = "" if flag != "--out" else ", --append to add to it"
        raise UsageError(f"{flag}: {root} already holds a dataset ({what}); pass --overwrite to replace it{extra}, "
                         "or choose another folder")
    if found is None:
        raise UsageError(f"{flag}: {root} holds a dataset that cannot be read, so nothing can be appended to it; "
                         "pass --overwrite to replace it")
    return found


def _atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """``write`` into a temporary file beside ``path``, fsync, rename over it.
    Not mkstemp: its 0600 mode would make the files unreadable to others."""
    tmp = path.parent / f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp"
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


@dataclass
class DatasetWriter:
    """Appends images of one shape and writes the dataset atomically.

    Images go to a raw scratch file as they arrive (the final count is often
    unknown: bad files are skipped), and ``close()`` turns it into
    ``images.npy`` and writes the manifest.  Use as a context manager; if the
    block raises, nothing is left under the final names.  With ``classes``
    every ``add`` names the class index of its images, and ``labels.npy``
    is written too.
    """

    out: Path
    height: int
    width: int
    channels: int
    source: str
    params: dict[str, Any] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    count: int = 0
    classes: list[str] | None = None  # class names in index order; None: unlabelled
    existing: str = "refuse"  # a dataset already in ``out``: refuse, overwrite or append

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.channels not in (1, 3):
            raise UsageError(f"channels must be 1 or 3, got {self.channels}")
        if self.classes is not None:
            self.classes = [str(c) for c in self.classes]
            if not self.classes or any(not c for c in self.classes) or len(set(self.classes)) != len(self.classes):
                raise UsageError(f"classes must be distinct non-empty names, got {self.classes}")
        self._labels: list[np.ndarray] = []
        self._before = check_target(self.out, self.existing)
        if self._before is not None and self._before.shape != (self.height, self.width, self.channels):
            h, w, c = self._before.shape
            raise UsageError(f"--append: {self.out} holds {h}x{w}x{c} images, these are "
                             f"{self.height}x{self.width}x{self.channels}; use the same --size/--grayscale "
                             "or another --out")
        if self._before is not None and (self.classes is not None or self._before.labels is not None):
            raise UsageError(f"--append: {self.out} or the new images are labelled; appending labelled "
                             "datasets is not supported: write a new dataset or pass --overwrite")
        self.out.mkdir(parents=True, exist_ok=True)
        fd, self._scratch = tempfile.mkstemp(dir=self.out, prefix=".images.", suffix=".raw")
        self._file = os.fdopen(fd, "wb")
        if self._before is not None:  # the old images first, then the new ones
            for start in range(0, len(self._before), 4096):
                self.add(np.asarray(self._before.images[start : start + 4096]))

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def add(self, images: np.ndarray, labels: int | np.ndarray | None = None) -> None:
        """Append one image (H, W, C) or a batch (B, H, W, C) of uint8; a
        labelled writer needs ``labels``: one class index for the whole
        batch or one per image."""
        arr = np.asarray(images)
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim == 2:
            arr = arr[None, :, :, None]
        expected = (self.height, self.width, self.channels)
        if arr.dtype != np.uint8 or tuple(arr.shape[1:]) != expected:
            raise ValueError(f"expected uint8 images of shape {expected}, got {arr.dtype} {arr.shape}")
        if (labels is None) != (self.classes is None):
            raise ValueError("labels are given exactly when the writer has classes")
        if self.classes is not None:
            lab = np.broadcast_to(np.asarray(labels, dtype=np.int64), (arr.shape[0],))
            if arr.shape[0] and (lab.min() < 0 or lab.max() >= len(self.classes)):
                raise ValueError(f"class indices must lie in 0..{len(self.classes) - 1}, got {labels}")
            self._labels.append(lab.copy())
        self._file.write(np.ascontiguousarray(arr).tobytes())
        self.count += arr.shape[0]

    def skip(self, name: str, reason: str) -> None:
        """Record an input that was not used, and why."""
        self.skipped.append({"input": str(name), "reason": reason})

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        if os.path.exists(self._scratch):
            os.unlink(self._scratch)

    def close(self, extra: dict[str, Any] | None = None) -> Path:
        """Finish: write images.npy, labels.npy (if labelled), then manifest.json; returns the folder."""
        if self._file.closed and not os.path.exists(self._scratch):
            return self.out  # already closed (e.g. close(extra=...) inside a with block)
        self._file.close()
        self._write_images()
        manifest = self._manifest()
        if self.classes is not None:
            labels = np.concatenate(self._labels) if self._labels else np.zeros(0, np.int64)
            manifest["classes"] = self.classes
            manifest["class_counts"] = [int(n) for n in np.bincount(labels, minlength=len(self.classes))]
            _atomic_write(self.out / LABELS, lambda f: np.save(f, labels))
        elif (self.out / LABELS).exists():
            os.unlink(self.out / LABELS)  # left by a labelled dataset this one replaces
        if extra:
            manifest.update(extra)
        if self._before is not None:
            manifest = _appended(self._before.manifest, manifest)
        _atomic_write(self.out / MANIFEST, lambda f: f.write((json.dumps(manifest, indent=2) + "\n").encode()))
        return self.out

    def _write_images(self) -> None:
        """The scratch file -> images.npy (through a temporary name); the scratch file is removed."""
        shape = (self.count, self.height, self.width, self.channels)
        final = self.out / IMAGES
        tmp = self.out / f".{IMAGES}.tmp"
        try:
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            if self.count:
                raw = np.memmap(self._scratch, dtype=np.uint8, mode="r", shape=shape)
                step = 4096
                for i in range(0, self.count, step):
                    arr[i : i + step] = raw[i : i + step]
                del raw
            arr.flush()
            del arr
            os.replace(tmp, final)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
            if os.path.exists(self._scratch):
                os.unlink(self._scratch)

    def _manifest(self) -> dict[str, Any]:
        from gankit import __version__

        return {
            "count": self.count,
            "height": self.height,
            "width": self.width,
            "channels": self.channels,
            "source": self.source,
            "params": self.params,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "gankit_version": __version__,
            "skipped_count": len(self.skipped),
            "skipped": self.skipped,
        }


def _appended(before: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """The manifest of an appended dataset: the new part's fields, lists (skipped
    inputs, file names) and counts carried on from the old one, and ``parts``
    saying where each range of images came from."""
    merged = dict(now)
    old_count = int(before.get("count", 0))
    parts = before.get("parts") or [{"source": before.get("source"), "params": before.get("params"),
                                     "count": old_count, "created": before.get("created")}]
    merged["parts"] = [*parts, {"source": now["source"], "params": now["params"],
                                "count": now["count"] - old_count, "created": now["created"]}]
    for key, old in before.items():
        new = merged.get(key)
        if key in ("count", "height", "width", "channels", "parts") or new is None:
            continue
        if isinstance(old, list) and isinstance(new, list):
            merged[key] = old + new
        elif isinstance(old, int) and isinstance(new, int) and not isinstance(old, bool):
            merged[key] = old + new
    merged["skipped_count"] = len(merged.get("skipped", []))
    return merged


def write_dataset(
    out: str | os.PathLike[str],
    images: np.ndarray,
    source: str,
    params: dict[str, Any] | None = None,
    skipped: list[dict[str, str]] | None = None,
    labels: np.ndarray | None = None,
    classes: Sequence[str] | None = None,
    existing: str = "overwrite",
) -> ImageDataset:
    """Write a whole (N, H, W, C) uint8 array as a dataset (tests, small sets);
    ``labels`` (N,) class indices into ``classes`` make it labelled.  Like
    ``numpy.save`` it replaces what is there unless ``existing`` says otherwise."""
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[..., None]
    if (labels is None) != (classes is None):
        raise ValueError("labels and classes come together")
    names = list(classes) if classes is not None else None
    with DatasetWriter(Path(out), arr.shape[1], arr.shape[2], arr.shape[3], source, dict(params or {}),
                       classes=names, existing=existing) as w:
        w.add(arr, None if labels is None else np.asarray(labels).reshape(-1))
        for item in skipped or []:
            w.skip(item["input"], item["reason"])
    return load_dataset(out)
