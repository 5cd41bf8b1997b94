"""The CSV side of `gankit data fetch`: rows in (`read_urls`), one report line
per row out (`write_report`), and the downloaded files as a dataset
(`import_rows`, for ``--to-dataset``).

Every data row gets a `FetchResult`, even the ones that cannot be fetched
(malformed, empty cell, not http(s), empty label): they are failed here with
their reason, so the report accounts for every row of the user's file.
"""
from __future__ import annotations

import csv
import io
import os
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gankit.data.dataset import ImageDataset
from gankit.errors import UsageError


@dataclass
class FetchResult:
    """What happened to one CSV row."""

    row: int  # 1-based data row (the header is row 0)
    url: str
    status: str = "failed"  # "ok" or "failed"
    reason: str = ""
    file: str = ""
    bytes: int = 0
    attempts: int = 0
    cached: bool = False
    label: str = ""  # the row's --label-column value ("" without one)



def read_urls(csv_path: Path, column: str, label_column: str | None = None) -> list[FetchResult]:
    """One result per data row; rows that cannot be fetched are already failed."""
    try:
        text = csv_path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as err:
        raise UsageError(f"CSV: cannot read {csv_path}: {err.strerror or err}") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        raise UsageError(f"CSV: {csv_path} has no header row") from None
    names = [h.strip() for h in header]
    if column not in names:
        raise UsageError(f"--column: no column {column!r} in {csv_path}; columns are: {', '.join(names)}")
    index = names.index(column)
    if label_column is not None and label_column not in names:
        raise UsageError(f"--label-column: no column {label_column!r} in {csv_path}; columns are: {', '.join(names)}")
    label_index = names.index(label_column) if label_column is not None else None
    rows: list[FetchResult] = []
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            rows.append(FetchResult(len(rows) + 1, "", reason=f"malformed row: {err}"))
            continue
        if not cells:
            continue  # blank line
        row = FetchResult(len(rows) + 1, "")
        rows.append(row)
        if len(cells) != len(names):
            row.url = cells[index].strip() if index < len(cells) else ""
            row.reason = f"malformed row: {len(cells)} fields, the header has {len(names)}"
            continue
        row.url = cells[index].strip()
        row.label = cells[label_index].strip() if label_index is not None else ""
        parts = urllib.parse.urlsplit(row.url)
        if not row.url:
            row.reason = "empty cell"
        elif parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            row.reason = f"not an http(s) URL (scheme {parts.scheme!r})" if parts.scheme else "not an http(s) URL"
        elif label_index is not None and not row.label:
            row.reason = f"empty label in column {label_column!r}"
        else:
            row.status = "pending"
    return rows


def label_conflicts(rows: list[FetchResult]) -> None:
    """Fail rows whose URL an earlier row listed under another label: one
    downloaded file cannot hold two classes."""
    first: dict[str, FetchResult] = {}
    for r in rows:
        if r.status != "pending":
            continue
        earlier = first.setdefault(r.url, r)
        if earlier.label != r.label:
            r.status = "failed"
            r.reason = f"same URL as row {earlier.row}, which labels it {earlier.label!r}"


def write_report(path: Path, results: list[FetchResult], labelled: bool = False) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            out = csv.writer(f)
            label = ["label"] if labelled else []
            out.writerow(["row", "url", *label, "status", "file", "bytes", "attempts", "reason"])
            for r in results:
                reason = r.reason or ("already downloaded" if r.cached else "")
                out.writerow([r.row, r.url, *([r.label] if labelled else []), r.status, r.file, r.bytes,
                              r.attempts, reason])
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def import_rows(rows: list[FetchResult], classes: list[str], images: Path, size: int | str | tuple[int, int],
                out: str | os.PathLike[str], label_column: str | None, kw: dict[str, Any]) -> ImageDataset:
    """``--to-dataset``: the downloaded files as a dataset at ``out``; with a
    label column only this CSV's good files (not others left in ``images``),
    each with its row's class.  ``kw``: `import_files`' options."""
    from gankit.data.folder import import_files, import_folder

    if label_column is None:
        return import_folder(images, size, out, **kw)
    index = {name: i for i, name in enumerate(classes)}
    files: dict[str, int] = {}
    for r in rows:
        if r.status == "ok":
            files.setdefault(r.file, index[r.label])
    if not files:
        raise UsageError("--to-dataset: no row was fetched, so there is nothing to import (see the report)")
    return import_files(images, [images / f for f in files], size, out, classes=classes,
                        labels=list(files.values()), label_mode=f"csv:{label_column}", **kw)


def default_dataset_out(root: Path) -> Path:
    """Where ``--to-dataset`` writes: ``data/cards-raw`` -> ``data/cards``."""
    root = Path(root)
    if root.name.endswith("-raw") and len(root.name) > 4:
        return root.with_name(root.name[: -len("-raw")])
    return root / "dataset"
