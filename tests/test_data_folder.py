"""`gankit data folder`: real files of every awkward kind, written to disk and
read back through PIL: colour modes, EXIF rotation, and bad files that must
be skipped with a reason (never crash the run)."""
from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import gankit.cli
from gankit.data.folder import import_folder

H, W = 24, 32  # every "good" test image is stored at this size, so --size 24x32 --fit stretch keeps pixels


def _save(path: Path, img: Image.Image, fmt: str, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, fmt, **kw)
    return path


def _png_bomb(width: int, height: int) -> bytes:
    """A valid PNG header declaring width x height pixels, with almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _encoded(fmt: str) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(buf, fmt)
    return buf.getvalue()


def make_good(root: Path) -> dict[str, str]:
    """Write one good file per colour mode; returns name -> what it should look like."""
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[:, : W // 2] = (220, 20, 20, 255)  # opaque red left half, transparent right half
    _save(root / "rgba.png", Image.fromarray(rgba, "RGBA"), "PNG")

    pal = Image.new("P", (W, H), 0)
    pal.putpalette([0, 0, 0, 20, 20, 220] + [0] * 762)
    pal.paste(1, (0, 0, W, H // 2))  # top half blue, bottom half index 0 = transparent
    _save(root / "palette.png", pal, "PNG", transparency=0)

    _save(root / "cmyk.jpg", Image.new("RGB", (W, H), (20, 180, 20)).convert("CMYK"), "JPEG", quality=95)

    grey16 = np.full((H, W), 4096, np.uint16)
    grey16[:, W // 2 :] = 60000  # above 255: a naive conversion would clip this to white
    _save(root / "grey16.png", Image.fromarray(grey16), "PNG")

    frames = [Image.new("RGB", (W, H), c) for c in [(240, 200, 0), (0, 0, 255)]]
    frames[0].save(root / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    return {"rgba.png": "red left, background right", "palette.png": "blue top, background bottom",
            "cmyk.jpg": "green", "grey16.png": "dark left, light right", "anim.gif": "first frame yellow"}


def make_bad(root: Path) -> dict[str, str]:
    """Write one file per bad kind; returns name -> word its reason must contain."""
    png = _encoded("PNG")
    root.mkdir(parents=True, exist_ok=True)
    (root / "corrupt.jpg").write_bytes(np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    (root / "cut.png").write_bytes(png[: len(png) // 2])
    (root / "empty.png").write_bytes(b"")
    (root / "page.jpg").write_bytes(b"<!DOCTYPE html>\n"
                                    b"<html><head><title>403</title></head><body>Forbidden</body></html>")
    (root / "bomb.png").write_bytes(_png_bomb(100_000, 100_000))
    return {"corrupt.jpg": "not a recognised", "cut.png": "truncated", "empty.png": "empty",
            "page.jpg": "HTML", "bomb.png": "bomb"}


def _by_input(ds) -> dict[str, np.ndarray]:
    return {name: np.asarray(ds.images[i]).astype(int) for i, name in enumerate(ds.manifest["inputs"])}


def test_five_good_five_bad_through_the_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gankit.cli, "COMMANDS", {"data": "gankit.data.cli"})
    src = tmp_path / "src"
    good, bad = make_good(src), make_bad(src)
    (src / ".DS_Store").write_bytes(b"\0junk")  # hidden: ignored, not counted
    out = tmp_path / "ds"
    rc = gankit.cli.main(["data", "folder", str(src), "--size", f"{H}x{W}", "--fit", "stretch", "--out", str(out),
                          "--quiet"])
    assert rc == 0
    assert "5 images" in capsys.readouterr().out
    from gankit.data import load_dataset

    ds = load_dataset(out)
    m = ds.manifest
    assert ds.images.shape == (5, H, W, 3)
    assert m["files"] == 10 and m["accepted"] + m["skipped_count"] == m["files"]
    assert sorted(m["inputs"]) == sorted(good)
    reasons = {s["input"]: s["reason"] for s in m["skipped"]}
    assert set(reasons) == set(bad)
    for name, word in bad.items():
        assert word.lower() in reasons[name].lower(), (name, reasons[name])

    px = _by_input(ds)
    white = np.array([255, 255, 255])
    assert np.abs(px["rgba.png"][:, 2] - [220, 20, 20]).max() <= 2
    assert np.abs(px["rgba.png"][:, -3] - white).max() <= 2, "transparent pixels go on the background"
    assert np.abs(px["palette.png"][2] - [20, 20, 220]).max() <= 2
    assert np.abs(px["palette.png"][-3] - white).max() <= 2, "palette transparency goes on the background"
    assert np.abs(px["cmyk.jpg"].mean(axis=(0, 1)) - [20, 180, 20]).max() < 20, "CMYK converted to RGB"
    assert abs(px["grey16.png"][:, 2].mean() - 4096 / 257) < 2
    assert abs(px["grey16.png"][:, -3].mean() - 60000 / 257) < 2, "16-bit values are scaled, not clipped"
    assert np.abs(px["anim.gif"].mean(axis=(0, 1)) - [240, 200, 0]).max() < 20, "GIF: first frame"


def test_more_bad_kinds_and_formats(tmp_path):
    src = tmp_path / "src"
    (src / "deep" / "er").mkdir(parents=True)
    jpg = _encoded("JPEG")
    (src / "cut.jpg").write_bytes(jpg[: len(jpg) // 2])
    (src / "notes.txt").write_text("a list of cards\nnothing to see\n")
    (src / "readme.jpg").write_text("plain text with an image extension")
    _save(src / "deep" / "er" / "x.webp", Image.new("RGB", (W, H), (9, 99, 199)), "WEBP", lossless=True)
    _save(src / "y.bmp", Image.new("RGB", (W, H), (199, 99, 9)), "BMP")
    _save(src / "z.tiff", Image.new("RGB", (W, H)), "TIFF")
    ds = import_folder(src, 8, tmp_path / "ds", grayscale=True, progress=False)
    m = ds.manifest
    assert ds.images.shape == (2, 8, 8, 1)
    assert m["inputs"] == ["deep/er/x.webp", "y.bmp"], "recursive, sorted"
    reasons = {s["input"]: s["reason"] for s in m["skipped"]}
    assert "truncated" in reasons["cut.jpg"]
    assert "text" in reasons["notes.txt"] and "text" in reasons["readme.jpg"]
    assert "unsupported" in reasons["z.tiff"] and "TIFF" in reasons["z.tiff"]
    luma = [0.299 * r + 0.587 * g + 0.114 * b for r, g, b in [(9, 99, 199), (199, 99, 9)]]
    assert np.abs(np.asarray(ds.images).reshape(2, -1).mean(axis=1) - luma).max() < 2


def test_exif_orientation_is_applied(tmp_path):
    stored = np.full((20, 40, 3), 128, np.uint8)  # landscape as stored, H=20 W=40
    stored[:6, :6] = (255, 0, 0)  # red marker at the stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    _save(tmp_path / "src" / "phone.jpg", Image.fromarray(stored), "JPEG", exif=exif.tobytes(), quality=95)
    ds = import_folder(tmp_path / "src", "40x20", tmp_path / "ds", fit="stretch", progress=False)
    img = np.asarray(ds.images[0]).astype(int)  # displayed: portrait H=40 W=20, marker at top-right
    assert img[2, 17, 0] > 200 and img[2, 17, 1] < 60, "marker must move to the top-right"
    assert abs(img[2, 2] - 128).max() < 20 and abs(img[37, 17] - 128).max() < 20

    padded = import_folder(tmp_path / "src", 40, tmp_path / "pad", fit="pad", background="black", progress=False)
    sq = np.asarray(padded.images[0]).astype(int)
    assert sq[:, :8].max() < 10 and sq[:, -8:].max() < 10, "portrait padded left and right"
    assert abs(sq[20, 20] - 128).max() < 20


def test_fit_modes_and_background(tmp_path):
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :20] = (255, 0, 0)
    img[:, 20:] = (0, 0, 255)
    _save(tmp_path / "src" / "wide.png", Image.fromarray(img), "PNG")
    got = {fit: np.asarray(import_folder(tmp_path / "src", 16, tmp_path / fit, fit=fit, progress=False).images[0])
           .astype(int) for fit in ("crop", "pad", "stretch")}
    for fit, a in got.items():
        assert a.shape == (16, 16, 3), fit
        assert a[8, 0, 0] > 200 and a[8, 15, 2] > 200, f"{fit}: red left, blue right"
    assert (got["pad"][0] == 255).all() and (got["pad"][-1] == 255).all(), "pad: white bars above and below"
    assert not (got["crop"] == 255).all(axis=2).any() and not (got["stretch"] == 255).all(axis=2).any()


def test_dedupe(tmp_path):
    src = tmp_path / "src"
    _save(src / "a.png", Image.new("RGB", (8, 8), (1, 2, 3)), "PNG")
    (src / "b.png").write_bytes((src / "a.png").read_bytes())
    _save(src / "c.png", Image.new("RGB", (8, 8), (3, 2, 1)), "PNG")
    assert len(import_folder(src, 8, tmp_path / "all", progress=False)) == 3
    ds = import_folder(src, 8, tmp_path / "dd", dedupe=True, progress=False)
    assert ds.manifest["inputs"] == ["a.png", "c.png"]
    assert ds.manifest["skipped"] == [{"input": "b.png", "reason": "duplicate of a.png"}]


def test_bomb_in_warning_zone_is_a_skip_and_nothing_leaks(tmp_path):
    """Between MAX_IMAGE_PIXELS and twice that, PIL only warns; even with
    warnings turned into errors the file must be a skip, and the process-wide
    PIL limit and warning filters must be as they were."""
    side = int((Image.MAX_IMAGE_PIXELS * 1.2) ** 0.5)
    src = tmp_path / "src"
    src.mkdir()
    (src / "wide.png").write_bytes(_png_bomb(side, side))
    _save(src / "ok.png", Image.new("RGB", (8, 8)), "PNG")
    limit, filters = Image.MAX_IMAGE_PIXELS, list(warnings.filters)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        inner = list(warnings.filters)
        ds = import_folder(src, 8, tmp_path / "ds", workers=2, progress=False)
        assert list(warnings.filters) == inner
    assert len(ds) == 1 and "bomb" in ds.manifest["skipped"][0]["reason"]
    assert Image.MAX_IMAGE_PIXELS == limit and list(warnings.filters) == filters
    with pytest.warns(Image.DecompressionBombWarning):  # PIL itself still warns outside gankit
        Image.open(src / "wide.png").close()


def test_bad_flags_and_empty_inputs(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gankit.cli, "COMMANDS", {"data": "gankit.data.cli"})
    src = tmp_path / "src"
    (src / "x").mkdir(parents=True)

    def status(*argv: str) -> int:
        try:
            return gankit.cli.main(["data", "folder", *argv, "--quiet"])
        except SystemExit as exit_:
            return int(exit_.code)

    for argv, flag in [(["--fit", "diagonal"], "--fit"), (["--background", "notacolour"], "--background"),
                       (["--size", "64x0"], "--size"), (["--workers", "0"], "--workers")]:
        assert status(str(src), "--out", str(tmp_path / "o"), *argv) == 2
        assert flag in capsys.readouterr().err
    assert status(str(tmp_path / "missing"), "--out", str(tmp_path / "o")) == 2
    assert "SRC" in capsys.readouterr().err
    assert status(str(src), "--out", str(tmp_path / "o")) == 2, "a folder without files"
    assert not (tmp_path / "o").exists()
    (src / "x" / "junk.png").write_bytes(b"not really")
    assert status(str(src), "--out", str(tmp_path / "o")) == 2, "no usable image"
    err = capsys.readouterr()
    assert "no usable image" in err.err and "junk.png" in err.out
