"""Health checks on synthetic metric streams that reproduce each failure.

The failing streams replay the numbers of the logs users posted (the
Pokémon-cards saturation and the `Loss_D: 100` collapse of D); the healthy
stream has the noise, spikes and wild first records of real DCGAN training
and must produce no event at all.
"""
from __future__ import annotations

import math
import random

import pytest
import torch

from gankit.monitor.health import HealthChecker, HealthThresholds, contrast, diversity

# (loss_d, loss_g, d_x, d_g_z1, d_g_z2) lines from the seeds' logs
SATURATED = [(0.0212, 5.4926, 0.9944, 0.0152, 0.0081), (0.0611, 6.1382, 0.9873, 0.0425, 0.0043),
             (0.0096, 6.2776, 0.9969, 0.0065, 0.0043), (0.0967, 4.0573, 0.9409, 0.0273, 0.0297)]
OVERPOWERED = [(100.0, 0.0, 1.0, 1.0, 1.0)]


def record(i: int, loss_d: float, loss_g: float, d_x: float, d_g_z1: float, d_g_z2: float,
           grad_norm_g: float = 1.0, lr_d: float = 2e-4) -> dict:
    return {"epoch": 1 + i // 50, "epochs": 0, "iter": 1 + i % 50, "iters": 50, "step": (i + 1) * 10,
            "images_seen": (i + 1) * 640, "kimg": (i + 1) * 0.64, "time": float(i), "loss_d": loss_d,
            "loss_g": loss_g, "d_x": d_x, "d_g_z1": d_g_z1, "d_g_z2": d_g_z2,
            "acc_real": 1.0 if d_x > 0.5 else 0.0, "acc_fake": 1.0 if d_g_z1 < 0.5 else 0.0,
            "lr_g": 2e-4, "lr_d": lr_d, "grad_norm_g": grad_norm_g, "grad_norm_d": 3.0}


def healthy(i: int, rng: random.Random) -> dict:
    """Noisy balanced training, with the wild first records and a rare one-record spike of D winning."""
    if i < 4 or rng.random() < 0.05:
        return record(i, 0.05, 6.5, 0.99, 0.01, 0.005, grad_norm_g=rng.uniform(0.5, 8))
    d_x = rng.uniform(0.45, 0.85)
    d_g = rng.uniform(0.1, 0.45)
    return record(i, -math.log(d_x) - math.log(1 - d_g), -math.log(max(d_g * 0.9, 1e-3)), d_x, d_g, d_g * 0.9,
                  grad_norm_g=rng.uniform(0.3, 3.0))


def run(checker: HealthChecker, records: list[dict]) -> list[tuple[int, object]]:
    """Feed records; return (record index, event) pairs."""
    return [(i, ev) for i, rec in enumerate(records) for ev in checker.observe(rec)]


def stream(n_good: int, bad_rows: list[tuple], n_bad: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    recs = [healthy(i, rng) for i in range(n_good)]
    for j in range(n_bad):
        row = bad_rows[j % len(bad_rows)]
        jitter = [v * (1 + rng.uniform(-0.01, 0.01)) for v in row]
        jitter[2:] = [min(1.0, v) for v in jitter[2:]]
        recs.append(record(n_good + j, *jitter))
    return recs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_healthy_stream_stays_silent(seed: int) -> None:
    rng = random.Random(seed)
    checker = HealthChecker("bce", 2e-4, 2e-4)
    assert run(checker, [healthy(i, rng) for i in range(400)]) == []


def test_saturation_reported_once_at_about_the_right_step() -> None:
    t = HealthThresholds()
    checker = HealthChecker("bce", 2e-4, 2e-4)
    found = run(checker, stream(30, SATURATED, 30))
    assert [ev.kind for _, ev in found] == ["d_saturation"]
    index, ev = found[0]
    assert 30 + t.window // 2 <= index <= 30 + t.window  # once the window is mostly saturated
    assert ev.step == (index + 1) * 10 and ev.kimg == pytest.approx((index + 1) * 0.64)
    # the measured cure (docs/remedies.md): R1 on; halving lr_d made D win more, so it is not offered
    assert "--r1 1" in ev.advice and "small64" in ev.advice and "docs/remedies.md" in ev.advice
    assert ev.remedy == {"r1": pytest.approx(1.0)}
    assert "0.9" in ev.message  # reports the D(x) it saw


def test_saturation_with_r1_on_doubles_its_weight() -> None:
    checker = HealthChecker("bce", 2e-4, 2e-4)
    recs = stream(30, SATURATED, 30)
    for r in recs:
        r["r1"] = 0.3  # the trainer logs the R1 weight in use
    (_, ev), = run(checker, recs)
    assert ev.remedy == {"r1": pytest.approx(0.6)} and "--r1 0.6" in ev.advice


def test_long_saturation_is_rate_limited_and_rearms_after_clearing() -> None:
    t = HealthThresholds()
    recs = stream(20, SATURATED, 200)
    checker = HealthChecker("bce", 2e-4, 2e-4)
    found = run(checker, recs)
    assert all(ev.kind == "d_saturation" for _, ev in found)
    # first report + a reminder every remind_every records, never one per record
    assert len(found) == 1 + (200 - (found[0][0] - 20) - 1) // t.remind_every
    # clears for a while, then comes back: reported again right away
    rng = random.Random(5)
    n = len(recs)
    recovery = [healthy(n + i, rng) for i in range(4, 4 + 3 * t.window)]
    relapse = stream(0, SATURATED, 12)
    for i, r in enumerate(relapse):
        r.update(step=(n + len(recovery) + i + 1) * 10)
    again = run(checker, recovery + relapse)
    assert [ev.kind for _, ev in again] == ["d_saturation"]
    assert again[0][0] >= len(recovery)


def test_generator_overpowering_from_the_loss_d_100_log() -> None:
    checker = HealthChecker("bce", 2e-4, 2e-4)
    found = run(checker, stream(30, OVERPOWERED, 20))
    assert [ev.kind for _, ev in found] == ["g_overpowers_d"]
    index, ev = found[0]
    assert 30 <= index <= 30 + HealthThresholds().window
    assert "--lr-g" in ev.advice and ev.remedy == {"lr_g": pytest.approx(1e-4)}


def test_vanishing_generator_gradients() -> None:
    rng = random.Random(3)
    recs = [healthy(i, rng) for i in range(40)]
    for i in range(40, 70):
        r = healthy(i, rng)
        r["grad_norm_g"] = 1e-5 * rng.uniform(0.5, 1.5)
        recs.append(r)
    found = run(HealthChecker("bce", 2e-4, 2e-4), recs)
    assert [ev.kind for _, ev in found] == ["vanishing_g_grad"]
    assert 40 <= found[0][0] <= 40 + HealthThresholds().window
    assert found[0][1].remedy == {}  # D(x) was not above 0.9: not a saturated D, so no R1
    # A slow halving of the gradient norm over training is normal and stays silent.
    rng = random.Random(4)
    slow = [healthy(i, rng) for i in range(300)]
    for i, r in enumerate(slow):
        r["grad_norm_g"] = 2.0 * 0.5 ** (i / 300)
    assert run(HealthChecker("bce", 2e-4, 2e-4), slow) == []


def test_non_finite_reported_once_per_incident_even_during_warmup() -> None:
    rng = random.Random(6)
    recs = [healthy(i, rng) for i in range(12)]
    recs[1]["loss_g"] = float("nan")
    recs[7]["loss_d"] = float("inf")
    recs[8]["loss_d"] = float("inf")  # same incident, not repeated
    found = run(HealthChecker("bce", 2e-4, 2e-4), recs)
    assert [(i, ev.kind) for i, ev in found] == [(1, "non_finite"), (7, "non_finite")]
    assert "loss_g" in found[0][1].message and "loss_d" in found[1][1].message


def test_probability_checks_follow_the_loss() -> None:
    # hinge: saturation read from the accuracies
    recs = stream(20, SATURATED, 20)
    found = run(HealthChecker("hinge", 2e-4, 2e-4), recs)
    assert [ev.kind for _, ev in found] == ["d_saturation"]
    assert "--label-smoothing" not in found[0][1].advice  # bce only
    # wgan: a critic's sign means nothing, so no saturation/overpowering reports
    assert run(HealthChecker("wgan-gp", 2e-4, 2e-4), stream(20, SATURATED, 20) + stream(0, OVERPOWERED, 20)) == []


def test_rollback_forgets_the_abandoned_timeline() -> None:
    rng = random.Random(7)
    checker = HealthChecker("bce", 2e-4, 2e-4)
    recs = stream(20, SATURATED, 5)
    run(checker, recs)
    # the loop rolls back to step 100 and replays healthy records from there
    replay = [healthy(i, rng) for i in range(9, 40)]
    assert run(checker, replay) == []
    assert [r["step"] for r in checker.history] == sorted(r["step"] for r in checker.history)


def test_diversity_measure() -> None:
    g = torch.Generator().manual_seed(0)
    varied = torch.rand(16, 3, 8, 8, generator=g) * 2 - 1
    same = varied[:1].expand(16, -1, -1, -1)
    assert diversity(same) == pytest.approx(0.0, abs=1e-5)
    assert diversity(varied) > 0.3
    # one image plus tiny noise: collapsed, far below the real spread
    near = same + 0.01 * torch.randn(16, 3, 8, 8, generator=g)
    assert diversity(near) < 0.05 * diversity(varied)


def test_mode_collapse_needs_alike_images_that_are_not_flat() -> None:
    g = torch.Generator().manual_seed(1)
    real = torch.rand(16, 1, 8, 8, generator=g) * 2 - 1
    collapsed = real[:1].expand(16, -1, -1, -1) + 0.02 * torch.randn(16, 1, 8, 8, generator=g)
    flat = 0.05 * torch.randn(16, 1, 8, 8, generator=g)  # an untrained generator: faint, alike images

    def check(checker: HealthChecker, fake: torch.Tensor, step: int):
        return checker.diversity_event(diversity(fake), diversity(real), step, step / 100,
                                       contrast(fake), contrast(real))

    checker = HealthChecker("bce", 2e-4, 2e-4)
    assert check(checker, collapsed, 10) is None  # warm-up: early training is allowed to look odd
    rng = random.Random(8)
    run(checker, [healthy(i, rng) for i in range(10)])
    assert diversity(flat) < 0.25 * diversity(real)
    assert check(checker, flat, 20) is None  # not drawing anything yet is not a collapse
    ev = check(checker, collapsed, 30)
    assert ev is not None and ev.kind == "mode_collapse" and "--diffaugment" in ev.advice
    # no automatic remedy: none was measured to end a collapse; the advice says which is measured
    assert ev.remedy == {} and "--r1 1" in ev.advice and "Not measured" in ev.advice and "%" in ev.message
    # still collapsed: repeated only every collapse_remind checks
    t = HealthThresholds()
    repeats = [check(checker, collapsed, 40 + k) is not None for k in range(t.collapse_remind)]
    assert repeats == [False] * (t.collapse_remind - 1) + [True]
    # recovered, then collapsed again: reported again at once
    assert check(checker, torch.rand(16, 1, 8, 8, generator=g) * 2 - 1, 50) is None
    assert check(checker, collapsed, 60) is not None


def _evals(scores: list[float], start: int = 0) -> list[dict]:
    return [{"kind": "eval", "step": (start + i + 1) * 100, "kimg": (start + i + 1) * 1.0, "memorization": s,
             "fid": 40.0} for i, s in enumerate(scores)]


def test_memorization_warned_when_the_copy_score_climbs_not_when_flat_and_low() -> None:
    t = HealthThresholds()
    flat = HealthChecker("hinge", 2e-4, 2e-4)
    rng = random.Random(3)
    low = [0.05 + rng.uniform(-0.03, 0.03) for _ in range(30)]  # a generator that copies nothing: ~the percentile
    assert [flat.memorization_event(r) for r in _evals(low)] == [None] * 30
    rising = HealthChecker("hinge", 2e-4, 2e-4)
    scores = [0.04, 0.05, 0.06, 0.09, 0.15, 0.24, 0.33, 0.41, 0.45]
    fired = [(r["memorization"], ev) for r in _evals(scores) if (ev := rising.memorization_event(r)) is not None]
    first = scores.index(min(s for s in scores if s >= t.memo_score))  # as soon as it crossed the line, rising
    # once when it appears, then a reminder only every collapse_remind evaluations while it lasts
    assert [v for v, _ in fired] == [scores[first], scores[first + t.collapse_remind]]
    ev = fired[0][1]
    assert ev.kind == "memorization" and ev.kind != "mode_collapse" and ev.remedy == {}  # no automatic remedy
    assert "rose from" in ev.message and "--diffaugment" in ev.advice and "neighbours" in ev.advice
    # the checker's memory travels in checkpoints: a resumed run does not warn again at once
    resumed = HealthChecker("hinge", 2e-4, 2e-4)
    resumed.load_state_dict(rising.state_dict())
    assert resumed.memorization_event(_evals([0.47], start=len(scores))[0]) is None
    assert resumed.copy_scores == rising.copy_scores[:len(scores)] + [(len(scores) + 1.0, 0.47)]
    # a high copy score from the start is memorisation too, rising or not
    high = HealthChecker("hinge", 2e-4, 2e-4)
    assert high.memorization_event(_evals([0.7])[0]) is not None
