"""Real-data features cached per dataset, extractor and resolution.

Every evaluation of every run on a dataset compares against the same real
images, so their features are computed once and stored beside the dataset in
``<dataset>/.gankit/`` (or, when the dataset folder is read-only, under
``$XDG_CACHE_HOME/gankit/``).  The file name carries a key made of

- the dataset's fingerprint: the manifest's bytes and mtime, and the size and
  mtime of ``images.npy`` (rewriting the dataset changes them);
- the extractor's ``id`` (its name and a hash of its weights);
- the resolution the real images were resized to, how many were used and
  the seed that picked them.

A changed dataset, extractor or resolution therefore never reads old
features; files of an older dataset fingerprint are deleted when new ones are
written.  The features themselves are kept (not only mean and covariance)
because KID and precision/recall/density/coverage need the samples.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gankit.data.dataset import IMAGES, MANIFEST, ImageDataset

CACHE_VERSION = 1


def dataset_fingerprint(ds: ImageDataset) -> str:
    """16 hex digits that change whenever the dataset's files are rewritten."""
    manifest, images = ds.path / MANIFEST, ds.path / IMAGES
    h = hashlib.sha256(manifest.read_bytes())
    for path in (manifest, images):
        st = path.stat()
        h.update(f"|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        return True
    except OSError:
        return False


def cache_dir(ds: ImageDataset) -> Path:
    """``<dataset>/.gankit``, or a per-dataset folder in the user cache when
    the dataset cannot be written to."""
    beside = ds.path / ".gankit"
    if _writable(beside):
        return beside
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gankit"
    folder = home / hashlib.sha256(str(ds.path.resolve()).encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def atomic_save_npz(path: Path, **arrays: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            # allow_pickle named (numpy's default) so no array name can be taken for it
            np.savez(f, allow_pickle=True, **arrays)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def stats_path(ds: ImageDataset, extractor_id: str, resolution: tuple[int, int], count: int, seed: int = 0) -> Path:
    fp = dataset_fingerprint(ds)
    rest = json.dumps([CACHE_VERSION, extractor_id, list(resolution), count, seed])
    key = hashlib.sha256(rest.encode()).hexdigest()[:12]
    return cache_dir(ds) / f"stats-{fp}-{key}.npz"


def remove_stale(folder: Path, prefix: str, fingerprint: str) -> None:
    """Delete ``prefix-<other fingerprint>-*`` files: caches of an older dataset."""
    for path in folder.glob(f"{prefix}-*"):
        if not path.name.startswith(f"{prefix}-{fingerprint}-"):
            path.unlink(missing_ok=True)


def cached_real_features(ds: ImageDataset, extractor_id: str, resolution: tuple[int, int], count: int, seed: int,
                         compute: Callable[[], np.ndarray]) -> tuple[np.ndarray, bool]:
    """(features (count, D) float64, whether they came from the cache); ``seed``
    is the one that picked the ``count`` real images."""
    path = stats_path(ds, extractor_id, resolution, count, seed)
    if path.is_file():
        try:
            with np.load(path) as f:
                feats = f["features"]
            if feats.shape[0] == count:
                return feats.astype(np.float64), True
        except (OSError, ValueError, KeyError):
            pass  # damaged cache file: recompute and overwrite
    feats = compute()
    remove_stale(path.parent, "stats", dataset_fingerprint(ds))
    # the networks compute in float32, so storing float32 loses nothing
    atomic_save_npz(path, features=feats.astype(np.float32))
    return np.asarray(feats, dtype=np.float64), False
