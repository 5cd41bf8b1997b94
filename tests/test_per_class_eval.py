"""Per-class quality of conditional generators: class agreement (a linear
probe on the dataset extractor's features, its ceiling, its cache), per-class
FID/KID with the nearest-other-class reference, and the per-class collapse
check of the health monitor.

The labelled data set is real PNG files (a coloured shape per class, at a
random place and size) imported by the real `gankit data folder --labels
subdirs`.  The conditional generators follow the issue-20 contract
(``num_classes`` and ``forward(z, y)``) and draw real held-out images, so
what each one should score is known: the right class (agreement near the
probe's ceiling), always the wrong class (agreement near 0), or one fixed
image per class whatever z is (per-class collapse)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from gankit.config import TrainConfig
from gankit.data import load_dataset, write_dataset
from gankit.errors import UsageError
from gankit.metrics import agreement as agree
from gankit.metrics import dataset_encoder as de
from gankit.metrics.evaluate import class_probe, evaluate
from gankit.metrics.image_sets import DatasetImages, GeneratorImages
from gankit.metrics.per_class import class_plan
from gankit.monitor import RunMonitor
from gankit.monitor.events import load_events, load_records
from gankit.monitor.report import build_outputs

SHAPES = ("square", "disc", "cross")
COLOURS = {"square": (220, 50, 40), "disc": (40, 200, 60), "cross": (50, 80, 230)}
PER_CLASS = 30  # real images per class in the data set
SIZE = 32


def draw(shape: str, n: int, seed: int) -> np.ndarray:
    """(n, SIZE, SIZE, 3) uint8: one shape of the class colour (jittered) on noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    out = rng.integers(0, 40, (n, SIZE, SIZE, 3)).astype(np.uint8)
    for img in out:
        r = int(rng.integers(SIZE // 6, SIZE // 3))
        cy, cx = rng.integers(r, SIZE - r, 2)
        if shape == "square":
            mask = (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
        elif shape == "disc":
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        else:
            mask = ((abs(yy - cy) <= r // 3) & (abs(xx - cx) <= r)) | ((abs(xx - cx) <= r // 3) & (abs(yy - cy) <= r))
        img[mask] = np.clip(np.array(COLOURS[shape]) + rng.integers(-30, 31, 3), 0, 255)
    return out


def gankit(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "gankit", *argv], capture_output=True, text=True, timeout=300, env=env)


def import_folders(root: Path, name: str, count: int, seed: int) -> Path:
    """PNG folders, one per class, imported by the real `gankit data folder --labels subdirs`."""
    src = root / f"{name}-src"
    for k, shape in enumerate(SHAPES):
        (src / shape).mkdir(parents=True)
        for i, arr in enumerate(draw(shape, count, seed + k)):
            Image.fromarray(arr).save(src / shape / f"{i:03d}.png")
    done = gankit("data", "folder", str(src), "--labels", "subdirs", "--size", str(SIZE), "--out", str(root / name),
                  "--quiet")
    assert done.returncode == 0, done.stderr
    return root / name


class BankGenerator(torch.nn.Module):
    """A contract conditional generator drawing real held-out images: image
    ``z``-picked from class ``(y + shift) % K``; ``fixed`` ignores z (always the
    class's first image: one image per class)."""

    latent = 8

    def __init__(self, bank: torch.Tensor, shift: int = 0, fixed: bool = False) -> None:
        super().__init__()
        self.num_classes = int(bank.shape[0])
        self.register_buffer("bank", bank)  # (K, M, 3, H, W) in [-1, 1]
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the module a device
        self.shift, self.fixed = shift, fixed

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        pick = (z[:, 0].abs() * 1e4).long() % self.bank.shape[1]
        return self.bank[(y + self.shift) % self.num_classes, pick * (0 if self.fixed else 1)]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("perclass")
    ds = load_dataset(import_folders(root, "shapes", PER_CLASS, seed=0))
    extractor = de.load_or_train(ds, log=False)  # the shipped recipe, as `gankit eval` uses (cached beside ds)
    # held-out images, in the data set's class order
    bank = torch.stack([torch.from_numpy(draw(name, 40, 100 + SHAPES.index(name))).permute(0, 3, 1, 2).float()
                        / 127.5 - 1 for name in ds.classes])
    return ds, extractor, bank, root


def scored(world, G, num: int = 90, metrics=("fid", "kid", "agreement")):
    ds, extractor, _, _ = world
    fake = GeneratorImages(G, num, seed=1, classes=ds.classes, class_weights=ds.class_counts)
    return evaluate(ds, fake, list(metrics), extractor, num_real=len(ds))


def test_data_set_is_labelled_by_its_folders(world):
    ds = world[0]
    assert sorted(ds.classes) == sorted(SHAPES) and ds.class_counts == [PER_CLASS] * 3
    for label, image in zip(ds.labels, np.asarray(ds.images)):
        bright = image.reshape(-1, 3)[image.reshape(-1, 3).max(1) > 100]
        assert np.argmax(bright.mean(0)) == np.argmax(COLOURS[ds.classes[label]]), "each image shows its class colour"


def test_probe_ceiling_is_high_on_separable_classes_and_chance_on_shuffled_labels(world):
    ds, extractor = world[0], world[1]
    probe, _ = class_probe(ds, extractor, (SIZE, SIZE))
    assert probe.ceiling >= 0.9 and probe.num_holdout == round(0.2 * PER_CLASS) * 3
    assert probe.num_train + probe.num_holdout == len(ds)
    feats = extractor(np.asarray(ds.images))
    shuffled = np.random.default_rng(0).permutation(np.asarray(ds.labels))
    assert agree.fit_probe(feats, shuffled, 3).ceiling < 0.7, "labels unrelated to the images cannot be learnt"
    again = agree.fit_probe(feats, np.asarray(ds.labels), 3)
    np.testing.assert_array_equal(again.weight, agree.fit_probe(feats, np.asarray(ds.labels), 3).weight)


def test_agreement_follows_the_requested_class(world):
    right = scored(world, BankGenerator(world[2]))
    wrong = scored(world, BankGenerator(world[2], shift=1))
    ceiling = right.metrics["agreement_ceiling"]
    assert ceiling >= 0.9
    assert right.metrics["agreement"] >= ceiling - 0.1, right.agreement
    assert wrong.metrics["agreement"] <= 0.1, wrong.agreement
    assert wrong.metrics["agreement_ceiling"] == ceiling
    assert len(right.agreement["per_class"]) == 3 and min(right.agreement["per_class"]) >= 0.8
    # overall FID cannot tell them apart: the same mix of images, only under other labels
    assert abs(right.metrics["fid"] - wrong.metrics["fid"]) < 0.25 * wrong.metrics["intra_fid"]


def test_per_class_fid_is_far_below_the_nearest_other_class(world):
    right = scored(world, BankGenerator(world[2]))
    wrong = scored(world, BankGenerator(world[2], shift=1))
    ds = world[0]
    assert [r["class"] for r in right.per_class] == ds.classes
    for row in right.per_class:
        assert row["num_fake"] == 30 and row["num_real"] == PER_CLASS
        assert row["nearest_other"] in ds.classes and row["nearest_other"] != row["class"]
        assert row["fid"] < 0.5 * row["fid_other"], row
        assert row["kid_mean"] < row["kid_other"], row
    assert wrong.metrics["intra_fid"] > 3 * right.metrics["intra_fid"]
    # each class's generated images are scored against their own class only
    for r, w in zip(right.per_class, wrong.per_class):
        assert w["fid"] > 2 * r["fid"], (r, w)


def test_probe_is_cached_and_reused(world, monkeypatch):
    ds, extractor = world[0], world[1]
    for old in ds.path.joinpath(".gankit").glob("probe-*"):
        old.unlink()
    probe, cached = class_probe(ds, extractor, (SIZE, SIZE))
    path = agree.probe_path(ds, extractor.id, (SIZE, SIZE))
    assert not cached and path.is_file()
    stamp = path.stat().st_mtime_ns

    def refit(*_a, **_k):
        raise AssertionError("the probe was fitted again")

    monkeypatch.setattr(agree, "fit_probe", refit)
    again, cached = class_probe(ds, extractor, (SIZE, SIZE))
    assert cached and path.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again.weight, probe.weight)
    assert again.ceiling == probe.ceiling
    monkeypatch.undo()
    # other settings (or another resolution) key another file
    other = {**agree.PROBE, "holdout": 0.3}
    assert agree.probe_path(ds, extractor.id, (SIZE, SIZE), other) != path
    assert agree.probe_path(ds, extractor.id, (16, 16)) != path


def test_class_plan_follows_the_real_mix():
    assert np.bincount(class_plan(90, [30, 30, 30])).tolist() == [30, 30, 30]
    assert np.bincount(class_plan(10, [1, 2, 7])).tolist() == [1, 2, 7]
    plan = class_plan(7, [1, 1, 1])
    assert len(plan) == 7 and sorted(np.bincount(plan).tolist()) == [2, 2, 3]


def test_unlabelled_data_gets_the_overall_figures_only(world, tmp_path):
    ds, extractor = world[0], world[1]
    plain = write_dataset(tmp_path / "plain", np.asarray(ds.images), "test")  # the same images, no labels
    ext = extractor  # any extractor serves the overall figures; this one is trained already
    fake = DatasetImages(ds, len(ds), seed=3)  # labelled "fake" side: the real data is what lacks labels
    result = evaluate(plain, fake, ["fid", "kid", "agreement"], ext)
    assert result.per_class is None and result.agreement is None
    assert sorted(result.metrics) == ["fid", "kid_mean", "kid_std"]
    assert not {"per_class", "agreement"} & set(result.to_dict()), "the record of unlabelled data is as before"
    with pytest.raises(UsageError, match="agreement needs class labels.*no class labels"):
        evaluate(plain, fake, ["fid", "agreement"], ext, require_classes=True)
    # an unconditional generator on labelled data: overall figures, agreement refused when asked for
    class Uncond(torch.nn.Module):
        latent = 8

        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(8, 3 * SIZE * SIZE)

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return torch.tanh(self.lin(z)).view(-1, 3, SIZE, SIZE)

    images = GeneratorImages(Uncond(), 60, class_weights=ds.class_counts)
    assert images.labels is None
    result = evaluate(ds, images, ["fid", "agreement"], extractor)
    assert list(result.metrics) == ["fid"] and result.per_class is None
    with pytest.raises(UsageError, match="unconditional"):
        evaluate(ds, images, ["fid", "agreement"], extractor, require_classes=True)


# ------------------------------------------------------------------ health monitor
def monitor(run_dir: Path, data: Path) -> RunMonitor:
    cfg = TrainConfig(data=str(data), tensorboard=False)
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    mon = RunMonitor(run_dir, cfg)
    for i in range(8):  # past the health checks' warm-up
        mon.log({"step": i, "kimg": i * 0.1, "loss_d": 1.0, "loss_g": 1.0})
    return mon


def batches(bank: torch.Tensor, G: torch.nn.Module, per_class: int = 8):
    y = torch.arange(bank.shape[0]).repeat_interleave(per_class)
    fake = G(torch.randn(len(y), G.latent, generator=torch.Generator().manual_seed(5)), y)
    real = bank[y, torch.arange(len(y)) % per_class + 20]  # other held-out images than G draws from
    return fake, real, y


def test_per_class_collapse_is_caught_where_the_overall_check_is_not(world, tmp_path):
    ds, _, bank, _ = world
    fake, real, y = batches(bank, BankGenerator(bank, fixed=True))
    plain = monitor(tmp_path / "plain", ds.path)
    assert plain.check_diversity(fake, real, 100, 10.0) == [], "across classes one image per class looks varied"
    plain.close()

    mon = monitor(tmp_path / "run", ds.path)
    events = mon.check_diversity(fake, real, 100, 10.0, fake_labels=y, real_labels=y)
    assert [e.kind for e in events] == ["mode_collapse"]
    assert all(name in events[0].message for name in ds.classes), events[0].message
    assert "3 of 3 classes" in events[0].message
    # the checker's memory survives a checkpoint: a restored one does not report the same collapse again
    state = mon.checker.state_dict()
    assert mon.check_diversity(fake, real, 110, 11.0, fake_labels=y, real_labels=y) == []
    mon.checker.load_state_dict(state)
    assert mon.checker.state_dict() == state
    mon.close()
    stored = [e for e in load_events(tmp_path / "run" / "health.jsonl") if e.kind == "mode_collapse"]
    assert len(stored) == 1 and stored[0].step == 100
    rec = [r for r in load_records(tmp_path / "run" / "metrics.jsonl") if r.get("kind") == "diversity"][0]
    assert rec["classes_judged"] == 3 and rec["classes_collapsed"] == 3
    assert rec["min_class_diversity_ratio"] < 0.25 < rec["diversity_ratio"]


def test_varied_classes_are_not_called_collapsed(world, tmp_path):
    ds, _, bank, _ = world
    fake, real, y = batches(bank, BankGenerator(bank))
    mon = monitor(tmp_path / "run", ds.path)
    assert mon.check_diversity(fake, real, 100, 10.0, fake_labels=y, real_labels=y) == []
    # one class collapsed among healthy ones is named alone
    half = fake.clone()
    half[y == 1] = half[y == 1][:1]
    events = mon.check_diversity(half, real, 110, 11.0, fake_labels=y, real_labels=y)
    assert len(events) == 1 and "1 of 3 classes" in events[0].message and ds.classes[1] in events[0].message
    assert not any(f"{name} (" in events[0].message for name in (ds.classes[0], ds.classes[2]))
    mon.close()
    with pytest.raises(ValueError, match="both"):
        mon.check_diversity(fake, real, 120, 12.0, fake_labels=y)


# ------------------------------------------------------------------ training and CLI
def test_training_evaluator_records_agreement(world, tmp_path):
    from gankit.metrics.training import TrainingEvaluator

    ds, _, bank, _ = world
    cfg = TrainConfig(data=str(ds.path), eval_metrics="fid,agreement", eval_num=60, eval_every_kimg=1.0)
    ev = TrainingEvaluator(cfg, ds, "cpu", tmp_path)
    record = ev.evaluate(BankGenerator(bank), 1.0)
    assert record["agreement"] >= record["agreement_ceiling"] - 0.1 and record["agreement_ceiling"] >= 0.9
    assert record["score_metric"] == "fid" and record["score"] == record["fid"]
    wrong = ev.evaluate(BankGenerator(bank, shift=2), 2.0)
    assert wrong["agreement"] <= 0.1
    plain = write_dataset(tmp_path / "plain", np.asarray(ds.images[:20]), "test")
    with pytest.raises(UsageError, match="^--eval-metrics: agreement needs a labelled dataset"):
        TrainingEvaluator(cfg, plain, "cpu", tmp_path)


def _tiny_run(data: Path, out: Path) -> Path:
    done = gankit("train", "--data", str(data), "--out", str(out), "--name", "u", "--kimg", "0.064", "--model", "dcgan",
                  "--width-g", "8", "--width-d", "8", "--latent", "16", "--batch", "32", "--log-every", "1",
                  "--no-tensorboard")
    assert done.returncode == 0, done.stderr[-2000:]
    return out / "u"


@pytest.mark.slow
def test_cli_refuses_agreement_without_classes(world, tmp_path):
    ds = world[0]
    plain = write_dataset(tmp_path / "plain", np.asarray(ds.images), "test")
    run = _tiny_run(plain.path, tmp_path / "runs")
    no_labels = gankit("eval", str(run), "--metrics", "fid,agreement", "--num", "30")
    assert no_labels.returncode == 2, no_labels.stderr
    lines = no_labels.stderr.strip().splitlines()
    assert lines[0].startswith("gankit eval: error: --metrics: agreement needs class labels"), no_labels.stderr
    assert "has no class labels" in no_labels.stderr
    uncond = gankit("eval", str(run), "--real", str(ds.path), "--metrics", "agreement", "--num", "30")
    assert uncond.returncode == 2 and "unconditional generator" in uncond.stderr, uncond.stderr
    assert not (run / "eval.json").exists(), "nothing is written for a refused evaluation"
    assert not list(plain.path.glob(".gankit/encoder-*")), "refused before any encoder was trained"


@pytest.mark.slow
def test_cli_per_class_table_and_report_for_labelled_image_sets(world, tmp_path):
    """`gankit eval --real D --fake D2` on two labelled data sets of the same classes:
    the table, the agreement line, the JSON record and report.html's section."""
    ds, _, _, root = world
    held_out = import_folders(tmp_path, "held-out", 30, seed=200)
    out = tmp_path / "run" / "eval.json"
    done = gankit("eval", "--real", str(ds.path), "--fake", str(held_out), "--num", "90", "--out", str(out))
    assert done.returncode == 0, done.stderr
    for name in ds.classes:
        assert any(line.split()[:1] == [name] for line in done.stdout.splitlines()), done.stdout
    assert "class agreement" in done.stdout and "ceiling" in done.stdout
    record = json.loads(out.read_text())
    assert record["metric_names"] == ["fid", "kid", "pr", "dc", "agreement"]
    assert record["metrics"]["agreement"] >= record["metrics"]["agreement_ceiling"] - 0.1
    assert [r["class"] for r in record["per_class"]] == ds.classes
    assert all(r["fid"] < r["fid_other"] for r in record["per_class"])
    (tmp_path / "run" / "metrics.jsonl").write_text("")
    build_outputs(tmp_path / "run", "finished")
    page = (tmp_path / "run" / "report.html").read_text()
    assert "<h2>Per-class quality</h2>" in page
    assert all(f"<td>{name}</td>" in page for name in ds.classes)
    shutil.rmtree(held_out)
