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

``labels="subdirs"`` labels by the ImageFolder convention: each first-level
sub-folder of SRC is a class (names sorted, so ``cats/ dogs/`` gives 0=cats,
1=dogs), whatever lies deeper belongs to it, and files directly in SRC are
skipped with a reason because they name no class.
"""
from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from gankit.data.dataset import ImageDataset, load_dataset
from gankit.data.imageops import FITS, RESIZE_FILTERS, ImageRejected, load_image_array, parse_color
from gankit.data.writer import DatasetWriter, check_target
from gankit.errors import UsageError
from gankit.parsing import parse_size

MAX_FILE_BYTES = 256 * 2**20  # larger files are skipped without being read
LABEL_MODES = ("none", "subdirs")
NO_CLASS = "not in a class sub-folder (--labels subdirs takes the first-level folders of SRC as classes)"


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
    labels: str = "none",
    **options: Any,
) -> ImageDataset:
    """Import every image under ``src`` into the dataset folder ``out``.

    ``options`` are `import_files`' own (fit, background, grayscale, dedupe,
    resize, workers, progress, existing).  Skipped files (with reasons) are in
    ``manifest["skipped"]``; the dataset is written even when nothing was
    usable, so the reasons can be read.  ``labels="subdirs"`` makes the
    first-level sub-folders the classes.  A dataset already in ``out`` is
    refused unless ``existing`` is "overwrite" or "append".
    """
    root = Path(src)
    if not root.is_dir():
        raise UsageError(f"SRC: {root} is not a folder")
    if labels not in LABEL_MODES:
        raise UsageError(f"--labels: expected one of {', '.join(LABEL_MODES)}, got {labels!r}")
    files = list_files(root, exclude=Path(out))
    if not files:
        raise UsageError(f"SRC: no files under {root}")
    if labels == "none":
        return import_files(root, files, size, out, **options)
    parts = [f.relative_to(root).parts for f in files]
    classes = sorted({p[0] for p in parts if len(p) > 1})
    if not classes:
        raise UsageError(f"--labels subdirs: {root} has no sub-folder holding files; each class needs one")
    index = {name: i for i, name in enumerate(classes)}
    return import_files(root, files, size, out, classes=classes, label_mode=labels,
                        labels=[index[p[0]] if len(p) > 1 else None for p in parts], **options)


def _check_options(size: int | str | tuple[int, int], fit: str, resize: str,
                   background: str) -> tuple[tuple[int, int], tuple[int, int, int]]:
    """(height, width) and the background colour; a UsageError naming the first bad flag."""
    hw = parse_size(size if isinstance(size, (int, str)) else "x".join(map(str, size)))
    if fit not in FITS:
        raise UsageError(f"--fit: expected one of {', '.join(FITS)}, got {fit!r}")
    if resize not in RESIZE_FILTERS:
        raise UsageError(f"--resize: expected one of {', '.join(RESIZE_FILTERS)}, got {resize!r}")
    return hw, parse_color(background)


def import_files(
    root: Path,
    files: Sequence[Path],
    size: int | str | tuple[int, int],
    out: str | os.PathLike[str],
    fit: str = "crop",
    background: str = "white",
    grayscale: bool = False,
    dedupe: bool = False,
    resize: str = "lanczos",
    workers: int = 4,
    progress: bool = True,
    classes: Sequence[str] | None = None,
    labels: Sequence[int | None] | None = None,
    label_mode: str = "none",
    skipped: Sequence[tuple[str, str]] = (),
    existing: str = "refuse",
) -> ImageDataset:
    """Import ``files`` (under ``root``, in the given order) into ``out``.

    With ``classes``, ``labels[i]`` is the class index of ``files[i]``; a file
    whose label is None is skipped as being in no class.  ``skipped`` lists
    (input, reason) pairs the caller already rejected, so they reach the manifest.
    """
    hw, bg = _check_options(size, fit, resize, background)
    if (classes is None) != (labels is None) or (labels is not None and len(labels) != len(files)):
        raise ValueError("classes and one label per file come together")
    check_target(out, existing)  # before any file is decoded
    params = {"src": str(root), "size": list(hw), "fit": fit, "background": background,
              "grayscale": grayscale, "dedupe": dedupe, "resize": resize, "labels": label_mode}
    from tqdm import tqdm

    channels = 1 if grayscale else 3
    names = list(classes) if classes is not None else None
    with DatasetWriter(Path(out), hw[0], hw[1], channels, "folder", params, classes=names,
                       existing=existing) as writer, \
            ThreadPoolExecutor(max(1, workers)) as pool, \
            tqdm(total=len(files), unit="file", file=sys.stderr, disable=not progress) as bar:
        for name, reason in skipped:
            writer.skip(name, reason)
        wanted = [i for i in range(len(files)) if labels is None or labels[i] is not None]
        results: Iterator = pool.map(lambda i: _load(files[i], hw, fit, bg, grayscale, resize), wanted)
        inputs = _write_all(writer, root, files, labels, results, dedupe, bar)
        writer.close(extra={"files": len(files) + len(skipped), "accepted": len(inputs), "inputs": inputs})
    return load_dataset(out)


def _write_all(writer: DatasetWriter, root: Path, files: Sequence[Path], labels: Sequence[int | None] | None,
               results: Iterator, dedupe: bool, bar: Any) -> list[str]:
    """Add each decoded file to ``writer`` in ``files``' order (``results``: `_load`'s
    answers for the files that have a class); returns the names accepted."""
    inputs: list[str] = []
    seen: dict[str, str] = {}
    for i in range(len(files)):
        name = files[i].relative_to(root).as_posix()
        bar.update(1)
        label = labels[i] if labels is not None else None
        if labels is not None and label is None:
            writer.skip(name, NO_CLASS)
            continue
        image, digest, reason = next(results)
        if image is None:
            writer.skip(name, reason)
        elif dedupe and digest in seen:
            writer.skip(name, f"duplicate of {seen[digest]}")
        else:
            seen.setdefault(digest, name)
            writer.add(image, label)
            inputs.append(name)
    return inputs
