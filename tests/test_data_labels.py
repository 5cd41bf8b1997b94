"""Labels in the dataset format: labels.npy + classes in the manifest, read
back from real files; old unlabelled datasets still load; `gankit data folder
--labels subdirs` and `gankit data show` on a labelled dataset through the
real command (a subprocess), with the PNG grid opened and checked."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gankit.data import load_dataset, resolve_class, write_dataset
from gankit.data.dataset import LABELS, DatasetWriter
from gankit.data.show import MIN_TILE
from gankit.errors import UsageError

COLOURS = {"cats": (220, 30, 30), "dogs": (30, 30, 220), "owls": (30, 200, 30)}


def _coloured(n: int, colour: tuple[int, int, int], size: int = 8) -> np.ndarray:
    return np.broadcast_to(np.array(colour, np.uint8), (n, size, size, 3)).copy()


def test_labelled_dataset_round_trip(tmp_path):
    images = np.concatenate([_coloured(3, COLOURS["cats"]), _coloured(5, COLOURS["dogs"])])
    labels = np.array([0] * 3 + [1] * 5)
    order = np.random.default_rng(0).permutation(8)
    ds = write_dataset(tmp_path / "d", images[order], "test", labels=labels[order], classes=["cats", "dogs"])
    stored = np.load(tmp_path / "d" / LABELS)
    assert stored.dtype == np.int64 and stored.shape == (8,)
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["classes"] == ["cats", "dogs"] and manifest["class_counts"] == [3, 5]
    again = load_dataset(tmp_path / "d")
    assert again.classes == ["cats", "dogs"] and again.num_classes == 2 and again.class_counts == [3, 5]
    # every image still carries its own label: red ones are class 0
    red = np.asarray(again.images)[..., 0].mean(axis=(1, 2)) > 128
    np.testing.assert_array_equal(red, again.labels == 0)
    assert not again.labels.flags.writeable
    assert ds.classes == again.classes
    assert not [p.name for p in (tmp_path / "d").iterdir() if p.name.startswith(".")], "no temporary files left"


def test_dataset_written_the_old_way_loads_unlabelled(tmp_path):
    # exactly what gankit wrote before labels existed: no labels.npy, no classes
    root = tmp_path / "old"
    root.mkdir()
    np.save(root / "images.npy", _coloured(4, (9, 9, 9)))
    (root / "manifest.json").write_text(json.dumps({
        "count": 4, "height": 8, "width": 8, "channels": 3, "source": "atari", "params": {"game": "Breakout"},
        "created": "2026-01-01T00:00:00+0000", "gankit_version": "0.1.0", "skipped_count": 0, "skipped": []}))
    ds = load_dataset(root)
    assert ds.labels is None and ds.classes == [] and ds.class_counts == [] and ds.num_classes == 0
    assert len(ds) == 4 and ds.shape == (8, 8, 3)


def test_unlabelled_rewrite_removes_old_labels(tmp_path):
    write_dataset(tmp_path / "d", _coloured(4, (1, 2, 3)), "t", labels=np.array([0, 1, 0, 1]), classes=["a", "b"])
    ds = write_dataset(tmp_path / "d", _coloured(2, (1, 2, 3)), "t")
    assert ds.labels is None and not (tmp_path / "d" / LABELS).exists()
    assert "classes" not in json.loads((tmp_path / "d" / "manifest.json").read_text())


def test_failed_write_keeps_the_previous_labelled_dataset(tmp_path):
    write_dataset(tmp_path / "d", _coloured(4, (1, 2, 3)), "t", labels=np.array([0, 1, 0, 1]), classes=["a", "b"])
    before = {p.name: p.read_bytes() for p in (tmp_path / "d").iterdir()}
    with pytest.raises(RuntimeError):
        with DatasetWriter(tmp_path / "d", 8, 8, 3, "t", classes=["x"], existing="overwrite") as w:
            w.add(_coloured(2, (5, 5, 5)), 0)
            raise RuntimeError("interrupted")
    assert {p.name: p.read_bytes() for p in (tmp_path / "d").iterdir()} == before
    assert load_dataset(tmp_path / "d").classes == ["a", "b"]


def test_writer_checks_labels(tmp_path):
    with pytest.raises(UsageError):
        DatasetWriter(tmp_path / "a", 8, 8, 3, "t", classes=["x", "x"])
    with DatasetWriter(tmp_path / "b", 8, 8, 3, "t", classes=["x", "y"]) as w:
        with pytest.raises(ValueError, match="labels"):
            w.add(_coloured(1, (0, 0, 0)))
        with pytest.raises(ValueError, match="0..1"):
            w.add(_coloured(2, (0, 0, 0)), np.array([0, 2]))
        w.add(_coloured(2, (0, 0, 0)), np.array([1, 1]))
    assert load_dataset(tmp_path / "b").class_counts == [0, 2]


@pytest.mark.parametrize("damage", ["no-classes", "no-labels", "dtype", "range"])
def test_inconsistent_labels_are_refused(tmp_path, damage):
    root = tmp_path / "d"
    write_dataset(root, _coloured(3, (1, 2, 3)), "t", labels=np.array([0, 1, 1]), classes=["a", "b"])
    manifest = json.loads((root / "manifest.json").read_text())
    if damage == "no-classes":
        del manifest["classes"]
        (root / "manifest.json").write_text(json.dumps(manifest))
    elif damage == "no-labels":
        os.unlink(root / LABELS)
    elif damage == "dtype":
        np.save(root / LABELS, np.array([0, 1, 1], np.int32))
    else:
        np.save(root / LABELS, np.array([0, 1, 2], np.int64))
    with pytest.raises(UsageError, match="labels.npy|classes"):
        load_dataset(root)


def test_resolve_class_by_name_or_index():
    classes = ["Breakout", "Pong", "MsPacman"]
    assert resolve_class(classes, "Pong") == 1 and resolve_class(classes, 2) == 2 and resolve_class(classes, "0") == 0
    for bad in ("Tetris", 3, "-1"):
        with pytest.raises(UsageError, match="Breakout") as err:
            resolve_class(classes, bad)
        assert str(err.value).startswith("--class")
    assert resolve_class(["7", "3"], "3") == 1, "a class named like a number is found by its name"
    with pytest.raises(UsageError, match="^--class-from"):
        resolve_class(classes, "Tetris", flag="--class-from")
    with pytest.raises(UsageError, match="no classes"):
        resolve_class([], "Pong")


def _gankit(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "gankit", *argv], capture_output=True, text=True, timeout=120, env=env)


def _make_class_folders(src: Path) -> None:
    """cats/ (3 red, one of them a level deeper), dogs/ (2 blue + a broken
    file), owls/ (2 green), a stray file in SRC itself, a hidden folder."""
    def save(rel: str, colour: tuple[int, int, int]) -> None:
        path = src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (20, 20), colour).save(path)

    for rel in ("cats/a.png", "cats/b.png", "cats/deep/c.png"):
        save(rel, COLOURS["cats"])
    for rel in ("dogs/a.png", "dogs/b.jpg"):
        save(rel, COLOURS["dogs"])
    for rel in ("owls/x.png", "owls/y.png"):
        save(rel, COLOURS["owls"])
    (src / "dogs" / "broken.png").write_bytes(b"<html>not an image</html>")
    save("stray.png", (0, 0, 0))
    save(".hidden/z.png", (0, 0, 0))


def test_folder_subdirs_then_show_through_the_real_command(tmp_path):
    src, out = tmp_path / "pets", tmp_path / "ds"
    _make_class_folders(src)
    done = _gankit("data", "folder", str(src), "--labels", "subdirs", "--size", "16", "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    assert "class cats: 3 images" in done.stdout and "class dogs: 2 images" in done.stdout
    assert "stray.png" in done.stdout and "broken.png" in done.stdout

    ds = load_dataset(out)
    assert ds.classes == ["cats", "dogs", "owls"] and ds.class_counts == [3, 2, 2]
    assert ds.manifest["params"]["labels"] == "subdirs"
    skipped = {s["input"]: s["reason"] for s in ds.manifest["skipped"]}
    assert set(skipped) == {"stray.png", "dogs/broken.png"}
    assert "class" in skipped["stray.png"] and "subdirs" in skipped["stray.png"]
    assert ds.manifest["accepted"] + len(skipped) == ds.manifest["files"] == 9
    for name, label, image in zip(ds.manifest["inputs"], ds.labels, np.asarray(ds.images)):
        assert name.split("/")[0] == ds.classes[label]
        assert np.abs(image.reshape(-1, 3).mean(0) - COLOURS[ds.classes[label]]).max() < 3, name

    preview = tmp_path / "preview.png"
    shown = _gankit("data", "show", str(out), "--out", str(preview), "--count", "12")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    for name, n in zip(ds.classes, ds.class_counts):
        assert any(line.split()[1:3] == [name, str(n)] for line in lines), (name, shown.stdout)
    assert "one row per class" in shown.stdout
    with Image.open(preview) as im:
        grid = np.asarray(im.convert("RGB"))
    pad, tile = 2, MIN_TILE  # 16 px images are enlarged 4x to 64
    assert grid.shape[0] == pad + 3 * (tile + pad), "one row per class"
    for row, name in enumerate(ds.classes):
        y = pad + row * (tile + pad) + tile // 2
        filled = [grid[y, pad + k * (tile + pad) + tile // 2] for k in range(4)]
        filled = [px for px in filled if tuple(px) != (40, 40, 40)]
        assert len(filled) == ds.class_counts[row], name
        assert all(np.abs(px.astype(int) - COLOURS[name]).max() < 3 for px in filled), name


def test_subdirs_needs_class_folders(tmp_path):
    src = tmp_path / "flat"
    src.mkdir()
    Image.new("RGB", (8, 8)).save(src / "a.png")
    done = _gankit("data", "folder", str(src), "--labels", "subdirs", "--out", str(tmp_path / "o"), "--quiet")
    assert done.returncode == 2 and "error: --labels subdirs" in done.stderr.splitlines()[0]
    bad = _gankit("data", "folder", str(src), "--labels", "names", "--out", str(tmp_path / "o"))
    assert bad.returncode == 2 and "--labels" in bad.stderr
    assert not (tmp_path / "o").exists()


def test_show_caps_the_grid_at_16_classes(tmp_path):
    from gankit.data.show import MAX_CLASS_ROWS, format_stats, show_dataset

    n_classes = 20
    labels = np.repeat(np.arange(n_classes), 2)
    images = (labels[:, None, None, None] * 12 + np.zeros((1, 16, 16, 1), np.int64)).astype(np.uint8)
    write_dataset(tmp_path / "d", images, "t", labels=labels, classes=[f"c{i:02d}" for i in range(n_classes)])
    stats = show_dataset(tmp_path / "d", tmp_path / "p.png", count=64)
    assert [c["count"] for c in stats["classes"]] == [2] * n_classes
    text = format_stats(stats)
    assert "other 4 classes are not shown" in text and "c19" in text
    with Image.open(tmp_path / "p.png") as im:
        grid = np.asarray(im)
    assert grid.ndim == 2 and grid.shape[0] == 2 + MAX_CLASS_ROWS * (MIN_TILE + 2)
    # row r shows class r: its grey level is 12 * r
    centres = [grid[2 + r * (MIN_TILE + 2) + MIN_TILE // 2, 2 + MIN_TILE // 2] for r in range(MAX_CLASS_ROWS)]
    assert centres == [12 * r for r in range(MAX_CLASS_ROWS)]
