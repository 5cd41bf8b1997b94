"""`gankit eval --real-part {all,train,heldout}`: which real images FID/KID/PR/DC
compare against, on a real tiny labelled dataset split by the real CLI, with
the real (briefly trained) dataset extractor and the real stats cache."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from gankit.cli import main
from gankit.data import write_dataset
from gankit.data.dataset import load_dataset
from gankit.data.split import read_split
from gankit.errors import UsageError
from gankit.metrics import cli as metrics_cli
from gankit.metrics import dataset_encoder
from gankit.metrics.evaluate import compute_metrics, evaluate
from gankit.metrics.holdout import REAL_PARTS, real_part
from gankit.metrics.image_sets import DatasetImages, features_of
from gankit.metrics.stats_cache import stats_path

from conftest import blobs

RES = (12, 12)
METRICS = ["fid", "kid", "pr"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """64 labelled 12x12 blob images (2 classes of 32), half held out (16 a
    class) by `gankit data split`; a fake dataset made of exactly the
    held-out images; the dataset extractor with a few steps of its recipe."""
    root = tmp_path_factory.mktemp("realpart")
    labels = np.repeat([0, 1], 32)
    ds = write_dataset(root / "real", blobs(64, size=12, seed=4), labels=labels, classes=["a", "b"], source="t")
    assert main(["data", "split", str(ds.path), "--holdout", "0.5", "--seed", "3"]) == 0
    ds = load_dataset(ds.path)
    split = read_split(ds)
    assert split is not None and len(split.heldout) == 32
    held = write_dataset(root / "held", np.asarray(ds.images)[split.heldout], labels=labels[split.heldout],
                         classes=["a", "b"], source="t")
    with pytest.MonkeyPatch.context() as mp:
        # any encoder will do (which images are compared is tested), but after 4 steps version 3's features
        # were too alike to tell the two parts apart (FID 0.001); 20 steps give 0.15
        mp.setitem(dataset_encoder.RECIPE, "steps", 20)
        yield ds, split, load_dataset(held.path), dataset_encoder.load_or_train(ds, log=False), root


def _score(world, part: str | None, num: int = 64):
    ds, _, held, extractor, _ = world
    kwargs = {} if part is None else {"real_part": part}
    return evaluate(ds, DatasetImages(held, 32), METRICS, extractor, num_real=num, **kwargs)


def test_heldout_compares_with_exactly_the_held_out_images(world):
    ds, split, _, extractor, _ = world
    result = _score(world, "heldout")
    assert result.num_real == 32  # --num 64, capped at the held-out part's size
    # the fake side is the held-out images themselves: identical feature sets
    assert result.metrics["fid"] == pytest.approx(0.0, abs=1e-4)
    assert result.metrics["precision"] == result.metrics["recall"] == 1.0
    assert _score(world, "train").metrics["fid"] > 100 * max(result.metrics["fid"], 1e-4)
    # per class: the labels of the chosen images (16 held out of each class)
    assert [(r["class"], r["num_real"]) for r in result.per_class] == [("a", 16), ("b", 16)]
    assert all(r["fid"] == pytest.approx(0.0, abs=1e-3) for r in result.per_class)
    record = result.to_dict()
    assert record["real_part"] == "heldout" and record["real_split"]["split_digest"] == split.digest
    assert record["real_split"]["part_size"] == 32 and "32 of 64 images held out" in record["real_split"]["split"]
    # fewer than a part's images: a seeded draw from that part only
    for part, pool in (("heldout", split.heldout), ("train", split.training)):
        side = real_part(ds, part, 20, RES, 7, extractor.id)
        assert side.images.count == 20 and set(side.images.indices) <= set(pool.tolist())
        assert np.array_equal(side.images.indices, real_part(ds, part, 20, RES, 7, extractor.id).images.indices)


def test_parts_use_their_own_cache_files_and_all_keeps_todays(world):
    ds, split, held, extractor, _ = world
    paths = {}
    for part in ("all", "train", "heldout"):
        side = real_part(ds, part, 64, RES, 0, extractor.id)
        paths[part] = stats_path(ds, side.cache_id, RES, side.images.count, 0)
        _score(world, part)
        assert paths[part].is_file()
        assert _score(world, part).real_from_cache
    assert len(set(paths.values())) == 3
    assert paths["all"] == stats_path(ds, extractor.id, RES, 64, 0)  # the key before parts existed
    for part in ("train", "heldout"):
        assert split.digest in real_part(ds, part, 64, RES, 0, extractor.id).cache_id


def test_all_gives_the_numbers_of_an_evaluation_without_parts(world):
    ds, _, held, extractor, _ = world
    plain, explicit = _score(world, None), _score(world, "all")
    assert plain.metrics == explicit.metrics and plain.num_real == 64
    # what evaluate() computed before --real-part: seeded DatasetImages of the whole dataset
    real = features_of(extractor, DatasetImages(ds, 64, RES, seed=0), 64)
    fake = features_of(extractor, DatasetImages(held, 32), 64)
    expected = compute_metrics(real, fake, METRICS)
    assert plain.metrics["fid"] == pytest.approx(expected["fid"], rel=1e-6)
    assert plain.metrics["kid_mean"] == pytest.approx(expected["kid_mean"], rel=1e-6, abs=1e-12)
    record = plain.to_dict()
    assert record["real_part"] == "all" and "real_split" not in record


def test_cli_records_and_prints_the_part_and_warns_for_the_small_part(world, capsys):
    ds, split, held, _, root = world
    out = root / "heldout.json"
    assert main(["eval", "--real", str(ds.path), "--fake", str(held.path), "--real-part", "heldout",
                 "--metrics", "fid,kid", "--num", "64", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    record = json.loads(out.read_text())
    assert record["real_part"] == "heldout" and record["num_real"] == 32
    assert record["real_split"]["split_digest"] == split.digest
    assert f"real: 32 held-out images of {ds.path} (of 32 in that part; split {split.digest}" in captured.out
    warned = [line for line in captured.err.splitlines() if "WARNING" in line]
    assert [w.split("WARNING: ")[1].split(":")[0] for w in warned] == ["fid", "kid"]
    assert all("32 real" in w for w in warned) and record["warnings"] == [w.split("WARNING: ")[1] for w in warned]


def test_another_split_reads_no_old_features_and_a_tiny_part_is_refused(world):
    ds, _, _, _, _ = world
    before = _score(world, "heldout")
    assert before.real_from_cache is not None
    try:
        assert main(["data", "split", str(ds.path), "--holdout", "0.5", "--seed", "9"]) == 0
        again = _score(world, "heldout")
        assert not again.real_from_cache and again.real_split["split_digest"] != before.real_split["split_digest"]
        assert main(["data", "split", str(ds.path), "--holdout", "0.1"]) == 0  # 6 held out: too few to score
        with pytest.raises(UsageError, match=r"6 held-out real images are too few.*--holdout in `gankit data split`"):
            _score(world, "heldout")
    finally:  # the module's split again (the same seed picks the same images)
        assert main(["data", "split", str(ds.path), "--holdout", "0.5", "--seed", "3"]) == 0


def test_a_part_without_a_split_exits_2_before_any_work(world, tmp_path, capsys):
    plain = write_dataset(tmp_path / "plain", blobs(24, size=12), source="t")
    for part in ("train", "heldout"):
        assert main(["eval", "--real", str(plain.path), "--fake", str(plain.path), "--real-part", part]) == 2
        (line,) = [x for x in capsys.readouterr().err.splitlines() if "--real-part" in x]
        assert f"--real-part: {part} needs a held-out part of {plain.path}" in line
        assert f"gankit data split {plain.path} --holdout 0.1" in line
    assert not (plain.path / ".gankit").exists()  # refused before the encoder was trained
    with pytest.raises(UsageError, match="--real-part: heldout needs a held-out part"):  # the API alike
        evaluate(plain, DatasetImages(plain, 24), ["fid"], world[3], real_part="heldout")
    with pytest.raises(SystemExit) as exit_:
        main(["eval", "--real", str(plain.path), "--fake", str(plain.path), "--real-part", "test"])
    assert exit_.value.code == 2 and "--real-part" in capsys.readouterr().err
    parser = argparse.ArgumentParser()
    metrics_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["eval", "RUN"])
    (action,) = [a for a in args._parser._actions if a.dest == "real_part"]
    assert tuple(action.choices) == REAL_PARTS and args.real_part == "all"  # the flag offers what the API takes
