"""Image folders: `gankit data folder SRC --size 64 --out data/cards`.

Real folders are messy: downloads that are really HTML error pages, half
written files, 16-bit PNGs, CMYK JPEGs, phone photos stored sideways with an
EXIF orientation tag, palette GIFs with a transparent colour.  Every file
under SRC is tried; what cannot be used is skipped and listed with its reason
in the manifest (``skipped``), so one bad file never stops the run and the
user can see exactly what was left out.  ``accepted + skipped = files``.

Files are read in sorted path order and decoded on a few threads (PIL
releases the GIL while decoding and resizing); results are consumed in that
same order, so the dataset is deterministic.  ``manifest["inputs"]`` names the
file behind each image index.
"""
from __future__ import annotations

import hashlib
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np

from gankit.data.dataset import DatasetWriter, ImageDataset, check_target, load_dataset
from gankit.data.imageops import FITS, RESIZE_FILTERS, ImageRejected, load_image_array, parse_color, parse_size
from gankit.errors import UsageError

MAX_FILE_BYTES = 256 * 2**20  # larger files are skipped without being read


def list_files(src: Path, exclude: Path | None = None) -> list[Path]:
    """Every regular, non-hidden file under ``src`` in sorted order, without
    descending into ``exclude`` (the output folder when it lies inside SRC)."""
    found: list[Path] = []
    skip = exclude.resolve() if exclude is not None else None
    for root, dirs, files in os.walk(src):
        root_path = Path(root)
        dirs[:] = [d for d in dirs if not d.startswith(".") and (root_path / d).resolve() != skip]
        found.extend(root_path / f for f in files if not f.startswith(".") and (root_path / f).is_file())
    return sorted(found, key=lambda p: p.relative_to(src).as_posix())


def _load(path: Path, size: tuple[int, int], fit: str, background: tuple[int, int, int],
          grayscale: bool, method: str) -> tuple[np.ndarray | None, str, str]:
    """(image or None, sha256 of the bytes, reason if rejected)."""
    try:
        nbytes = path.stat().st_size
        if nbytes > MAX_FILE_BYTES:
            return None, "", f"file too large ({nbytes} bytes > {MAX_FILE_BYTES})"
        data = path.read_bytes()
    except OSError as err:
        return None, "", f"cannot read: {err.strerror or err}"
    digest = hashlib.sha256(data).hexdigest()
    try:
        return load_image_array(data, size, fit, background, grayscale, method), digest, ""
    except ImageRejected as err:
        return None, digest, str(err)


def import_folder(
    src: str | os.PathLike[str],
    size: int | str | tuple[int, int],
    out: str | os.PathLike[str],
    fit: str = "crop",
    background: str = "white",
    grayscale: bool = False,
    dedupe: bool = False,
    resize: str = "lanczos",
    workers: int = 4,
    progress: bool = True,
    existing: str = "refuse",
) -> ImageDataset:
    """Import every image under ``src`` into the dataset folder ``out``.

    Skipped files (with reasons) are in ``manifest["skipped"]``; the dataset
    is written even when nothing was usable, so the reasons can be read.  A
    dataset already in ``out`` is refused unless ``existing`` is "overwrite" or
    "append".
    """
    root = Path(src)
    if not root.is_dir():
        raise UsageError(f"SRC: {root} is not a folder")
    hw = parse_size(size if isinstance(size, (int, str)) else "x".join(map(str, size)))
    if fit not in FITS:
        raise UsageError(f"--fit: expected one of {', '.join(FITS)}, got {fit!r}")
    if resize not in RESIZE_FILTERS:
        raise UsageError(f"--resize: expected one of {', '.join(RESIZE_FILTERS)}, got {resize!r}")
    bg = parse_color(background)
    check_target(out, existing)  # before any file is decoded
    files = list_files(root, exclude=Path(out))
    if not files:
        raise UsageError(f"SRC: no files under {root}")
    params = {"src": str(root), "size": list(hw), "fit": fit, "background": background,
              "grayscale": grayscale, "dedupe": dedupe, "resize": resize}
    from tqdm import tqdm

    inputs: list[str] = []
    seen: dict[str, str] = {}
    channels = 1 if grayscale else 3
    with DatasetWriter(Path(out), hw[0], hw[1], channels, "folder", params, existing=existing) as writer, \
            ThreadPoolExecutor(max(1, workers)) as pool, \
            tqdm(total=len(files), unit="file", file=sys.stderr, disable=not progress) as bar:
        results: Iterator = pool.map(lambda p: _load(p, hw, fit, bg, grayscale, resize), files)
        for path, (image, digest, reason) in zip(files, results):
            name = path.relative_to(root).as_posix()
            bar.update(1)
            if image is None:
                writer.skip(name, reason)
            elif dedupe and digest in seen:
                writer.skip(name, f"duplicate of {seen[digest]}")
            else:
                seen.setdefault(digest, name)
                writer.add(image)
                inputs.append(name)
        writer.close(extra={"files": len(files), "accepted": len(inputs), "inputs": inputs})
    return load_dataset(out)
