"""The `dataset` extractor and the stats cache on Atari-like frames: every
metric must move the right way as generated images get noisier, blurrier or
less varied, and cached features must never outlive what they were made from."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from gankit.data import write_dataset
from gankit.metrics import compute_metrics
from gankit.metrics import dataset_encoder as de
from gankit.metrics.stats_cache import cached_real_features, dataset_fingerprint

N = 300  # images per side
ALL = ["fid", "kid", "pr", "dc"]
BRICKS = np.array([[200, 72, 72], [198, 108, 58], [180, 122, 48], [162, 162, 42], [72, 160, 72], [66, 72, 200]],
                  np.uint8)


def breakout_like(n: int, seed: int) -> np.ndarray:
    """(n, 32, 32, 3) uint8 frames laid out like Atari Breakout: grey walls and
    score bar, six rows of coloured bricks with a random share knocked out,
    a paddle and a ball at random places."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 32, 32, 3), np.uint8)
    for img in out:
        img[:, :1] = img[:, -1:] = img[:2] = 142
        for d in range(rng.integers(1, 4)):  # score digits
            img[0:2, 3 + 4 * d: 5 + 4 * d] = 230 * rng.integers(0, 2)
        missing = rng.uniform(0, 0.8)
        for row in range(6):
            for col in range(1, 29, 3):
                if rng.random() > missing:
                    img[5 + row, col: col + 2] = BRICKS[row]
        px = rng.integers(1, 27)
        img[29, px: px + 5] = BRICKS[0]
        img[rng.integers(12, 28), rng.integers(1, 30)] = BRICKS[0]
    return out


def noisy(images: np.ndarray, sigma: float) -> np.ndarray:
    rng = np.random.default_rng(1)
    return np.clip(images + rng.normal(0, sigma, images.shape), 0, 255).round().astype(np.uint8)


def blurred(images: np.ndarray, radius: float) -> np.ndarray:
    if radius == 0:
        return images
    return np.stack([np.asarray(Image.fromarray(x).filter(ImageFilter.GaussianBlur(radius))) for x in images])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A real dataset of 1000 frames, its encoder (trained with the shipped
    recipe) and the real features of N of its frames."""
    ds = write_dataset(tmp_path_factory.mktemp("metrics") / "breakout-like", breakout_like(1000, 0), "test-frames")
    ext = de.load_or_train(ds, log=False)
    real = ext(np.asarray(ds.images[:N]))
    return ds, ext, real


def _scores(world, fake: np.ndarray) -> dict[str, float]:
    _, ext, real = world
    return compute_metrics(real, ext(fake), ALL)


def _assert_worse_each_level(levels: list[dict[str, float]], what: str) -> None:
    for key in ("fid", "kid_mean"):
        vals = [lv[key] for lv in levels]
        assert all(b > a for a, b in zip(vals, vals[1:])), f"{key} must rise with {what}: {vals}"
    for key in ("precision", "recall", "density", "coverage"):
        vals = [lv[key] for lv in levels]  # strictly, until nothing is left to lose
        assert all(b < a or a == b == 0 for a, b in zip(vals, vals[1:])), f"{key} must fall with {what}: {vals}"


def test_every_metric_worsens_with_noise(world):
    clean = breakout_like(N, 99)  # fresh frames of the same process
    levels = [_scores(world, noisy(clean, s)) for s in (0, 12, 18, 24, 30)]
    _assert_worse_each_level(levels, "noise")
    assert levels[0]["precision"] > 0.8 and levels[0]["recall"] > 0.8  # same process: high fidelity and variety


def test_every_metric_worsens_with_blur(world):
    clean = breakout_like(N, 99)
    levels = [_scores(world, blurred(clean, r)) for r in (0, 0.3, 0.4, 0.5, 0.6)]
    _assert_worse_each_level(levels, "blur")


def test_collapse_raises_fid_and_lowers_recall_and_coverage(world):
    clean = breakout_like(N, 99)
    levels = [_scores(world, clean[np.arange(N) % k]) for k in (N, 100, 30, 10, 3)]  # k distinct images
    fid, recall, coverage = ([lv[key] for lv in levels] for key in ("fid", "recall", "coverage"))
    assert all(b > a for a, b in zip(fid, fid[1:])), fid
    assert all(b < a for a, b in zip(coverage, coverage[1:])), coverage
    assert all(b <= a for a, b in zip(recall, recall[1:])) and recall[-1] < 0.1 < 0.8 < recall[0], recall
    assert levels[-2]["kid_mean"] > levels[0]["kid_mean"] + 0.01
    # the collapsed images are still real-looking: precision keeps them, recall does not (with 3
    # distinct images precision moves in thirds: two of them must be kept)
    assert min(lv["precision"] for lv in levels[:-1]) > 0.7 and levels[-1]["precision"] > 0.6


def test_fid_of_real_against_itself_is_zero_with_the_encoder(world):
    ds, ext, real = world
    again = ext.features([np.asarray(ds.images[i:min(i + 37, N)]) for i in range(0, N, 37)])  # other batch sizes
    np.testing.assert_allclose(again, real, rtol=1e-5, atol=1e-6)
    assert abs(compute_metrics(real, again, ["fid"])["fid"]) < 1e-6


def test_encoder_is_cached_beside_the_dataset_and_deterministic(world):
    ds, ext, _ = world
    files = sorted((ds.path / ".gankit").glob("encoder-*.pt"))
    assert len(files) == 1 and files[0].name.startswith(f"encoder-{dataset_fingerprint(ds)}-")
    again = de.load_or_train(ds, log=False)  # from the cache: same id, same features
    assert again.id == ext.id and again.dim == ext.dim == de.RECIPE["dim"]
    sample = np.asarray(ds.images[:8])
    np.testing.assert_array_equal(again(sample), ext(sample))
    quick = {**de.RECIPE, "steps": 3}
    before = torch.get_rng_state()
    a, b = de.train_encoder(ds, quick, log=False), de.train_encoder(ds, quick, log=False)
    assert torch.equal(torch.get_rng_state(), before), "training the encoder must not move the global RNG"
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    other = de.train_encoder(ds, {**quick, "seed": 1}, log=False)
    assert not torch.equal(other.body[0].weight, a.body[0].weight)


def test_a_damaged_encoder_file_is_retrained(tmp_path):
    ds = write_dataset(tmp_path / "d", breakout_like(64, 5), "test-frames")
    quick = {**de.RECIPE, "steps": 2}
    first = de.load_or_train(ds, recipe=quick, log=False)
    (path,) = (ds.path / ".gankit").glob("encoder-*.pt")
    path.write_bytes(path.read_bytes()[:100])
    second = de.load_or_train(ds, recipe=quick, log=False)
    assert second.id == first.id  # retrained to the same weights
    assert len(list((ds.path / ".gankit").glob("encoder-*.pt"))) == 1


def test_stats_cache_keys_on_dataset_extractor_and_resolution(tmp_path):
    ds = write_dataset(tmp_path / "d", breakout_like(40, 6), "test-frames")
    calls = []

    def compute(value: float):
        def run():
            calls.append(value)
            return np.full((20, 4), value)
        return run

    feats, cached = cached_real_features(ds, "dataset-aaaa", (32, 32), 20, 0, compute(1.0))
    assert not cached and feats.dtype == np.float64 and calls == [1.0]
    feats, cached = cached_real_features(ds, "dataset-aaaa", (32, 32), 20, 0, compute(2.0))
    assert cached and feats[0, 0] == 1.0 and calls == [1.0]
    for changed in (("dataset-bbbb", (32, 32), 20, 0), ("dataset-aaaa", (16, 16), 20, 0),
                    ("dataset-aaaa", (32, 32), 20, 1)):
        _, cached = cached_real_features(ds, *changed, compute(3.0))
        assert not cached, changed
    assert len(list((ds.path / ".gankit").glob("stats-*.npz"))) == 4
    # rewriting the dataset (same path) invalidates everything cached for the old one
    old_fingerprint = dataset_fingerprint(ds)
    ds2 = write_dataset(tmp_path / "d", breakout_like(40, 7), "test-frames")
    assert dataset_fingerprint(ds2) != old_fingerprint
    feats, cached = cached_real_features(ds2, "dataset-aaaa", (32, 32), 20, 0, compute(4.0))
    assert not cached and feats[0, 0] == 4.0
    assert len(list((ds2.path / ".gankit").glob("stats-*.npz"))) == 1
