"""The budget rule, --dry-run's resolved values, --config files and help that
teaches: what `gankit train` will do is visible before it does it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gankit.cli import main
from gankit.config import EXTRACTORS, LOSSES, MODELS, TrainConfig, resolve
from gankit.data import write_dataset
from gankit.presets import PRESETS, REASONS

from conftest import blobs


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("budget") / "tiny", blobs(64), source="test-blobs").path


def test_a_budget_flag_replaces_the_presets_other_budget_kinds():
    cfg, notes = resolve("dcgan", overrides={"kimg": 10.0})
    assert (cfg.epochs, cfg.kimg, cfg.minutes) == (0, 10.0, 0.0)
    assert notes == ["--epochs 5 from the preset dcgan dropped: --kimg was given (add --epochs 5 to keep it)"]
    cfg, _ = resolve("breakout", overrides={"kimg": 96.0})
    assert (cfg.kimg, cfg.minutes) == (96.0, 0.0)
    cfg, notes = resolve("breakout", overrides={"kimg": 96.0, "minutes": 3.0})  # both typed: both kept
    assert (cfg.kimg, cfg.minutes, notes) == (96.0, 3.0, [])
    cfg, notes = resolve("breakout", overrides={"lr_d": 1e-4})  # no budget typed: the preset's stays
    assert (cfg.kimg, cfg.minutes, notes) == (PRESETS["breakout"]["kimg"], PRESETS["breakout"]["minutes"], [])
    assert TrainConfig.from_preset("breakout", minutes=2).kimg == 0  # the Python API follows the same rule


def dry_run(*args: str, capsys) -> tuple[dict, list[str]]:
    assert main(["train", *args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    return yaml.safe_load(out), [line for line in out.splitlines() if line.startswith("#")]


def test_dry_run_prints_resolved_values_and_what_the_rule_dropped(data, capsys):
    values, comments = dry_run("--preset", "dcgan", "--kimg", "10", "--data", str(data), capsys=capsys)
    assert values["epochs"] == 0 and values["kimg"] == 10
    assert values["resolution"] == "16x16" and values["device"] in ("cpu", "cuda", "mps")
    assert values["precision"] in ("fp32", "bf16", "fp16") and values["n_critic"] == 1
    assert "# budget: 10 kimg (the first of --epochs, --kimg and --minutes reached stops the run)" in comments
    assert any("--epochs 5 from the preset dcgan dropped" in c for c in comments)
    assert f"# data: {data}: 64 images of 16x16x3; 1 iterations of batch 64 per epoch" in comments
    values, comments = dry_run("--data", str(data), "--batch", "16", "--resolution", "32", capsys=capsys)
    assert values["epochs"] == 10 and values["resolution"] == "32x32"  # no budget given: the 10-epoch default
    assert "# resolution: images are resized from 16x16 to 32x32 on load" in comments


def test_dry_run_checks_batch_against_the_dataset(data, capsys):
    assert main(["train", "--data", str(data), "--batch", "100", "--dry-run"]) == 2
    assert capsys.readouterr().err.splitlines()[0] == \
        f"gankit train: error: --batch: 100 is more than the 64 images in {data}"


def test_a_runs_config_yaml_can_be_passed_back_and_flags_override_it(data, tmp_path, capsys):
    first, _ = dry_run("--preset", "breakout", "--data", str(data), "--batch", "8", capsys=capsys)
    saved = tmp_path / "config.yaml"
    saved.write_text(yaml.safe_dump({**first, "image_shape": [3, 16, 16]}))  # as rundir.write_config does
    again, _ = dry_run("--config", str(saved), capsys=capsys)
    assert again == first
    changed, comments = dry_run("--config", str(saved), "--lr-d", "1e-4", "--kimg", "2", capsys=capsys)
    assert changed["lr_d"] == 1e-4 and changed["kimg"] == 2 and changed["minutes"] == 0
    assert any("--minutes 8 from the" in c for c in comments)


def test_unknown_config_keys_exit_2_naming_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr_dd: 0.001\nbatch: 16\n")
    proc = subprocess.run([sys.executable, "-m", "gankit", "train", "--config", str(bad), "--dry-run"],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert proc.returncode == 2
    expected = f"gankit train: error: --config: {bad}: unknown key 'lr_dd' (did you mean 'lr_d'?)"
    assert proc.stderr.splitlines()[0] == expected
    bad.write_text("batch: many\n")
    assert main(["train", "--config", str(bad), "--dry-run"]) == 2


def test_the_end_line_and_summary_name_the_limit_that_stopped_the_run(data, tmp_path):
    # dcgan's preset says 5 epochs; --kimg 0.5 replaces it, so the run goes on
    # past epoch 5 (64 images, batch 16: 8 epochs) and the image limit stops it.
    proc = subprocess.run([sys.executable, "-m", "gankit", "train", "--preset", "dcgan", "--data", str(data),
                           "--kimg", "0.5", "--batch", "16", "--width-g", "8", "--width-d", "8", "--latent", "8",
                           "--log-every", "4", "--no-tensorboard", "--out", str(tmp_path), "--name", "k"],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    verdict = next(line for line in lines if "stopped by" in line)
    assert "The run finished, stopped by the image limit (0.5 kimg), at epoch 8, 0.5 kimg" in verdict
    assert "Too short to judge" in verdict and "Healthy" not in verdict  # 8 records: too few to judge
    progress = [line for line in lines if line.startswith("[")]
    assert progress and all(" | kimg " in line and "/0.5, " in line and line.endswith(" left") for line in progress)
    summary = json.loads((tmp_path / "k" / "summary.json").read_text())
    assert (summary["stopped_by"], summary["limit"], summary["judged"]) == ("kimg", 0.5, False)
    assert summary["kimg"] >= 0.5


def test_help_shows_the_presets_values_and_why(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--preset", "breakout", "--help"])
    out = capsys.readouterr().out
    text, bare = " ".join(out.split()), "".join(out.split())  # bare: argparse wraps lines, even at hyphens
    for key, value in PRESETS["breakout"].items():
        assert "".join(f"[preset breakout: {value!r}, {REASONS['breakout'][key]}]".split()) in bare, key
    assert "--loss LOSS adversarial loss (bce: non-saturating); one of: bce, wgan, wgan-gp, hinge, lsgan" in text
    assert "--name NAME run directory name (default: numbered NNNNN-preset) --" in text  # its default once


def test_listed_choices_are_what_the_builders_accept():
    from gankit.losses import build_loss
    from gankit.metrics.registry import names
    from gankit.models import build_discriminator, build_generator

    assert [build_loss(name).name for name in LOSSES] == list(LOSSES)
    for model in MODELS:  # 32 px: the smallest size every model builds (fastgan's decoders need 32)
        assert build_generator(model, 32, 32, 3, 8, 8).latent == 8
        assert build_discriminator(model, 32, 32, 3, 8) is not None
    assert sorted(EXTRACTORS) == names()
