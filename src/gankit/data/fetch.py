"""Images from a CSV of URLs: `gankit data fetch cards.csv --column image_url`.

The network is hostile in ordinary ways: 404s, overloaded servers (5xx, 429
with Retry-After), connections that drop mid-body, servers that drip a byte a
second, HTML error pages served under an image name.  So each URL gets:

- a connect/read timeout (``timeout``) and a total per-file ``deadline`` that
  covers every attempt and wait; the deadline is checked between reads, and a
  read returns whatever bytes have arrived, so a drip cannot hang a worker;
- bounded retries with exponential backoff (``backoff`` seconds, doubled) for
  5xx, 429 (its Retry-After is honoured), timeouts and dropped connections;
  other 4xx and non-images fail at once; running out of deadline is final;
- a size cap (``max_bytes``) and a content check: the bytes must decode as an
  image (the same rules as `gankit data folder`);
- atomic files: bytes go to a hidden ``.part`` name and are renamed when
  complete and checked.  Completed files are named after a hash of the URL,
  so a re-run finds them and downloads nothing again.

``OUT/fetch_report.csv`` has one line per CSV row: ok, or failed and why
(malformed rows, empty cells and non-http(s) URLs included).

``label_column`` labels each row: its distinct non-empty values, sorted, are
the classes.  A row with an empty label fails like any bad row (a labelled
dataset has no place for it), and so does a row whose URL an earlier row
already listed under another label; ``--to-dataset`` then imports exactly
the files of this CSV's good rows, each with its row's class.  Only the
standard library is used (urllib + a thread pool); reading the CSV and
writing the report live in `fetch_table.py`.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from gankit.data.dataset import ImageDataset
from gankit.data.fetch_table import (
    FetchResult,
    default_dataset_out,
    import_rows,
    label_conflicts,
    read_urls,
    write_report,
)
from gankit.data.imageops import FORMATS, ImageRejected, decode_image
from gankit.data.writer import check_target
from gankit.errors import UsageError

REPORT = "fetch_report.csv"
IMAGES_DIR = "images"
USER_AGENT = "gankit-fetch/0.1 (+https://pypi.org/project/gankit; urllib)"
CHUNK = 64 * 1024
_HASH = 16  # hex digits of sha1(url) that start each file name


@dataclass
class FetchSummary:
    rows: int
    ok: int
    failed: int
    downloaded: int
    cached: int
    images_dir: Path
    report: Path
    results: list[FetchResult] = field(default_factory=list)
    dataset: ImageDataset | None = None
    classes: list[str] = field(default_factory=list)  # with a label column: its distinct values, sorted


class _Retry(Exception):
    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.wait = wait


class _Fail(Exception):
    pass


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _get(url: str, timeout: float, end: float, deadline: float, max_bytes: int) -> bytes:
    """One attempt; raises _Retry or _Fail with the reason."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "image/*,*/*;q=0.5"})
    wait = max(0.05, min(timeout, end - time.monotonic()))
    try:
        response = urllib.request.urlopen(request, timeout=wait)
    except urllib.error.HTTPError as err:
        err.close()
        reason = f"HTTP {err.code} {err.reason}"
        if err.code == 429:
            raise _Retry(reason, _retry_after(err.headers.get("Retry-After"))) from None
        if err.code >= 500:
            raise _Retry(reason) from None
        raise _Fail(reason) from None
    except urllib.error.URLError as err:
        if isinstance(err.reason, socket.gaierror):
            raise _Fail(f"cannot resolve host: {err.reason}") from None
        if isinstance(err.reason, (TimeoutError, socket.timeout)):
            raise _Retry("timed out connecting") from None
        raise _Retry(f"connection failed: {err.reason}") from None
    except TimeoutError:
        raise _Retry("timed out waiting for the response") from None
    except (ConnectionError, http.client.HTTPException, OSError) as err:
        raise _Retry(f"connection failed: {type(err).__name__}: {err}") from None
    with response:
        length_text = response.headers.get("Content-Length")
        length = int(length_text) if length_text and length_text.strip().isdigit() else None
        if length is not None and length > max_bytes:
            raise _Fail(f"too large: Content-Length {length} > {max_bytes} bytes")
        chunks, got = [], 0
        while True:
            if time.monotonic() > end:
                raise _Fail(f"deadline of {deadline:g}s exceeded after {got} bytes")
            try:
                chunk = response.read1(CHUNK)
            except TimeoutError:
                raise _Retry(f"timed out reading the body after {got} bytes") from None
            except (ConnectionError, http.client.HTTPException, OSError) as err:
                raise _Retry(f"connection dropped after {got} bytes: {type(err).__name__}") from None
            if not chunk:
                break
            got += len(chunk)
            if got > max_bytes:
                raise _Fail(f"too large: more than {max_bytes} bytes")
            chunks.append(chunk)
    if length is not None and got < length:
        raise _Retry(f"incomplete body: {got} of {length} bytes")
    return b"".join(chunks)


def _key(url: str) -> str:
    """Start of every file name fetched from ``url``: how a re-run finds it."""
    return hashlib.sha1(url.encode()).hexdigest()[:_HASH]


def _file_stem(url: str) -> str:
    name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", name.rsplit(".", 1)[0]).strip(".-")[:40]
    return stem or "image"


def _download(url: str, key: str, images: Path, timeout: float, deadline: float, retries: int,
              backoff: float, max_bytes: int) -> FetchResult:
    """Fetch, check and atomically store one URL (result.row is filled by the caller)."""
    result = FetchResult(0, url)
    end = time.monotonic() + deadline
    while True:
        result.attempts += 1
        try:
            data = _get(url, timeout, end, deadline, max_bytes)
            try:
                fmt = decode_image(data).format
            except ImageRejected as err:
                raise _Fail(f"not a usable image: {err}") from None
            final = images / f"{key}_{_file_stem(url)}.{FORMATS[str(fmt)]}"
            fd, tmp = tempfile.mkstemp(dir=images, prefix=f".{key}.", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.chmod(tmp, 0o644)  # mkstemp makes 0600 files
                os.replace(tmp, final)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            result.status, result.file, result.bytes, result.reason = "ok", final.name, len(data), ""
            return result
        except _Fail as err:
            result.reason = str(err)
            return result
        except _Retry as err:
            result.reason = str(err)
            pause = backoff * 2 ** (result.attempts - 1)
            if err.wait is not None:
                pause = max(pause, err.wait)
        if result.attempts > retries:
            result.reason += f" (gave up after {result.attempts} attempts)"
            return result
        if time.monotonic() + pause > end:
            result.reason += f" (deadline of {deadline:g}s leaves no time to retry in {pause:g}s)"
            return result
        time.sleep(pause)


def fetch_csv(
    csv_path: str | os.PathLike[str],
    column: str,
    out: str | os.PathLike[str],
    workers: int = 8,
    timeout: float = 10.0,
    deadline: float = 60.0,
    retries: int = 3,
    max_bytes: int = 20 * 2**20,
    to_dataset: bool = False,
    size: int | str | tuple[int, int] = 64,
    backoff: float = 0.5,
    fit: str = "crop",
    background: str = "white",
    grayscale: bool = False,
    resize: str = "lanczos",
    dataset_out: str | os.PathLike[str] | None = None,
    progress: bool = True,
    label_column: str | None = None,
    existing: str = "refuse",
) -> FetchSummary:
    """Download every URL in ``column`` of ``csv_path`` into ``out/images``.

    Writes ``out/fetch_report.csv``; with ``to_dataset`` also imports the
    images (``import_folder``) into ``dataset_out`` (default: ``out`` without a
    trailing ``-raw``, so ``data/cards-raw`` gives ``data/cards``; ``out/dataset``
    when there is no such suffix); a dataset already there is refused unless
    ``existing`` is "overwrite" or "append".  ``out/images`` itself is a
    download cache: a re-run reuses it.  ``label_column`` labels the rows (and
    the dataset's images) by that column's values.
    """
    for flag, good in {"--workers": workers >= 1, "--timeout": timeout > 0, "--deadline": deadline > 0,
                       "--retries": retries >= 0, "--max-mb": max_bytes > 0, "--backoff": backoff >= 0}.items():
        if not good:
            raise UsageError(f"{flag}: out of range")
    rows = read_urls(Path(csv_path), column, label_column)
    labelled = label_column is not None
    if labelled:
        label_conflicts(rows)
    # every label a well-formed row gives is a class, even if all its downloads fail
    classes = sorted({r.label for r in rows if r.status == "pending"}) if labelled else []
    root = Path(out)
    if to_dataset:  # refuse before downloading anything
        check_target(dataset_out or default_dataset_out(root), existing, "--dataset-out")
    images = root / IMAGES_DIR
    images.mkdir(parents=True, exist_ok=True)
    net = dict(timeout=timeout, deadline=deadline, retries=retries, backoff=backoff, max_bytes=max_bytes)
    downloaded = _fetch_rows(rows, images, workers, progress, net, root / REPORT, labelled)
    ok = sum(r.status == "ok" for r in rows)
    summary = FetchSummary(
        rows=len(rows), ok=ok, failed=len(rows) - ok,
        downloaded=downloaded,
        cached=sum(r.cached for r in rows), images_dir=images, report=root / REPORT, results=rows, classes=classes,
    )
    if to_dataset:
        kw: dict[str, Any] = dict(fit=fit, background=background, grayscale=grayscale, resize=resize,
                                  progress=progress, existing=existing)
        summary.dataset = import_rows(rows, classes, images, size, dataset_out or default_dataset_out(root),
                                      label_column, kw)
    return summary


def _fetch_rows(rows: list[FetchResult], images: Path, workers: int, progress: bool, net: dict[str, Any],
                report: Path, labelled: bool) -> int:
    """Download what the cache lacks, then write the report; returns the number downloaded.
    Interrupted (Ctrl-C), the report still says what happened to every row."""
    todo = _reuse_cached(rows, images)
    try:
        downloaded = _download_all(todo, images, workers, progress, net)
    except BaseException:
        for r in rows:
            if r.status == "pending":
                r.status, r.reason = "failed", "interrupted before it was fetched"
        write_report(report, rows, labelled)
        raise
    write_report(report, rows, labelled)
    return downloaded


def _reuse_cached(rows: list[FetchResult], images: Path) -> dict[str, list[FetchResult]]:
    """Mark the rows whose file is already in ``images`` (a re-run) as done;
    returns the URLs still to fetch, each with the rows that name it."""
    present: dict[str, str] = {}
    for entry in os.scandir(images):
        if entry.name.startswith(".") and entry.name.endswith(".part"):
            os.unlink(entry.path)  # left by an interrupted run: never complete
        elif entry.is_file() and not entry.name.startswith("."):
            present[entry.name[:_HASH]] = entry.name
    todo: dict[str, list[FetchResult]] = {}
    for r in rows:
        if r.status != "pending":
            continue
        key = _key(r.url)
        if key in present:
            r.status, r.file, r.cached = "ok", present[key], True
            r.bytes = (images / present[key]).stat().st_size
        else:
            todo.setdefault(r.url, []).append(r)
    return todo


def _download_all(todo: dict[str, list[FetchResult]], images: Path, workers: int, progress: bool,
                  limits: dict[str, Any]) -> int:
    """Fetch every URL of ``todo`` on ``workers`` threads and record the outcome
    in its rows; returns how many were downloaded."""
    from tqdm import tqdm

    downloaded = 0
    pool = ThreadPoolExecutor(workers)
    try:
        with tqdm(total=len(todo), unit="file", file=sys.stderr, disable=not progress) as bar:
            futures = {pool.submit(_download, url, _key(url), images, limits["timeout"], limits["deadline"],
                                   limits["retries"], limits["backoff"], limits["max_bytes"]): url for url in todo}
            for future in as_completed(futures):
                done = future.result()
                downloaded += done.status == "ok"
                same = todo[futures[future]]
                for i, r in enumerate(same):
                    r.status, r.file, r.bytes, r.attempts = done.status, done.file, done.bytes, done.attempts
                    r.reason = done.reason if i == 0 else (done.reason or f"same URL as row {same[0].row}")
                bar.update(1)
    except BaseException:
        # Ctrl-C: drop queued downloads (running ones end within their deadline and clean up)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return downloaded
