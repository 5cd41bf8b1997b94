"""`gankit data show DATASET --out preview.png`: look before you train.

A grid of random images catches most data mistakes at a glance (wrong crop,
an all-black emulator screen, colour channels swapped), and the per-channel
mean and std tell whether a dataset is nearly constant.  Statistics are
computed over every image in chunks, so a large memory-mapped dataset is
never loaded whole.

A labelled dataset also gets its images per class, and its grid has one row
per class (the first 16 classes), so a class holding the wrong pictures or
none shows at once.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gankit.data.dataset import ImageDataset, load_dataset
from gankit.errors import UsageError

CHUNK = 2048
MIN_TILE = 64  # small images are enlarged (nearest) to at least this many pixels
MAX_CLASS_ROWS = 16  # more rows than this make tiles too small to judge
MAX_CLASS_COLUMNS = 16


def dataset_stats(ds: ImageDataset) -> dict[str, Any]:
    """Count, size, channels and per-channel mean/std in 0..255 units."""
    c = ds.channels
    total = np.zeros(c)
    squares = np.zeros(c)
    for i in range(0, len(ds), CHUNK):
        chunk = np.asarray(ds.images[i : i + CHUNK], dtype=np.float64).reshape(-1, c)
        total += chunk.sum(axis=0)
        squares += np.square(chunk).sum(axis=0)
    n = max(1, len(ds) * ds.height * ds.width)
    mean = total / n
    std = np.sqrt(np.maximum(squares / n - mean**2, 0.0))
    return {
        "path": str(ds.path),
        "count": len(ds),
        "height": ds.height,
        "width": ds.width,
        "channels": c,
        "source": ds.manifest.get("source", "?"),
        "skipped": len(ds.manifest.get("skipped", [])),
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "classes": [{"name": n, "count": k} for n, k in zip(ds.classes, ds.class_counts)],
        "split": _split_text(ds),
    }


def _split_text(ds: ImageDataset) -> str:
    """What `gankit data split` set aside, in words ('' without a split)."""
    from gankit.data.split import read_split

    try:
        split = read_split(ds)
    except UsageError as err:  # shown, not raised: `show` is how a user finds out
        return f"unusable: {str(err).split(': ', 1)[-1]}"
    return "" if split is None else split.describe()


def preview_grid(ds: ImageDataset, count: int = 64, seed: int = 0, pad: int = 2) -> Image.Image:
    """A near-square grid of ``count`` random images (fewer if the dataset is
    smaller); for a labelled dataset `class_grid`."""
    n = min(count, len(ds))
    if n == 0:
        raise UsageError(f"DATASET: {ds.path} has no images to show")
    if ds.labels is not None:
        return class_grid(ds, count, seed, pad)
    picks = np.sort(np.random.default_rng(seed).choice(len(ds), size=n, replace=False))
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    return _tile(ds, [list(picks[r * cols : (r + 1) * cols]) for r in range(rows)], cols, pad)


def class_grid(ds: ImageDataset, count: int = 64, seed: int = 0, pad: int = 2) -> Image.Image:
    """Row i holds random images of class i (the first `MAX_CLASS_ROWS`
    classes); ``count`` images in all, split evenly; a class with fewer
    images than a row leaves the rest of its row empty."""
    assert ds.labels is not None
    rows = min(ds.num_classes, MAX_CLASS_ROWS)
    cols = max(1, min(MAX_CLASS_COLUMNS, count // rows))
    rng = np.random.default_rng(seed)
    picks = []
    for c in range(rows):
        members = np.flatnonzero(ds.labels == c)
        picks.append(list(np.sort(rng.choice(members, size=min(cols, len(members)), replace=False))))
    return _tile(ds, picks, cols, pad)


def _tile(ds: ImageDataset, rows: list[list[int]], cols: int, pad: int) -> Image.Image:
    """Images ``rows[r][k]`` at row r, column k, enlarged to at least MIN_TILE."""
    scale = max(1, math.ceil(MIN_TILE / max(ds.height, ds.width)))
    th, tw = ds.height * scale, ds.width * scale
    grid = np.full((pad + len(rows) * (th + pad), pad + cols * (tw + pad), ds.channels), 40, np.uint8)
    for r, picks in enumerate(rows):
        for k, idx in enumerate(picks):
            tile = np.asarray(ds.images[idx])
            if scale > 1:
                tile = tile.repeat(scale, axis=0).repeat(scale, axis=1)
            y, x = pad + r * (th + pad), pad + k * (tw + pad)
            grid[y : y + th, x : x + tw] = tile
    return Image.fromarray(grid[:, :, 0] if ds.channels == 1 else grid)


def show_dataset(path: str | os.PathLike[str], out: str | os.PathLike[str] = "preview.png",
                 count: int = 64, seed: int = 0) -> dict[str, Any]:
    """Write the preview grid to ``out`` and return `dataset_stats` (+ ``preview``)."""
    ds = load_dataset(path)
    stats = dataset_stats(ds)
    out_path = Path(out)
    if out_path.suffix.lower() != ".png":
        raise UsageError(f"--out: the preview is a PNG file, got {out_path.name!r}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    grid = preview_grid(ds, count, seed)
    grid.save(out_path)
    stats["preview"] = str(out_path)
    stats["shown"] = min(count, len(ds))
    if ds.labels is not None:
        stats["shown_classes"] = min(ds.num_classes, MAX_CLASS_ROWS)
    return stats


def format_stats(stats: dict[str, Any]) -> str:
    """The lines `gankit data show` prints."""
    names = ["grey"] if stats["channels"] == 1 else ["R", "G", "B"]
    mode = "grayscale" if stats["channels"] == 1 else "RGB"
    lines = [
        f"{stats['path']}: {stats['count']} images, {stats['height']}x{stats['width']} (HxW), "
        f"{stats['channels']} channel{'s' if stats['channels'] > 1 else ''} ({mode}), source {stats['source']}, "
        f"{stats['skipped']} inputs skipped",
        "mean  " + "  ".join(f"{n} {m:6.2f}" for n, m in zip(names, stats["mean"])) + "   (0..255)",
        "std   " + "  ".join(f"{n} {s:6.2f}" for n, s in zip(names, stats["std"])),
    ]
    if stats.get("split"):
        lines.append(f"split: {stats['split']}")
    classes = stats.get("classes") or []
    if classes:
        lines.append(f"{len(classes)} classes:")
        width = max(len(c["name"]) for c in classes)
        for i, c in enumerate(classes):
            share = c["count"] / max(1, stats["count"])
            lines.append(f"  {i:3d} {c['name']:<{width}}  {c['count']:8d} images  {share:6.1%}")
    if "preview" in stats and classes:
        shown = stats["shown_classes"]
        more = f"; the other {len(classes) - shown} classes are not shown" if shown < len(classes) else ""
        lines.append(f"preview: {stats['preview']} (one row per class, classes 0..{shown - 1} from the top{more})")
    elif "preview" in stats:
        lines.append(f"preview: {stats['preview']} ({stats['shown']} random images)")
    return "\n".join(lines)
