"""The calibration sets of benchmarks/extractor_calibration.py keep each
image's colours and lose its shapes; the script scores them end to end."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import extractor_calibration as cal  # noqa: E402


def _creatures(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """White images with a random coloured rectangle and a smaller box of another colour."""
    rng = np.random.default_rng(seed)
    images = np.full((n, size, size, 3), 255, np.uint8)
    for img in images:
        y, x = rng.integers(2, size // 2, 2)
        h, w = rng.integers(6, size // 2, 2)
        img[y:y + h, x:x + w] = rng.integers(0, 200, 3)
        img[y + 1:y + 4, x + 1:x + 4] = rng.integers(0, 200, 3)
    return images


def _histograms(images: np.ndarray) -> list[dict[tuple[int, ...], int]]:
    out = []
    for img in images:
        colours, counts = np.unique(img.reshape(-1, img.shape[-1]), axis=0, return_counts=True)
        out.append({tuple(c): int(k) for c, k in zip(colours, counts, strict=True)})
    return out


def test_shuffles_and_blobs_keep_every_pixel_colour_and_move_them():
    images = _creatures(6)
    rng = np.random.default_rng(1)
    for made in (cal.shuffle_patches(images, 8, rng), cal.colour_blobs(images, rng)):
        assert made.shape == images.shape
        assert _histograms(made) == _histograms(images)
        assert (made != images).any(axis=(1, 2, 3)).all()  # every image changed


def test_blob_puts_the_rare_colours_in_one_round_region():
    images = _creatures(4)
    blobs = cal.colour_blobs(images, np.random.default_rng(0))
    for img in blobs:
        inside = (img != 255).any(axis=-1)
        ys, xs = np.nonzero(inside)
        centre = np.array([ys.mean(), xs.mean()])
        radius = np.hypot(ys - centre[0], xs - centre[1]).max()
        # a filled disc: its area is about pi r^2 (a scattered set would be far smaller)
        assert inside.sum() > 0.6 * np.pi * radius ** 2


def test_blur_keeps_the_mean_colour_and_removes_edges():
    images = _creatures(4)
    blurred = cal.blur(images)
    assert np.abs(blurred.mean(axis=(1, 2)) - images.mean(axis=(1, 2))).max() < 6
    edges = lambda a: np.abs(np.diff(a.astype(int), axis=1)).max()  # noqa: E731  (the sharpest step)
    assert edges(blurred) < 0.5 * edges(images)


def test_the_script_scores_real_above_every_destroyed_set(tmp_path):
    from gankit.data.dataset import write_dataset

    write_dataset(tmp_path / "ds", _creatures(160, seed=3), source="test")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "extractor_calibration.py"),
                           str(tmp_path / "ds"), "--num", "80", "--json", str(tmp_path / "t.json"),
                           "--recipe", '{"steps": 40}'],  # the script's plumbing: a quicker encoder will do
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    import json

    result = json.loads((tmp_path / "t.json").read_text())
    assert result["recipe"] == {"steps": 40}
    sets = result["sets"]
    assert set(sets) == {"real (held out)", "blur", "shuffle8", "blobs", "noise", "wrong colours"}
    assert sets["noise"]["precision"] < sets["real (held out)"]["precision"]
    assert sets["noise"]["fid"] > max(v["fid"] for k, v in sets.items() if k != "noise")
