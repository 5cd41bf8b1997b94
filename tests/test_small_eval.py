"""Honest evaluation of small sets: KID is the headline below 5,000 images a
side, FID is marked as biased there, and `gankit eval` warns once per metric
that a set is too small for."""
from __future__ import annotations

import json

import numpy as np
import pytest

from gankit.cli import main
from gankit.metrics import dataset_encoder
from gankit.metrics.fid import fid
from gankit.metrics.kid import kid
from gankit.metrics.small_sets import KID_HEADLINE_BELOW, MIN_PER_SIDE, headline, size_warnings

from conftest import blobs


def test_fid_of_two_samples_of_one_distribution_shrinks_like_one_over_n_and_kid_does_not():
    """The claim the headline rests on, on Gaussian features: FID between two
    samples of the same distribution (true value 0) is far above 0 at small N
    and falls about as 1/N, while KID stays within its spread of 0."""
    rng = np.random.default_rng(0)
    dim = 32
    fids, kids = {}, {}
    for n in (100, 400, 1600):
        draws = [fid(rng.normal(size=(n, dim)), rng.normal(size=(n, dim))) for _ in range(3)]
        fids[n] = float(np.mean(draws))
        kids[n] = kid(rng.normal(size=(n, dim)), rng.normal(size=(n, dim)), subsets=20)
    assert fids[100] > 2.5 * fids[400] > 2.5 * 2.5 * fids[1600] > 0
    for n, (mean, std) in kids.items():
        assert abs(mean) < 3 * std + 1e-4, (n, mean, std)


def test_headline_is_kid_below_the_threshold_and_fid_above():
    values = {"fid": 3.0, "kid_mean": 0.01, "kid_std": 0.002, "precision": 0.5}
    small = headline(values, 1548, 1548)
    assert small is not None and small["metric"] == "kid" and small["value"] == 0.01 and small["std"] == 0.002
    assert "10.00 ± 2.00" in small["text"]
    large = headline(values, KID_HEADLINE_BELOW, 2 * KID_HEADLINE_BELOW)
    assert large is not None and large["metric"] == "fid" and large["value"] == 3.0
    only_fid = headline({"fid": 3.0}, 100, 100)
    assert only_fid is not None and only_fid["metric"] == "fid" and "biased" in only_fid["why"]
    assert headline({"precision": 0.5, "recall": 0.4}, 100, 100) is None


def test_warnings_name_each_metric_and_side_below_its_minimum():
    assert size_warnings(["fid", "kid", "pr", "dc"], 10_000, 10_000) == []
    need_fid = MIN_PER_SIDE["fid"][0]
    lines = size_warnings(["fid", "kid", "pr"], need_fid - 1, 10_000)
    assert len(lines) == 1 and lines[0].startswith("fid:") and f"{need_fid - 1} real" in lines[0]
    assert "generated" not in lines[0]
    lines = size_warnings(["kid", "pr", "dc", "agreement"], 20, 20)
    assert [line.split(":")[0] for line in lines] == ["kid", "pr", "dc"]
    assert all("20 real and 20 generated" in line for line in lines)


@pytest.fixture(scope="module")
def small_sets(tmp_path_factory):
    from gankit.data import write_dataset

    root = tmp_path_factory.mktemp("small")
    real = write_dataset(root / "real", blobs(48, seed=1), source="test")
    fake = write_dataset(root / "fake", blobs(48, seed=2), source="test")
    return real.path, fake.path, root


def test_eval_prints_kid_first_marks_fid_and_warns(small_sets, capsys, monkeypatch):
    monkeypatch.setitem(dataset_encoder.RECIPE, "steps", 4)  # any encoder will do: the layout is tested
    real, fake, root = small_sets
    out = root / "eval.json"
    assert main(["eval", "--real", str(real), "--fake", str(fake), "--num", "48", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    record = json.loads(out.read_text())
    assert lines[0].startswith("headline: KID ") and "48 images a side" in lines[0]
    assert record["headline"]["metric"] == "kid"
    assert record["headline"]["value"] == record["metrics"]["kid_mean"]
    assert record["headline"]["std"] == record["metrics"]["kid_std"]
    (fid_row,) = [line for line in lines if line.split()[:1] == ["fid"]]
    assert "biased" in fid_row
    warned = [line for line in captured.err.splitlines() if "WARNING" in line]
    assert [w.split("WARNING: ")[1].split(":")[0] for w in warned] == ["fid", "kid", "pr", "dc"]
    assert [w.split("WARNING: ")[1] for w in warned] == record["warnings"]
    # --json keeps stdout one object of numbers; the headline line moves to stderr, first of the report
    assert main(["eval", "--real", str(real), "--fake", str(fake), "--num", "48", "--json",
                 "--metrics", "fid,pr", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert set(json.loads(captured.out)) == {"fid", "precision", "recall"}
    report = [line for line in captured.err.splitlines() if "WARNING" not in line and "encoder" not in line]
    assert report[0].startswith("headline: FID") and "add kid" in report[0]
    assert json.loads(out.read_text())["headline"]["metric"] == "fid"
