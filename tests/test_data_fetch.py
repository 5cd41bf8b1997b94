"""`gankit data fetch` against a real HTTP server on 127.0.0.1 that misbehaves
in the usual ways (404, 500 then 200, 429 + Retry-After, a byte drip, a body
shorter than its Content-Length, HTML under an image name, an oversized file)."""
from __future__ import annotations

import csv
import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import gankit.cli
from gankit.data.dataset import load_dataset
from gankit.data.fetch import fetch_csv


def _encoded(fmt: str, colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (24, 20), colour).save(buf, fmt)
    return buf.getvalue()


PNG = _encoded("PNG", (200, 30, 30))
JPEG = _encoded("JPEG", (30, 30, 200))
HTML = b"<!DOCTYPE html><html><body>404 - the image you wanted is gone</body></html>"
MAX_BYTES = 50_000


class Server:
    """A ThreadingHTTPServer in a background thread that counts requests per path."""

    def __init__(self) -> None:
        self.requests: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                with outer.lock:
                    times = outer.requests.setdefault(self.path, [])
                    times.append(time.monotonic())
                    n = len(times)
                try:
                    outer.route(self, self.path, n)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=lambda: self.httpd.serve_forever(poll_interval=0.05), daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def route(self, h: BaseHTTPRequestHandler, path: str, n: int) -> None:
        def send(code: int, body: bytes, ctype: str = "image/png", length: int | None = None, **headers: str) -> None:
            h.send_response(code)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(body) if length is None else length))
            for k, v in headers.items():
                h.send_header(k.replace("_", "-"), v)
            h.end_headers()
            h.wfile.write(body)

        if path == "/good.png":
            send(200, PNG)
        elif path == "/good.jpg":
            send(200, JPEG, "image/jpeg")
        elif path == "/flaky.png":
            send(500, b"oops", "text/plain") if n == 1 else send(200, PNG)
        elif path == "/limited.jpg":
            send(429, b"slow down", "text/plain", Retry_After="1") if n == 1 else send(200, JPEG, "image/jpeg")
        elif path == "/short.png":
            send(200, PNG[: len(PNG) // 2], length=len(PNG))
        elif path == "/page.jpg":
            send(200, HTML, "text/html")
        elif path == "/big.png":
            send(200, b"\0" * (MAX_BYTES + 10_000))
        elif path == "/drip.png":
            h.send_response(200)
            h.send_header("Content-Type", "image/png")
            h.send_header("Content-Length", str(len(PNG) * 10))
            h.end_headers()
            for byte in PNG * 10:
                if self.stop.wait(0.05):
                    return
                h.wfile.write(bytes([byte]))
                h.wfile.flush()
        else:
            send(404, b"not found", "text/plain")

    def count(self, path: str) -> int:
        with self.lock:
            return len(self.requests.get(path, []))

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def _write_csv(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([["id", "name", "image_url"], *rows])
    return path


EXPECTED_FAILURES = {  # URL path (or cell) -> word the reason must contain
    "/gone.png": "404",
    "/drip.png": "deadline",
    "/short.png": "incomplete",
    "/page.jpg": "HTML",
    "/big.png": "too large",
    "": "empty",
    "ftp://127.0.0.1/x.png": "http(s)",
    "not a url": "http(s)",
}
GOOD = ["/good.png", "/good.jpg", "/flaky.png", "/limited.jpg"]


def _rows(base: str) -> list[list[str]]:
    rows = [[str(i), p, base + p if p.startswith("/") else p] for i, p in enumerate([*GOOD, *EXPECTED_FAILURES])]
    rows.append(["90", "again", base + "/good.png"])  # same URL twice: one download
    rows.append(["91", "broken row"])  # too few fields
    return rows


def _files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_fetch_against_misbehaving_server(tmp_path, server):
    rows = _rows(server.base)
    table = _write_csv(tmp_path / "cards.csv", rows)
    out = tmp_path / "raw"
    kw = dict(workers=8, timeout=1.0, deadline=2.0, retries=2, backoff=0.05, max_bytes=MAX_BYTES, progress=False)
    start = time.monotonic()
    summary = fetch_csv(table, "image_url", out, **kw)
    took = time.monotonic() - start

    assert summary.rows == len(rows)
    assert summary.ok + summary.failed == summary.rows
    assert summary.ok == len(GOOD) + 1 and summary.downloaded == len(GOOD)
    assert took < 6, "the drip must be cut by the deadline"

    with open(summary.report, newline="") as f:
        report = list(csv.DictReader(f))
    assert len(report) == len(rows)
    by_name = {rows[int(r["row"]) - 1][1]: r for r in report}
    for r in report:
        assert r["status"] in ("ok", "failed")
        if r["status"] == "failed":
            assert r["reason"], r
    for name, word in EXPECTED_FAILURES.items():
        assert by_name[name]["status"] == "failed"
        assert word.lower() in by_name[name]["reason"].lower(), by_name[name]
    assert "malformed" in by_name["broken row"]["reason"]
    for name in [*GOOD, "again"]:
        assert by_name[name]["status"] == "ok", by_name[name]
    assert by_name["again"]["file"] == by_name["/good.png"]["file"]

    # retries: 500 then 200, and the 429 waited for its Retry-After
    assert server.count("/flaky.png") == 2
    t429 = server.requests["/limited.jpg"]
    assert len(t429) == 2 and t429[1] - t429[0] >= 0.9
    assert server.count("/gone.png") == 1, "a 404 is not retried"
    assert server.count("/short.png") == 3, "incomplete bodies are retried (retries=2)"
    assert server.count("/good.png") == 1, "a URL listed twice is fetched once"

    # no partial or temporary file anywhere; every kept file is a real image
    files = _files_under(out)
    assert all(not p.name.startswith(".") and ".part" not in p.name for p in files), files
    images = [p for p in files if p.parent == summary.images_dir]
    assert len(images) == len(GOOD) and set(files) == set(images) | {summary.report}
    for p in images:
        with Image.open(p) as im:
            im.load()
            assert im.size == (24, 20)

    # a second run downloads nothing new
    with server.lock:
        server.requests.clear()
    again = fetch_csv(table, "image_url", out, **kw)
    assert again.ok == summary.ok and again.failed == summary.failed
    assert again.downloaded == 0 and again.cached == summary.ok
    assert all(server.count(p) == 0 for p in GOOD)
    assert _files_under(out) == files


def test_fetch_cli_to_dataset_and_bad_flags(tmp_path, server, monkeypatch, capsys):
    monkeypatch.setattr(gankit.cli, "COMMANDS", {"data": "gankit.data.cli"})
    table = _write_csv(tmp_path / "t.csv", [["1", "a", server.base + "/good.png"],
                                            ["2", "b", server.base + "/good.jpg"],
                                            ["3", "c", server.base + "/gone.png"]])
    out = tmp_path / "cards-raw"
    rc = gankit.cli.main(["data", "fetch", str(table), "--column", "image_url", "--out", str(out), "--quiet",
                          "--to-dataset", "--size", "16x12", "--deadline", "5"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "3 rows: 2 ok" in printed and "1 failed" in printed
    ds = load_dataset(tmp_path / "cards")  # the README's workflow: data/cards-raw -> data/cards
    assert ds.images.shape == (2, 16, 12, 3)
    reds = sorted(np.asarray(ds.images)[..., 0].mean(axis=(1, 2)))  # one blue JPEG, one red PNG
    assert abs(reds[0] - 30) < 15 and abs(reds[1] - 200) < 15
    # --fit pad fills with --background, as `data folder` does (24x20 images in a 32x32 square: bands above/below)
    for colour, value in [("black", 0), ("white", 255)]:
        assert gankit.cli.main(["data", "fetch", str(table), "--out", str(out), "--quiet", "--to-dataset",
                                "--size", "32", "--fit", "pad", "--background", colour, "--overwrite"]) == 0
        padded = np.asarray(load_dataset(tmp_path / "cards").images)
        assert (padded[:, 0] == value).all() and (padded[:, 16] != value).any(axis=-1).all(), colour

    for argv, flag in [
        (["--column", "nope"], "--column"),
        (["--timeout", "0"], "--timeout"),
        (["--retries", "-1"], "--retries"),
        (["--workers", "0"], "--workers"),
        (["--size", "0x5"], "--size"),
    ]:
        assert _status(["data", "fetch", str(table), "--out", str(tmp_path / "x"), *argv]) == 2, argv
        assert flag in capsys.readouterr().err, argv
    assert not (tmp_path / "x").exists(), "a bad flag must not leave anything behind"


def _status(argv: list[str]) -> int:
    """Exit status of `gankit ...`: argparse exits, UsageError returns 2."""
    try:
        return gankit.cli.main(argv)
    except SystemExit as exit_:
        return int(exit_.code)


def test_label_column_reaches_the_report_and_the_dataset(tmp_path, server, monkeypatch, capsys):
    monkeypatch.setattr(gankit.cli, "COMMANDS", {"data": "gankit.data.cli"})
    b = server.base
    rows = [  # (url, type): red PNGs are Fire, the blue JPEG is Water
        (b + "/good.png", "Fire"),
        (b + "/good.jpg", "Water"),
        (b + "/flaky.png", " Fire "),
        (b + "/good.jpg", ""),  # empty label: a bad row
        (b + "/gone.png", "Grass"),  # a class whose only download fails
        (b + "/good.png", "Water"),  # the same file under another label
    ]
    table = tmp_path / "cards.csv"
    with open(table, "w", newline="") as f:
        csv.writer(f).writerows([["image_url", "type"], *rows])
    out = tmp_path / "cards-raw"
    (out / "images").mkdir(parents=True)
    Image.new("RGB", (24, 20), (0, 255, 0)).save(out / "images" / "0123456789abcdef_left-over.png")
    argv = ["data", "fetch", str(table), "--column", "image_url", "--label-column", "type", "--out", str(out),
            "--quiet", "--to-dataset", "--size", "8", "--deadline", "5", "--backoff", "0.05"]
    assert gankit.cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "class Grass: 0 images" in printed

    with open(out / "fetch_report.csv", newline="") as f:
        report = list(csv.DictReader(f))
    assert [r["label"] for r in report] == [t.strip() for _, t in rows]
    assert [r["status"] for r in report] == ["ok", "ok", "ok", "failed", "failed", "failed"]
    assert "empty label" in report[3]["reason"] and "type" in report[3]["reason"]
    assert "404" in report[4]["reason"]
    assert "row 1" in report[5]["reason"] and "Fire" in report[5]["reason"]

    ds = load_dataset(tmp_path / "cards")
    assert ds.classes == ["Fire", "Grass", "Water"] and ds.class_counts == [2, 0, 1]
    assert len(ds) == 3, "files of other CSVs left in images/ are not imported"
    assert ds.manifest["params"]["labels"] == "csv:type"
    red = np.asarray(ds.images)[..., 0].mean(axis=(1, 2))
    for value, label in zip(red, ds.labels):
        assert (value > 128) == (ds.classes[label] == "Fire")

    assert _status([*argv[:5], "--label-column", "kind", "--out", str(tmp_path / "y")]) == 2
    assert "--label-column" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()
