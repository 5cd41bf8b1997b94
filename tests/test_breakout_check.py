"""benchmarks/breakout_samples.py is how `make run`'s samples are judged, so
the judge itself is checked: on real Breakout frames from the emulator it
finds every part, and each part it claims can be taken away and is missed."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gankit.data import load_dataset
from gankit.data.atari import collect_atari

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import breakout_samples as judge  # noqa: E402


@pytest.fixture(scope="module")
def breakout(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("breakout") / "d"
    collect_atari("Breakout", 60, 64, out, every=4, policy="agent", seed=3, progress=False)
    return out


@pytest.fixture(scope="module")
def frames(breakout) -> np.ndarray:
    return np.asarray(load_dataset(breakout).images)


@pytest.fixture(scope="module")
def tiny_breakout_run(breakout, tmp_path_factory) -> Path:
    import gankit
    from gankit.config import TrainConfig

    cfg = TrainConfig.from_preset("breakout", data=str(breakout), out=str(tmp_path_factory.mktemp("runs")),
                                  name="tiny", width_g=8, width_d=8, latent=16, batch=8, kimg=0.08, minutes=0,
                                  num_samples=4, tensorboard=False, threads=1)
    return gankit.train(cfg)


def test_real_frames_show_every_part_and_a_moving_paddle(frames):
    s = judge.summarise(frames)
    assert s["walls"] == s["top_bar"] == s["bricks"] == s["paddle"] == 1.0
    assert s["positions"] >= 5, "the agent moves the paddle"


def test_each_part_taken_away_is_missed(frames):
    frame = frames[10].copy()
    assert all(judge.check_frame(frame)[k] for k in ("walls", "top_bar", "bricks", "paddle"))

    no_paddle = frame.copy()
    no_paddle[judge.PADDLE_ROWS, judge.PLAYFIELD_COLS] = 0
    assert not judge.check_frame(no_paddle)["paddle"]

    two_paddles = frame.copy()
    band = two_paddles[judge.PADDLE_ROWS, judge.PLAYFIELD_COLS]
    start = judge.paddle_starts(frame)[0]
    other = (start + 25) % (band.shape[1] - 8)
    band[:, other:other + 6] = band[:, start:start + 6]
    assert len(judge.paddle_starts(two_paddles)) == 2 and not judge.check_frame(two_paddles)["paddle"]

    no_walls = frame.copy()
    no_walls[:, :2] = 0
    assert not judge.check_frame(no_walls)["walls"]

    no_bricks = frame.copy()
    no_bricks[16:30, judge.PLAYFIELD_COLS] = 0
    assert not judge.check_frame(no_bricks)["bricks"]

    grey_noise = np.random.default_rng(0).integers(0, 256, (64, 64, 1), dtype=np.uint8).repeat(3, axis=2)
    assert not any(judge.check_frame(grey_noise)[k] for k in ("walls", "top_bar", "bricks", "paddle"))


def test_the_script_scores_a_trained_run(tiny_breakout_run):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "breakout_samples.py"), str(tiny_breakout_run),
                           "--num", "16"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    real = next(line for line in done.stdout.splitlines() if line.startswith("real"))
    assert real.split()[1:5] == ["1.00"] * 4, "real frames pass every check"
    assert "paddle in generated frames:" in done.stdout


# ---------------------------------------------------------------- breakout_quality.py
import breakout_quality as quality  # noqa: E402


def test_the_ball_is_found_where_it_is_drawn_and_missed_when_erased(frames):
    with_ball = [f for f in frames if quality.ball_at(f) is not None]
    assert 0.3 < len(with_ball) / len(frames) < 1.0, "the agent's frames show the ball in flight most of the time"
    erased = with_ball[0].copy()
    erased[quality.BALL_ROWS, judge.PLAYFIELD_COLS] = 0
    assert quality.ball_at(erased) is None

    drawn = erased.copy()
    drawn[40:42, 20:22] = (150, 54, 54)  # a 2x2 ball in Breakout's red
    assert quality.ball_at(drawn) == pytest.approx((40.5, 20.5))
    drawn[45:47, 50:52] = (150, 54, 54)  # two balls are not one ball
    assert quality.ball_at(drawn) is None


def test_paddle_w1_measures_a_shift_in_frame_widths(frames):
    ref = quality.positions(frames)
    same = quality.compare(ref, ref)
    assert same["paddle_w1"] == 0 and same["ball_gap"] == 0 and same["ball_w1_x"] == 0
    inside = np.array([f for f in frames if 8 <= judge.check_frame(f)["paddle_at"] <= 40])  # away from the walls
    shifted = inside.copy()
    shifted[:, judge.PADDLE_ROWS] = np.roll(inside[:, judge.PADDLE_ROWS], 3, axis=2)  # every paddle 3 px right
    before, after = quality.positions(inside), quality.positions(shifted)
    assert after["paddle"] == before["paddle"] == 1.0
    assert quality.compare(after, before)["paddle_w1"] == pytest.approx(3 / 64, abs=1e-9)


def test_quality_script_scores_every_checkpoint_against_a_real_floor(tiny_breakout_run, tmp_path):
    out = tmp_path / "q.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "breakout_quality.py"), str(tiny_breakout_run),
                           "--num", "16", "--no-fid", "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    import json

    result = json.loads(out.read_text())
    ckpts = sorted((tiny_breakout_run / "checkpoints").glob("ckpt-*.pt"))
    assert len(result["checkpoints"]) == len(ckpts) >= 1
    assert result["real_vs_real"]["paddle"] == 1.0 and result["real"]["paddle"] == 1.0
    assert "real/real" in done.stdout


# ---------------------------------------------------------------- breakout_long.py
import breakout_long as long_run  # noqa: E402


def test_the_paddle_hold_flags_a_fall_beyond_the_slack_only():
    assert long_run.hold({100: 0.90, 200: 0.88, 400: 0.93, 800: 0.90}) == []  # 0.88 and 0.90: within 0.03
    falls = long_run.hold({100: 0.90, 200: 0.95, 400: 0.91, 800: 0.96})
    assert falls == ["0.91 at 400 kimg < best earlier 0.95"]


def test_budgets_map_to_the_nearest_checkpoint_within_tolerance():
    found = {72.0: Path("a"), 84.0: Path("b"), 250.0: Path("c")}
    assert long_run.nearest(found, 80, 7) == 84.0
    assert long_run.nearest(found, 78, 7) == 72.0  # a tie goes to the earlier state
    assert long_run.nearest(found, 800, 7) is None  # a budget the run has not reached


def test_health_windows_start_after_the_settling_kimg_and_stop_at_the_budget(tmp_path):
    import json

    acc = [0.99] * 20 + [0.6] * 10 + [0.95] * 8 + [0.7] * 8  # one log per kimg: 1..20 high, a high spell 31-38
    with open(tmp_path / "metrics.jsonl", "w") as f:
        for i, a in enumerate(acc):
            f.write(json.dumps({"step": i + 1, "kimg": float(i + 1), "acc_real": a}) + "\n")
    events = [{"kind": "resume_change", "step": 1, "kimg": 1.0}, {"kind": "d_saturation", "step": 35, "kimg": 35.0},
              {"kind": "d_saturation", "step": 45, "kimg": 45.0}]
    (tmp_path / "health.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    before = long_run.health_until(tmp_path, 30.0)  # the 0.99s lie in the first 20 kimg
    assert before["acc_real_max_window"] == pytest.approx(0.6) and before["events"] == []
    full = long_run.health_until(tmp_path, 100.0)
    assert full["acc_real_max_window"] == pytest.approx(0.95) and full["at_kimg"] == 38.0
    assert full["events"] == ["d_saturation@35", "d_saturation@45"]


def test_long_script_judges_a_run_at_its_budget(tiny_breakout_run, tmp_path):
    import json

    out = tmp_path / "long.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "breakout_long.py"), str(tiny_breakout_run),
                           "--at", "0.08,800", "--hold", "0.08", "--num", "16", "--no-fid", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (res,) = json.loads(out.read_text())
    assert list(res["budgets"]) == ["0.08"], "800 kimg was never reached, so it is left out"
    judged = res["budgets"]["0.08"]
    name = f"ckpt-{round(judged['checkpoint_kimg'] * 1000):09d}.pt"
    direct = quality.evaluate_run(tiny_breakout_run, 16, 0, only=name, with_fid=False)
    assert judged["paddle"] == next(iter(direct["checkpoints"].values()))["paddle"]
    assert res["hold"]["falls"] == [] and "| tiny |" in done.stdout


# ---------------------------------------------------------------- breakout_probe.py
import torch  # noqa: E402

import breakout_probe as probe  # noqa: E402


def test_erasing_takes_away_that_part_and_nothing_else(frames):
    both = probe.probe_frames(frames, 20)
    for frame in both:
        no_ball, no_paddle = probe.erase_ball(frame), probe.erase_paddle(frame)
        assert quality.ball_at(no_ball) is None and judge.paddle_starts(no_ball) == judge.paddle_starts(frame)
        assert judge.paddle_starts(no_paddle) == [] and quality.ball_at(no_paddle) == quality.ball_at(frame)
        changed = np.argwhere((no_ball != frame).any(axis=2))
        row, col = quality.ball_at(frame)
        assert len(changed) and (np.abs(changed - (row, col)) <= 3).all(), "only pixels around the ball change"


class _BallWatcher(torch.nn.Module):
    """A 'discriminator' that counts red in the ball's field: the more, the more real."""

    def forward(self, x):
        field = x[:, :, quality.BALL_ROWS, judge.PLAYFIELD_COLS]
        return (field[:, 0] - field[:, 1:].amax(dim=1)).clamp(min=0).sum(dim=(1, 2))


def test_the_probe_reports_what_a_discriminator_looks_at(frames):
    both = probe.probe_frames(frames, 20)
    ball = probe.logit_shift(_BallWatcher(), both, probe.erase_ball)
    paddle = probe.logit_shift(_BallWatcher(), both, probe.erase_paddle)
    assert ball["lowered"] == 1.0 and ball["shift"] < 0 and ball["shift_sd"] < -1
    assert paddle["shift"] == 0 and paddle["lowered"] == 0.0, "the paddle is outside what this D looks at"


def test_the_ball_contrast_tells_a_bright_ball_from_a_faint_one(frames):
    both = probe.probe_frames(frames, 20)
    faint = both.copy()
    field = faint[:, quality.BALL_ROWS, judge.PLAYFIELD_COLS].astype(int)
    faint[:, quality.BALL_ROWS, judge.PLAYFIELD_COLS] = (field // 4).astype(np.uint8)  # a quarter as bright
    real, dim = probe.ball_contrast(both), probe.ball_contrast(faint)
    assert real["reddish"] == 1.0 and real["excess"] > 30
    assert dim["excess"] < real["excess"] / 3


def test_probe_script_reads_every_checkpoint_of_a_run(tiny_breakout_run, tmp_path):
    import json

    out = tmp_path / "probe.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "breakout_probe.py"), str(tiny_breakout_run),
                           "--num", "16", "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    ckpts = sorted((tiny_breakout_run / "checkpoints").glob("ckpt-*.pt"))
    best = (tiny_breakout_run / "checkpoints" / "best.pt").is_file()
    assert len(result["checkpoints"]) == len(ckpts) + best >= 1, "every checkpoint (and best.pt where there is one)"
    for row in result["checkpoints"].values():
        assert 0 <= row["ball"]["lowered"] <= 1 and row["paddle"]["logit_sd"] > 0
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "breakout_probe.py"), str(tiny_breakout_run),
                          "--checkpoint", "nope.pt"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "nope.pt" in bad.stderr
