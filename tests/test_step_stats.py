"""`StepStats`: the named statistics a training step returns and the loop sums.

Checked against sums computed here by hand: D fields average over D steps,
G fields over G steps only, gradient norms keep the last measured value,
and a reset starts a new interval.
"""
from __future__ import annotations

import pytest
import torch

from gankit.train.distributed import DistInfo
from gankit.train.step import StepStats


def _d_step(x: float, grad: float | None = None) -> StepStats:
    t = lambda v: torch.tensor(v)  # noqa: E731
    return StepStats(loss_d=t(x), d_real=t(x / 10), d_fake=t(x / 20), acc_real=t(1.0), acc_fake=t(0.0),
                     grad_norm_d=None if grad is None else t(grad))


def _with_g(stats: StepStats, loss_g: float, grad: float | None = None) -> StepStats:
    stats.loss_g, stats.d_fake_g, stats.g_steps = torch.tensor(loss_g), torch.tensor(loss_g / 4), 1
    stats.grad_norm_g = None if grad is None else torch.tensor(grad)
    return stats


def test_interval_means_count_d_and_g_steps_apart():
    total = StepStats.zeros(torch.device("cpu"))
    total.add(_d_step(1.0))
    total.add(_with_g(_d_step(2.0, grad=5.0), 8.0, grad=7.0))
    total.add(_d_step(3.0, grad=6.0))  # a log step without a G step: the D norm is new, the G norm stays
    total.all_reduce(DistInfo())  # one process: unchanged
    rec = total.to_record()
    assert (total.d_steps, total.g_steps) == (3, 1)
    assert rec["loss_d"] == pytest.approx(2.0) and rec["d_x"] == pytest.approx(0.2)
    assert rec["d_g_z1"] == pytest.approx(0.1)
    assert rec["loss_g"] == pytest.approx(8.0) and rec["d_g_z2"] == pytest.approx(2.0)  # over the one G step
    assert rec["acc_real"] == 1.0 and rec["acc_fake"] == 0.0
    assert rec["grad_norm_d"] == pytest.approx(6.0) and rec["grad_norm_g"] == pytest.approx(7.0)


def test_reset_starts_a_new_interval_and_no_g_step_logs_zero():
    total = StepStats.zeros(torch.device("cpu"))
    total.add(_with_g(_d_step(4.0), 9.0))
    total.reset()
    assert (total.d_steps, total.g_steps) == (0, 0)
    total.add(_d_step(5.0))
    rec = total.to_record()
    assert rec["loss_d"] == pytest.approx(5.0)
    assert rec["loss_g"] == 0.0 and rec["grad_norm_g"] == 0.0 and rec["grad_norm_d"] == 0.0
    assert total.loss_d.dtype == torch.float32 and total.loss_d.dim() == 0  # stays a device scalar until logged
