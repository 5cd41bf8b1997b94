"""The held-out split (`gankit data split`) and the memorisation check
(`--metrics ...,memorization`), on real tiny datasets, real PNG files, a real
(tiny) training run and the real CLI."""
from __future__ import annotations

import errno
import json

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.cli import main
from gankit.data import write_dataset
from gankit.data.dataset import load_dataset
from gankit.data.split import SPLIT, read_split
from gankit.errors import UsageError
from gankit.metrics.memorization import PERCENTILE, copy_score, nearest
from gankit.monitor import neighbours
from gankit.monitor.report import render_html
from gankit.train.batches import BatchSource

from conftest import blobs, train_plots_once

TINY = ["--model", "dcgan", "--width-g", "8", "--width-d", "8", "--latent", "16", "--batch", "16",
        "--log-every", "3", "--no-tensorboard"]


@pytest.fixture(scope="module")
def split_ds(tmp_path_factory):
    """64 blob images of 16x16, a quarter (16) held out by the real CLI."""
    ds = write_dataset(tmp_path_factory.mktemp("memo") / "blobs", blobs(64, seed=7), source="test-blobs")
    assert main(["data", "split", str(ds.path), "--holdout", "0.25", "--seed", "5"]) == 0
    return load_dataset(ds.path)


@pytest.fixture(scope="module")
def memo_run(split_ds, quick_encoder):
    """A tiny real training run on the split dataset that records the copy score."""
    out = split_ds.path.parent / "runs"
    argv = ["train", "--data", str(split_ds.path), "--out", str(out), "--name", "r", "--kimg", "0.096", *TINY,
            "--eval-every-kimg", "0.048", "--eval-num", "48", "--eval-metrics", "fid,memorization"]
    assert train_plots_once(argv) == 0
    return out / "r"


def _labelled(root, sizes=(30, 20, 10)):
    labels = np.repeat(np.arange(len(sizes)), sizes)
    return write_dataset(root, blobs(len(labels), seed=1), labels=labels, classes=["a", "b", "c"], source="t")


def _pngs(folder, images):
    folder.mkdir(parents=True)
    for i, arr in enumerate(images):
        Image.fromarray(np.asarray(arr)).save(folder / f"{i:03d}.png")
    return folder


# ------------------------------------------------------------------ the split
def test_split_is_reproducible_stratified_and_replaced_with_a_note(tmp_path, capsys):
    ds = _labelled(tmp_path / "lab")
    assert main(["data", "split", str(ds.path), "--holdout", "0.2", "--seed", "1"]) == 0
    first = read_split(ds)
    assert first is not None and first.stratified
    # every class keeps its share, and the two parts cover the dataset once
    assert np.bincount(ds.labels[first.heldout], minlength=3).tolist() == [6, 4, 2]
    assert sorted([*first.heldout, *first.training]) == list(range(len(ds)))
    capsys.readouterr()
    assert main(["data", "split", str(ds.path), "--holdout", "0.2", "--seed", "1"]) == 0
    assert "unchanged" in capsys.readouterr().out
    assert np.array_equal(read_split(ds).heldout, first.heldout)
    assert main(["data", "split", str(ds.path), "--holdout", "0.5", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "replaced the previous split (--holdout 0.2, --seed 1: 12 held out)" in out
    assert np.bincount(ds.labels[read_split(ds).heldout], minlength=3).tolist() == [15, 10, 5]
    assert main(["data", "show", str(ds.path), "--out", str(tmp_path / "p.png")]) == 0
    assert "split: 30 of 60 images held out (--holdout 0.5, --seed 2, stratified by class)" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["0", "1", "-0.1", "1.5", "nan", "x"])
def test_bad_fraction_exits_2_naming_the_flag(tmp_path, capsys, value):
    ds = write_dataset(tmp_path / "d", blobs(20), source="t")
    with pytest.raises(SystemExit) as exit_:
        main(["data", "split", str(ds.path), "--holdout", value])
    assert exit_.value.code == 2
    assert "--holdout" in capsys.readouterr().err
    assert not (ds.path / SPLIT).exists()


def test_split_write_is_atomic_and_a_stale_split_is_refused(tmp_path, monkeypatch, capsys):
    ds = write_dataset(tmp_path / "d", blobs(40), source="t")
    assert main(["data", "split", str(ds.path), "--holdout", "0.1"]) == 0
    before = (ds.path / SPLIT).read_bytes()

    def full_disk(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr("gankit.data.split.os.replace", full_disk)
    assert main(["data", "split", str(ds.path), "--holdout", "0.3"]) == 1  # EnvironmentProblem: one line, exit 1
    err = capsys.readouterr().err
    assert "cannot write" in err and SPLIT in err and err.count("\n") <= 3
    assert (ds.path / SPLIT).read_bytes() == before  # the old split, whole
    assert sorted(p.name for p in ds.path.iterdir() if p.name.startswith(".split")) == []  # no temporary left
    monkeypatch.undo()
    # the folder rewritten with other images: the split no longer describes it, and says how to redo it
    write_dataset(ds.path, blobs(50, seed=3), source="t", existing="overwrite")
    with pytest.raises(UsageError, match=r"made for other contents.*gankit data split .* --holdout 0.1"):
        read_split(load_dataset(ds.path))
    assert main(["data", "split", str(ds.path), "--holdout", "0.1"]) == 0
    assert "replaced a split that no longer fitted" in capsys.readouterr().out
    assert len(read_split(load_dataset(ds.path)).heldout) == 5


def test_training_batches_never_read_held_out_images(tmp_path):
    ds = _labelled(tmp_path / "lab")
    assert main(["data", "split", str(ds.path), "--holdout", "0.25"]) == 0
    split = read_split(ds)
    held = set(split.heldout.tolist())
    for balance in (False, True):
        src = BatchSource(ds, 5, torch.device("cpu"), (16, 16), seed=3, class_balance=balance, pool=split.training)
        seen = set(torch.cat([src.order(e) for e in range(1, 6)]).tolist())
        assert seen and not seen & held
        if not balance:  # a permutation of the training part each epoch: every training image is read
            assert seen == set(split.training.tolist())
    # the preview (the real half of every sample grid) comes from the training part too
    src = BatchSource(ds, 5, torch.device("cpu"), (16, 16), pool=split.training)
    preview = src.preview(len(split.training)).numpy()
    real = src.get(torch.from_numpy(split.training)).numpy()
    assert sorted(map(bytes, preview.round(4))) == sorted(map(bytes, real.round(4)))


# -------------------------------------------------------------- the maths
def test_copy_score_on_features():
    rng = np.random.default_rng(0)
    train, heldout, new = (rng.normal(size=(n, 8)) for n in (400, 200, 400))
    d, i = nearest(train[:5] + 1e-9, train, k=3)
    assert i[:, 0].tolist() == [0, 1, 2, 3, 4] and np.all(d[:, 0] < 1e-6) and np.all(np.diff(d, axis=1) >= 0)
    fresh = copy_score(new, train, heldout)  # new draws of the same distribution: about the percentile
    assert abs(fresh.score - PERCENTILE / 100) < 0.04 and 0.8 < fresh.nn_ratio < 1.2
    copies = copy_score(train[:100] + rng.normal(scale=1e-3, size=(100, 8)), train, heldout)
    assert copies.score == 1.0 and copies.nn_ratio < 0.01
    half = copy_score(np.concatenate([train[:200], new[:200]]), train, heldout)
    assert 0.45 < half.score < 0.6
    assert copies.nearest[:, 0].tolist() == list(range(100))  # each copy's nearest training image is its source


def test_held_out_twins_of_training_images_do_not_zero_the_threshold():
    """A tenth of the held-out images are exact duplicates of training ones (as
    alternate forms are in the sprite set): without leaving them out the 5th
    percentile is 0 and near-copies would go uncounted."""
    rng = np.random.default_rng(1)
    train, heldout, new = (rng.normal(size=(n, 8)) for n in (400, 180, 400))
    with_twins = np.concatenate([heldout, train[:20].astype(np.float32).astype(np.float64)])  # rounding, as features
    clean, twinned = copy_score(new, train, heldout), copy_score(new, train, with_twins)
    assert twinned.heldout_twins == 20 and clean.heldout_twins == 0
    assert twinned.threshold == clean.threshold > 0 and twinned.nn_ratio == clean.nn_ratio
    near = copy_score(train[:100] + rng.normal(scale=1e-2, size=(100, 8)), train, with_twins)
    assert near.score == 1.0  # near-copies count as copies
    assert abs(twinned.score - PERCENTILE / 100) < 0.04
    everything = copy_score(new, train, train[:30])  # only twins held out: nothing unseen to measure against
    assert everything.threshold == 0 and everything.score == 0 and everything.heldout_twins == 0


# ------------------------------------------------------------ end to end
def test_copy_score_through_eval_generalises_vs_copies(split_ds, quick_encoder, tmp_path, capsys):
    split = read_split(split_ds)
    images = np.asarray(split_ds.images)
    scores = {}
    for name, pick in (("heldout", images[split.heldout]), ("train", images[split.training[:32]]),
                       ("half", np.concatenate([images[split.heldout], images[split.training[:16]]]))):
        out = tmp_path / f"{name}.json"
        argv = ["eval", "--real", str(split_ds.path), "--fake", str(_pngs(tmp_path / name, pick)),
                "--metrics", "memorization", "--num", "64", "--out", str(out)]
        assert main(argv) == 0
        scores[name] = json.loads(out.read_text())["metrics"]["memorization"]
    assert "memorization: " in capsys.readouterr().out
    assert scores["heldout"] <= 0.1  # unseen real images: at most the percentile by construction
    assert scores["train"] == 1.0  # training images: every one is a copy
    assert 0.45 <= scores["half"] <= 0.6


def test_training_records_the_copy_score_and_eval_draws_the_panel(memo_run, split_ds, capsys):
    log = (memo_run / "log.txt").read_text()
    assert "[48 training images, 16 held out by split.json, 16x16x3]" in log
    records = [json.loads(line) for line in (memo_run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r.get("kind") == "eval"]
    assert len(evals) >= 2
    for r in evals:  # an untrained generator draws nothing like a training image: far from a copier's 1.0
        assert 0.0 <= r["memorization"] < 0.5 and r["memorization_nn_ratio"] > 1.0 and r["memorization_threshold"] > 0
    capsys.readouterr()
    assert main(["eval", str(memo_run), "--metrics", "fid,kid,memorization", "--num", "48", "--json"]) == 0
    printed = capsys.readouterr()
    values = json.loads(printed.out)
    assert {"fid", "kid_mean", "memorization", "memorization_threshold"} <= values.keys()
    assert "nearest neighbours:" in printed.err
    record = json.loads((memo_run / "eval.json").read_text())["memorization"]
    assert record["num_train"] == 48 and record["num_heldout"] == 16 and len(record["panel"]) == 8
    # the panel: 8 rows of (generated | 3 nearest training images), 16 px images shown 3x
    png = Image.open(neighbours.panel_path(memo_run)).convert("RGB")
    t, f, p = 48, neighbours.FRAME, neighbours.PAD
    assert png.size == (p + t + 2 * f + neighbours.GAP + 3 * (t + p), p + 8 * (t + 2 * f + p))
    arr = np.asarray(png)
    row = record["panel"][0]
    x0, y0 = p + t + 2 * f + neighbours.GAP, p + f
    shown = arr[y0:y0 + t:3, x0:x0 + t:3]  # the first neighbour, back at 16 px
    assert np.array_equal(shown, split_ds.images[row["nearest"][0]])
    assert row["nearest"][0] not in set(read_split(split_ds).heldout.tolist())  # neighbours are training images
    frame = tuple(arr[p, p])
    assert frame == (neighbours.COPY if row["distances"][0] < record["threshold"] else neighbours.NEW)
    records = [json.loads(line) for line in (memo_run / "metrics.jsonl").read_text().splitlines()]
    html = render_html(memo_run, "verdict", "finished", [], records)  # report.html's page, without redrawing plots
    assert "<h2>Nearest neighbours</h2>" in html and html.count("data:image/png;base64,") >= 2


def test_memorization_without_a_split_exits_2_before_work(tmp_path, capsys):
    ds = write_dataset(tmp_path / "plain", blobs(32), source="t")
    argv = ["train", "--data", str(ds.path), "--out", str(tmp_path / "runs"), "--name", "x", "--kimg", "0.05",
            *TINY, "--eval-every-kimg", "0.02", "--eval-metrics", "fid,memorization"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--eval-metrics: memorization needs a held-out part" in err and f"gankit data split {ds.path}" in err
    assert not (tmp_path / "runs" / "x").exists()  # a refused start leaves no run directory


def test_run_monitor_sends_eval_records_to_the_memorization_check(tmp_path):
    from gankit.config import TrainConfig
    from gankit.monitor.events import load_events
    from gankit.monitor.run_monitor import RunMonitor
    from gankit.monitor.verdict import verdict

    mon = RunMonitor(tmp_path / "run", TrainConfig(tensorboard=False))
    events = []
    for i, score in enumerate([0.05, 0.1, 0.18, 0.3]):
        events += mon.log({"kind": "eval", "step": 100 * (i + 1), "kimg": float(i + 1), "memorization": score})
    assert [e.kind for e in events] == ["memorization"]
    assert [e.kind for e in load_events(mon.health_path)] == ["memorization"]  # health.jsonl, for the report
    assert "memorisation (copying training images) at step 400" in verdict([], events, "finished")
    for fh in (mon._metrics, mon._health):
        fh.close()


def test_eval_warns_when_the_run_trained_under_another_split(memo_run, split_ds, capsys):
    assert main(["data", "split", str(split_ds.path), "--holdout", "0.25", "--seed", "6"]) == 0
    try:
        capsys.readouterr()
        assert main(["eval", str(memo_run), "--metrics", "memorization", "--num", "48"]) == 0
        assert "did not train under this split" in capsys.readouterr().err
        assert main(["eval", str(memo_run), "--metrics", "kid", "--real-part", "heldout", "--num", "48"]) == 0
        assert "so --real-part heldout is not all unseen images" in capsys.readouterr().err
        # one more step under the new split: the resume says so
        assert train_plots_once(["train", "--resume", str(memo_run), "--kimg", "0.112"]) == 0
        assert "NOTE: the held-out split of" in (memo_run / "log.txt").read_text()
    finally:  # the module's split again (the same seed picks the same images)
        assert main(["data", "split", str(split_ds.path), "--holdout", "0.25", "--seed", "5"]) == 0
    capsys.readouterr()
    assert main(["eval", str(memo_run), "--metrics", "memorization", "--num", "48"]) == 0
    assert "did not train under this split" not in capsys.readouterr().err
    assert main(["eval", str(memo_run), "--metrics", "kid", "--real-part", "heldout", "--num", "48"]) == 0
    assert "did not train under this split" not in capsys.readouterr().err
