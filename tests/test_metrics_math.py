"""FID, KID and precision/recall/density/coverage on synthetic features,
against independent references (scipy's sqrtm, brute-force loops)."""
from __future__ import annotations

import importlib

import numpy as np
import pytest
import scipy.linalg

from gankit.errors import UsageError
from gankit.metrics import compute_metrics, fid, frechet_distance, gaussian_stats, kid, parse_metrics, prdc
from gankit.metrics.kid import mmd2_unbiased, polynomial_kernel


def _gaussian(n, d, seed, shift=0.0, scale=1.0):
    """n samples of one correlated Gaussian per d (the mixing matrix depends on d only)."""
    mix = np.random.default_rng(d).normal(size=(d, d)) / np.sqrt(d)
    return np.random.default_rng(seed).normal(size=(n, d)) @ mix * scale + shift


def _scipy_fid(a, b):
    """The textbook formula with scipy.linalg.sqrtm, as pytorch-fid computes it."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = covmean.real if np.iscomplexobj(covmean) else covmean
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_fid_of_a_set_with_itself_is_zero():
    x = _gaussian(500, 64, 0, scale=3.0)
    assert abs(fid(x, x)) < 1e-6
    mu, sigma = gaussian_stats(x)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6


@pytest.mark.parametrize("shift,scale", [(0.0, 1.0), (0.3, 1.0), (0.0, 1.5), (1.0, 0.5)])
def test_fid_matches_scipy_sqrtm(shift, scale):
    a = _gaussian(800, 32, 1)
    b = _gaussian(800, 32, 2, shift=shift, scale=scale)
    ref = _scipy_fid(a, b)
    assert fid(a, b) == pytest.approx(ref, rel=1e-7, abs=1e-7)


def test_fid_of_known_gaussians_is_the_closed_form():
    # N(m1, s1^2 I) vs N(m2, s2^2 I): |m1-m2|^2 + d (s1 - s2)^2
    d = 4
    mu1, mu2 = np.zeros(d), np.full(d, 0.5)
    s1, s2 = 2.0 * np.eye(d), 0.5 * np.eye(d)
    assert frechet_distance(mu1, s1 @ s1, mu2, s2 @ s2) == pytest.approx(d * 0.25 + d * 1.5 ** 2, rel=1e-12)


def test_fid_survives_singular_covariances():
    # fewer samples than dimensions: rank-deficient covariances, where sqrtm struggles
    a, b = _gaussian(20, 64, 3), _gaussian(20, 64, 4, shift=0.2)
    value = fid(a, b)
    assert np.isfinite(value) and value > 0
    assert fid(a, a) < 1e-6


def _kid_by_loops(x, y):
    m, d = len(x), x.shape[1]
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_unbiased_mmd_matches_a_direct_double_loop():
    x, y = _gaussian(30, 5, 5), _gaussian(30, 5, 6, shift=0.4)
    direct = _kid_by_loops(x, y)
    blocks = mmd2_unbiased(polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y))
    assert blocks == pytest.approx(direct, rel=1e-10)
    mean, std = kid(x, y, subsets=5, subset_size=30)  # every subset is the whole set
    assert mean == pytest.approx(direct, rel=1e-10) and std == pytest.approx(0.0, abs=1e-12)


def test_kid_is_unbiased_and_subsets_vary():
    # same distribution: the unbiased estimate averages to ~0 (a biased one would stay > 0)
    vals = [kid(_gaussian(200, 16, s), _gaussian(200, 16, 100 + s), subsets=20)[0] for s in range(8)]
    spread = np.std(vals)
    assert abs(np.mean(vals)) < 3 * spread / np.sqrt(len(vals)) + 1e-4
    assert min(vals) < 0 < max(vals)  # an unbiased estimator of 0 must go negative sometimes
    mean, std = kid(_gaussian(200, 16, 0), _gaussian(200, 16, 1, shift=0.5), subsets=30)
    assert mean > 5 * std > 0  # a real difference stands out of the subset noise
    first = kid(_gaussian(200, 16, 0), _gaussian(200, 16, 1), seed=3)
    assert kid(_gaussian(200, 16, 0), _gaussian(200, 16, 1), seed=3) == first


def test_kid_per_subset_path_equals_the_gram_path(monkeypatch):
    kid_module = importlib.import_module("gankit.metrics.kid")

    x, y = _gaussian(120, 8, 7), _gaussian(120, 8, 8, shift=0.2)
    whole = kid(x, y, subsets=10)
    monkeypatch.setattr(kid_module, "GRAM_BYTES", 0)  # force the large-set path
    assert kid(x, y, subsets=10) == pytest.approx(whole, rel=1e-12)


def _prdc_by_loops(real, fake, k=3):
    def radii(s):
        d = np.linalg.norm(s[:, None] - s[None], axis=2)
        return np.sort(d, axis=1)[:, k]

    rr, rf = radii(real), radii(fake)
    d = np.linalg.norm(real[:, None] - fake[None], axis=2)  # (real, fake)
    precision = np.mean([any(d[i, j] <= rr[i] for i in range(len(real))) for j in range(len(fake))])
    recall = np.mean([any(d[i, j] <= rf[j] for j in range(len(fake))) for i in range(len(real))])
    density = np.mean([sum(d[i, j] <= rr[i] for i in range(len(real))) for j in range(len(fake))]) / k
    coverage = np.mean([d[i].min() <= rr[i] for i in range(len(real))])
    return dict(precision=precision, recall=recall, density=density, coverage=coverage)


def test_prdc_matches_brute_force(monkeypatch):
    prdc_module = importlib.import_module("gankit.metrics.prdc")

    real, fake = _gaussian(70, 6, 9), _gaussian(50, 6, 10, shift=0.3, scale=1.2)
    ref = _prdc_by_loops(real, fake)
    monkeypatch.setattr(prdc_module, "BLOCK", 16)  # several row blocks
    got = prdc(real, fake)
    for key, value in ref.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


def test_prdc_extremes():
    real = _gaussian(200, 8, 11)
    same = prdc(real, real)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    assert same["density"] == pytest.approx(1.0 + 1.0 / 3)  # each point is in its own ball and 3 neighbours'
    far = prdc(real, real + 100.0)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_metric_names_and_bad_names():
    assert parse_metrics("fid, KID,pr,dc,fid") == ["fid", "kid", "pr", "dc"]
    with pytest.raises(UsageError, match="--metrics: unknown metric 'is'"):
        parse_metrics("fid,is")
    with pytest.raises(UsageError, match="--eval-metrics"):
        parse_metrics(" , ", "--eval-metrics")
    x, y = _gaussian(60, 4, 12), _gaussian(60, 4, 13)
    assert set(compute_metrics(x, y, ["pr"])) == {"precision", "recall"}
    assert set(compute_metrics(x, y, ["fid", "kid", "dc"])) == {"fid", "kid_mean", "kid_std", "density", "coverage"}
