"""--lr-steps (rates that fall at given kimg) and --r1-follows-lr (R1 raised as they fall):
the rates and weights in force, bad values, and resumes that neither repeat nor skip a step."""
from __future__ import annotations

import json

import pytest
import torch

from gankit.cli import main
from gankit.config import TrainConfig
from gankit.train import checkpoint as ckpt
from gankit.train.distributed import DistInfo
from gankit.train.state import TrainState

# tiny_dataset: 256 images, so with --batch 32 an epoch is 8 steps and 0.256 kimg
TINY = ["--model", "dcgan", "--width-g", "8", "--width-d", "8", "--latent", "16", "--batch", "32",
        "--log-every", "4", "--num-samples", "4", "--no-tensorboard", "--no-health", "--keep", "5",
        "--lr-g", "2e-4", "--lr-d", "4e-4", "--r1", "0.1", "--r1-every", "2"]
STEPS = ["--lr-steps", "0.256:0.5,0.512:0.25"]  # halved from epoch 2 on, quartered from epoch 3 on


def test_the_factor_in_force_at_each_kimg():
    cfg = TrainConfig(lr_steps="80:0.5, 130:0.25,180:0.125")
    assert cfg.lr_step_list == [(80.0, 0.5), (130.0, 0.25), (180.0, 0.125)]
    assert [cfg.lr_factor(k) for k in (0, 79.9, 80, 129, 130, 180, 800)] == [1, 1, 0.5, 0.5, 0.25, 0.125, 0.125]
    assert TrainConfig().lr_factor(500.0) == 1.0  # no steps: the rates never change


@pytest.mark.parametrize("value, why", [
    ("80", "not KIMG:FACTOR"), ("80:0", "not KIMG:FACTOR"), ("-1:0.5", "not KIMG:FACTOR"),
    ("80:half", "not KIMG:FACTOR"), ("130:0.5,80:0.25", "must increase"), ("80:0.5,80:0.25", "must increase"),
])
def test_a_bad_schedule_exits_2_naming_the_flag(value, why, capsys):
    assert main(["train", "--data", "x", f"--lr-steps={value}", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "--lr-steps" in err and why in err


def test_steps_scale_the_rates_in_force_so_a_halved_rate_stays_halved():
    cfg = TrainConfig(model="dcgan", width_g=8, width_d=8, latent=8, lr_g=2e-4, lr_d=4e-4)
    state = TrainState(cfg, (3, 16, 16), torch.device("cpu"), DistInfo())
    state.follow_lr_steps(0.5)
    assert (state.lr_g, state.lr_d, state.lr_scale) == (1e-4, 2e-4, 0.5)
    state.set_lr(state.lr_g / 2, state.lr_d / 2)  # a roll-back or a remedy halves both
    state.follow_lr_steps(0.5)  # the same factor again: nothing moves
    assert (state.lr_g, state.lr_d) == (5e-5, 1e-4)
    state.follow_lr_steps(0.25)
    assert (state.lr_g, state.lr_d) == (2.5e-5, 5e-5)
    again = TrainState(cfg, (3, 16, 16), torch.device("cpu"), DistInfo())
    again.load_state_dict(state.state_dict())
    assert (again.lr_g, again.lr_d, again.lr_scale) == (2.5e-5, 5e-5, 0.25)


def _records(run):
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss_d" in r]


def _final(run):
    return torch.load(ckpt.latest_checkpoint(run / "checkpoints"), weights_only=False)


def _same(a, b, parts=("G", "D", "G_ema")):
    return all(torch.equal(a[p][k], b[p][k]) for p in parts for k in a[p])


def test_rates_and_r1_follow_the_steps_and_resume_exactly(tiny_dataset, tmp_path):
    """Three epochs with the steps and R1 following them ("steps"); the same without R1 following
    ("plain"); one epoch without any steps resumed with them ("added"); two epochs with them
    resumed across the second step ("split").  "added" and "split" end bit for bit as "steps"."""
    common = ["--data", str(tiny_dataset.path), "--out", str(tmp_path), *TINY]
    assert main(["train", *common, *STEPS, "--r1-follows-lr", "--name", "steps", "--epochs", "3"]) == 0
    assert main(["train", *common, *STEPS, "--name", "plain", "--epochs", "3"]) == 0
    assert main(["train", *common, "--name", "added", "--epochs", "1"]) == 0
    assert main(["train", "--resume", str(tmp_path / "added"), "--epochs", "3", *STEPS, "--r1-follows-lr"]) == 0
    assert main(["train", *common, *STEPS, "--r1-follows-lr", "--name", "split", "--epochs", "2"]) == 0
    assert main(["train", "--resume", str(tmp_path / "split"), "--epochs", "3"]) == 0

    # every logged step trained with the rates and R1 weight its kimg calls for
    records = _records(tmp_path / "steps")
    assert {r["epoch"] for r in records} == {1, 2, 3}
    for r in records:
        factor = 1.0 if r["kimg"] <= 0.256 else 0.5 if r["kimg"] <= 0.512 else 0.25
        assert (r["lr_g"], r["lr_d"]) == pytest.approx((2e-4 * factor, 4e-4 * factor), rel=1e-12), r
        assert r["r1"] == pytest.approx(0.1 / factor), r
    assert {r["r1"] for r in _records(tmp_path / "plain")} == {0.1}

    steps, plain, added, split = (_final(tmp_path / n) for n in ("steps", "plain", "added", "split"))
    assert steps["lr_scale"] == 0.25 and steps["config"]["lr_g"] == pytest.approx(5e-5)
    assert _same(steps, added) and _same(steps, split)
    for name in ("opt_g", "opt_d"):
        assert steps[name]["param_groups"][0]["lr"] == added[name]["param_groups"][0]["lr"]
    # the raised R1 weight reached D's updates: equal through epoch 1 (factor 1), different after
    first = {n: torch.load(tmp_path / n / "checkpoints" / "ckpt-000000256.pt", weights_only=False)
             for n in ("steps", "plain")}
    assert _same(first["steps"], first["plain"])
    assert not _same(steps, plain, parts=("D",))
