"""benchmarks/small_data.py on a real tiny dataset: two presets trained for a
few steps in-process, scored with the `dataset` extractor, and the table,
grids and copy-score column read back."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

from gankit.cli import main as gankit_main
from gankit.config import TrainConfig
from gankit.data import write_dataset
from gankit.metrics import dataset_encoder
from gankit.monitor.images import PAD

from conftest import blobs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import small_data  # noqa: E402

RECIPES = ["dcgan", "cards64"]
TINY = ["--recipes", ",".join(RECIPES), "--kimg", "0.064", "--width", "8", "--precision", "fp32",
        "--set", "batch=16;latent=16;log_every=1;eval_every_kimg=0.032;eval_num=16", "--eval-num", "40", "--tag", "t",
        "--seed", "3"]


def _rows(table: str) -> list[dict[str, str]]:
    """The markdown table's body as one dict per row, keyed by the header."""
    lines = [line.strip().strip("|").split("|") for line in table.strip().splitlines()]
    head = [c.strip() for c in lines[0]]
    return [dict(zip(head, (c.strip() for c in cells))) for cells in lines[2:]]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """One tiny benchmark (no split yet), then the same runs re-scored after `gankit data split`."""
    root = tmp_path_factory.mktemp("small_data")
    ds = write_dataset(root / "blobs", blobs(40, seed=4), source="test-blobs")
    out = root / "runs"
    common = ["--data", str(ds.path), "--out", str(out), *TINY]
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(dataset_encoder.RECIPE, "steps", 20)  # the same encoder, trained faster
        for where in ("run_monitor", "report"):  # the runs' plots (tested in test_monitor_*) are half the time here
            mp.setattr(f"gankit.monitor.{where}.draw_all", lambda records, folder: None)
        assert small_data.main([*common, "--table", str(root / "plain.md")]) == 0
        assert gankit_main(["data", "split", str(ds.path), "--holdout", "0.25", "--seed", "1"]) == 0
        assert small_data.main([*common, "--summarise-only", "--table", str(root / "split.md")]) == 0
    return root, out


def test_one_row_per_recipe_with_numbers_and_budget(bench):
    root, out = bench
    rows = _rows((root / "plain.md").read_text())
    assert [r["recipe"] for r in rows] == RECIPES
    for r in rows:
        assert r["seed"] == "3" and r["budget"] == "0.064 kimg" and r["status"] == "finished"
        assert float(r["kimg"]) >= 0.064 and float(r["img/s"]) > 0
        kid_mean, kid_std = (float(v) for v in r["KID x1000"].split("±"))
        assert kid_std >= 0 and kid_mean == kid_mean  # numeric, not NaN
        assert float(r["FID"]) >= 0
        assert 0 <= float(r["precision"]) <= 1 and 0 <= float(r["recall"]) <= 1
        assert 0 <= float(r["acc_real max (2nd half)"]) <= 1
    for recipe in RECIPES:  # --width and --precision apply to every recipe
        cfg = yaml.safe_load((out / f"{recipe}-t" / "config.yaml").read_text())
        assert (cfg["preset"], cfg["width_g"], cfg["width_d"], cfg["precision"]) == (recipe, 8, 8, "fp32")
    figures = json.loads((out / "small_data-t.json").read_text())
    assert set(figures) == set(RECIPES)
    # images/s is the run's own kimg over its own training seconds, read back from its files
    for recipe, s in figures.items():
        records = [json.loads(line) for line in (out / f"{recipe}-t" / "metrics.jsonl").read_text().splitlines()]
        last = [r for r in records if "kind" not in r][-1]  # the last training record
        kimg = json.loads((out / f"{recipe}-t" / "summary.json").read_text())["kimg"]
        assert s["images_per_s"] == pytest.approx(kimg * 1000 / last["time"])
        assert s["eval_num_real"] == s["eval_num_fake"] == 40


def test_a_run_that_kept_a_best_state_is_scored_there_and_says_so(bench):
    """Like `gankit eval RUN`, the row scores best.pt when the run kept one
    (here every recipe evaluates every 0.032 kimg), and its "scored state"
    cell names the kimg of the lowest-scoring evaluation in the run's records."""
    root, out = bench
    figures = json.loads((out / "small_data-t.json").read_text())
    for r in _rows((root / "plain.md").read_text()):
        records = [json.loads(line) for line in (out / f"{r['recipe']}-t" / "metrics.jsonl").read_text().splitlines()]
        evals = [x for x in records if x.get("kind") == "eval"]
        assert len(evals) >= 2
        low = min(evals, key=lambda x: x["score"])
        word, kimg, unit = r["scored state"].split()
        assert (word, unit) == ("best,", "kimg") and float(kimg) == pytest.approx(low["kimg"], abs=1e-3)
        assert figures[r["recipe"]]["checkpoint"].endswith("best.pt")
        assert figures[r["recipe"]]["scored_kimg"] == pytest.approx(low["kimg"])


def test_grids_are_8x8_of_the_generator(bench):
    root, _ = bench
    for r in _rows((root / "plain.md").read_text()):
        with Image.open(r["grid"]) as img:
            assert img.size == (8 * (16 + PAD) + PAD,) * 2
            assert img.mode == "RGB"


def test_copy_score_only_with_a_split(bench):
    root, _ = bench
    plain, split = _rows((root / "plain.md").read_text()), _rows((root / "split.md").read_text())
    assert [r["copy score"] for r in plain] == ["-", "-"]
    assert [r["recipe"] for r in split] == RECIPES
    for r in split:
        assert 0 <= float(r["copy score"]) <= 1
        assert r["budget"] == "0.064 kimg"  # from the runs' config, though --summarise-only repeats no budget


def test_unknown_recipe_exits_2_listing_presets(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        small_data.main(["--recipes", "dcgan,nope", "--data", str(tmp_path), "--summarise-only"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "nope" in err and "cards64" in err and "dcgan" in err


def test_taken_run_names_exit_2_before_training(bench, capsys):
    root, out = bench
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(SystemExit) as exc:
        small_data.main(["--data", str(root / "blobs"), "--out", str(out), *TINY])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--tag" in err and str(out / "dcgan-t") in err and str(out / "cards64-t") in err
    assert sorted(p.name for p in out.iterdir()) == before  # nothing new trained


def test_a_failed_recipe_gets_its_row_and_the_rest_still_run(bench, capsys):
    root, out = bench
    diverge = "batch=16;latent=16;log_every=1;lr_g=1e38;lr_d=1e38"  # non-finite at once, no good record
    argv = ["--data", str(root / "blobs"), "--out", str(out), "--recipes", "dcgan", "--kimg", "0.064", "--width", "0",
            "--precision", "preset", "--set", diverge, "--tag", "nan", "--table", str(root / "nan.md")]
    assert small_data.main(argv) == 0
    assert "dcgan: training failed" in capsys.readouterr().err
    (row,) = _rows((root / "nan.md").read_text())
    assert (row["recipe"], row["status"], row["budget"]) == ("dcgan", "failed", "0.064 kimg")
    assert row["KID x1000"] == row["grid"] == "-"
    # --width 0 --precision preset: the preset as shipped (dcgan sets neither, so TrainConfig's defaults)
    cfg = yaml.safe_load((out / "dcgan-nan" / "config.yaml").read_text())
    shipped = TrainConfig.from_preset("dcgan")
    assert (cfg["width_g"], cfg["width_d"], cfg["precision"]) == (shipped.width_g, shipped.width_d, shipped.precision)
