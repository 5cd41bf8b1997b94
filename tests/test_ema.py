"""The generator EMA: its half-life, the ramp (--ema-rampup), and what the ramp leaves alone."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gankit.cli import main
from gankit.train import checkpoint as ckpt
from gankit.train.ema import EMA

TINY = ["--model", "dcgan", "--width-g", "8", "--width-d", "8", "--latent", "16", "--batch", "32",
        "--log-every", "4", "--num-samples", "4", "--no-tensorboard", "--no-health", "--keep", "5"]


def _pair() -> tuple[nn.Linear, EMA]:
    G = nn.Linear(1, 1, bias=False)
    G.weight.data.fill_(0.0)
    return G, EMA(G, half_life_kimg=1.0, rampup=0.1)


def test_the_half_life_is_the_longer_of_the_fixed_one_and_the_ramp():
    _, ema = _pair()
    assert ema.half_life(0.0) == ema.half_life(10.0) == 1.0  # 0.1 x 10 kimg = 1: the ramp takes over here
    assert ema.half_life(20.0) == pytest.approx(2.0) and ema.half_life(800.0) == pytest.approx(80.0)
    assert EMA(nn.Linear(1, 1), 1.0).half_life(800.0) == 1.0  # no ramp: fixed


@pytest.mark.parametrize("kimg, half_life", [(5.0, 1.0), (20.0, 2.0), (40.0, 4.0)])
def test_one_update_moves_by_the_half_life_in_force(kimg, half_life):
    G, ema = _pair()
    G.weight.data.fill_(1.0)
    ema.update(G, 1000, kimg)  # 1 kimg of images: the EMA keeps 0.5 ** (1 / half_life) of its old value
    assert ema.model.weight.item() == pytest.approx(1 - 0.5 ** (1 / half_life), rel=1e-6)


def _state(run):
    return torch.load(ckpt.latest_checkpoint(run / "checkpoints"), weights_only=True)


def test_the_ramp_changes_the_average_only_and_applies_on_resume(tiny_dataset, tmp_path):
    """With --ema-kimg 0.2 --ema-rampup 0.5 the ramp takes over at 0.4 kimg, inside epoch 2 (256 images
    an epoch).  Training (G, D) is the same with and without it, the average is the same up to 0.4
    kimg and differs after; a run that adds the ramp on resume after epoch 1 ends bit for bit as one
    that had it from the start."""
    common = ["--data", str(tiny_dataset.path), "--out", str(tmp_path), *TINY, "--ema-kimg", "0.2"]
    assert main(["train", *common, "--ema-rampup", "0.5", "--name", "ramp", "--epochs", "2"]) == 0
    assert main(["train", *common, "--name", "fixed", "--epochs", "2"]) == 0
    assert main(["train", *common, "--name", "later", "--epochs", "1"]) == 0
    assert main(["train", "--resume", str(tmp_path / "later"), "--epochs", "2", "--ema-rampup", "0.5"]) == 0
    ramp, fixed, later = (_state(tmp_path / n) for n in ("ramp", "fixed", "later"))
    assert ramp["config"]["ema_rampup"] == later["config"]["ema_rampup"] == 0.5
    for part in ("G", "D"):
        assert all(torch.equal(ramp[part][k], fixed[part][k]) for k in ramp[part]), part
    assert all(torch.equal(ramp["G_ema"][k], later["G_ema"][k]) for k in ramp["G_ema"])
    params = [k for k in ramp["G_ema"] if ramp["G_ema"][k].is_floating_point() and "running" not in k]
    assert any(not torch.equal(ramp["G_ema"][k], fixed["G_ema"][k]) for k in params)
    # up to 0.4 kimg the ramp changes nothing: the epoch-1 checkpoints (0.256 kimg) are the same
    first = {n: torch.load(tmp_path / n / "checkpoints" / "ckpt-000000256.pt", weights_only=True)["G_ema"]
             for n in ("ramp", "fixed")}
    assert all(torch.equal(first["ramp"][k], first["fixed"][k]) for k in first["ramp"])
    # and the longer average moved less towards the last weights than the fixed one
    dist = {n: math.sqrt(sum(float((s["G_ema"][k] - s["G"][k]).pow(2).sum()) for k in params))
            for n, s in (("ramp", ramp), ("fixed", fixed))}
    assert dist["ramp"] > dist["fixed"]
