import math

import pytest
import torch

from gankit.losses import build_loss

NAMES = ["bce", "wgan", "wgan-gp", "hinge", "lsgan"]


@pytest.mark.parametrize("name", NAMES)
def test_d_loss_is_lower_when_d_is_right(name):
    loss = build_loss(name)
    right = loss.d_loss(torch.full((8,), 3.0), torch.full((8,), -3.0))
    wrong = loss.d_loss(torch.full((8,), -3.0), torch.full((8,), 3.0))
    assert right < wrong


@pytest.mark.parametrize("name", NAMES)
def test_g_loss_is_lower_when_g_fools_d(name):
    loss = build_loss(name)
    assert loss.g_loss(torch.full((8,), 3.0)) < loss.g_loss(torch.full((8,), -3.0))


def test_bce_matches_formula_and_label_smoothing():
    logits_r, logits_f = torch.tensor([0.5, -1.0]), torch.tensor([0.2, -2.0])
    sig = torch.sigmoid
    expected = -(torch.log(sig(logits_r)).mean() + torch.log(1 - sig(logits_f)).mean())
    assert build_loss("bce").d_loss(logits_r, logits_f).item() == pytest.approx(expected.item(), rel=1e-5)
    smooth = build_loss("bce", label_smoothing=0.1).d_loss(logits_r, logits_f)
    t = 0.9
    exp_s = (-(t * torch.log(sig(logits_r)) + (1 - t) * torch.log(1 - sig(logits_r))).mean()
             - torch.log(1 - sig(logits_f)).mean())
    assert smooth.item() == pytest.approx(exp_s.item(), rel=1e-5)


def test_hinge_and_lsgan_values():
    r, f = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    assert build_loss("hinge").d_loss(r, f).item() == pytest.approx((0 + 0.5) / 2 + (0 + 1) / 2)
    assert build_loss("lsgan").d_loss(r, f).item() == pytest.approx(0.5 * (1 + 0.25) / 2 + 0.5 * (4 + 0) / 2)


def test_wgan_clips_weights_after_d_step():
    D = torch.nn.Linear(4, 1)
    with torch.no_grad():
        D.weight.fill_(1.0)
    build_loss("wgan").after_d_step(D)
    assert D.weight.abs().max().item() == pytest.approx(0.01)


def test_wgan_gp_penalty_on_linear_critic():
    w = torch.tensor([[3.0, 4.0]])  # |w| = 5, so the penalty is 10 * (5 - 1)^2
    D = torch.nn.Linear(2, 1)
    with torch.no_grad():
        D.weight.copy_(w)
    pen = build_loss("wgan-gp").d_penalty(lambda x: D(x).squeeze(1), torch.randn(6, 2), torch.randn(6, 2))
    assert pen.item() == pytest.approx(10 * (5 - 1) ** 2, rel=1e-4)
    assert math.isfinite(pen.item())
