"""Honest verdicts and warnings that reach the user.

"Healthy" only with enough records to judge, "Too short to judge" below that,
"Interrupted at ..." after Ctrl-C; saturation reported soon after it starts
(replayed from a real forced run: `gankit train --preset dcgan` on Breakout
frames, D right on every image from its 5th logged step); warnings on their
own line and in log.txt.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gankit.monitor.events import HealthEvent
from gankit.monitor.health import HealthChecker, HealthThresholds
from gankit.monitor.verdict import min_records, verdict

FORCED = Path(__file__).parent / "data" / "saturation_dcgan_breakout.jsonl"
# The documented worst case (docs/monitoring.md): a failure present from the
# first record is reported at record warmup + window; later ones after
# window // 2 + 1 records of it.
MAX_DELAY = HealthThresholds().warmup_records + HealthThresholds().window


def forced_records() -> list[dict]:
    return [json.loads(line) for line in FORCED.read_text().splitlines()]


def saturated(r: dict) -> bool:
    return r["d_x"] > 0.95 and r["acc_real"] >= 0.99 and r["acc_fake"] >= 0.99 and r["loss_g"] > 2.5


def first_report(records: list[dict]) -> int | None:
    checker = HealthChecker("bce", 2e-4, 2e-4)
    for i, rec in enumerate(records, 1):
        if any(ev.kind == "d_saturation" for ev in checker.observe(rec)):
            return i
    return None


def test_forced_saturation_is_reported_within_the_documented_delay():
    records = forced_records()
    onset = next(i for i in range(1, len(records) + 1) if all(saturated(r) for r in records[i - 1:]))
    reported = first_report(records)
    assert onset == 5  # what the recorded run shows: D right on every image from record 5 on
    assert reported is not None and reported - onset <= MAX_DELAY
    assert reported == min_records()  # as early as the checks can judge at all


@pytest.mark.parametrize("healthy_records", [0, 20, 60])
def test_saturation_after_a_healthy_start_is_reported_within_five_records(healthy_records):
    """The forced run's saturated records after `healthy_records` balanced ones."""
    balanced = {"loss_d": 1.2, "loss_g": 1.0, "d_x": 0.6, "d_g_z1": 0.4, "d_g_z2": 0.38,
                "acc_real": 0.7, "acc_fake": 0.65, "grad_norm_g": 1.0}
    records = [{**balanced, "step": i + 1, "kimg": (i + 1) * 0.032} for i in range(healthy_records)]
    for j, rec in enumerate(forced_records()[10:]):
        records.append({**rec, "step": healthy_records + j + 1})
    reported = first_report(records)
    assert reported is not None
    delay = reported - healthy_records
    thresholds = HealthThresholds()
    assert delay <= (MAX_DELAY if healthy_records < thresholds.warmup_records else thresholds.window // 2 + 1)


def test_verdict_is_healthy_only_with_enough_records():
    rec = {"loss_d": 1.2, "loss_g": 1.0, "d_x": 0.6, "d_g_z1": 0.4, "acc_real": 1.0, "acc_fake": 1.0, "kimg": 0.1,
           "step": 2, "epoch": 1, "time": 1.0}
    need = min_records()
    for n in (1, 2, 3, need - 1):
        text = verdict([rec] * n, [], "finished", ("kimg", 0.1))
        assert "Too short to judge" in text and "Healthy" not in text and "100%" not in text, n
    assert verdict([rec] * need, [], "finished").startswith(f"Healthy: no failure was detected in {need} log records.")
    text = verdict([rec] * 40, [], "interrupted")
    assert text.startswith("Interrupted at epoch 1, 0.1 kimg") and "Healthy" not in text
    assert verdict([rec] * 2, [], "interrupted").startswith("Interrupted at epoch 1")
    problem = HealthEvent("d_saturation", 2, 0.1, "D wins", "lower --lr-d")
    assert verdict([rec] * 2, [problem], "finished").startswith("Problems detected: discriminator saturation")


def test_warnings_print_on_their_own_line_and_reach_log_txt(tmp_path):
    """A health event raised while a progress bar is drawn, in a real process."""
    script = textwrap.dedent(f"""
        import sys
        from tqdm import tqdm
        from gankit.config import TrainConfig
        from gankit.monitor.run_monitor import RunMonitor
        mon = RunMonitor({str(tmp_path / 'run')!r}, TrainConfig(tensorboard=False))
        bar = tqdm(total=10, file=sys.stderr, mininterval=0)
        bar.update(3)
        mon.event("non_finite", 7, 0.2, "non-finite values in loss_d", "lower the learning rates")
        bar.update(3)
        bar.close()
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    line = ("gankit: WARNING [non_finite] step 7 (0.2 kimg): non-finite values in loss_d "
            "Advice: lower the learning rates")
    pieces = proc.stderr.replace("\r", "\n").splitlines()
    assert line in [p.strip() for p in pieces]  # whole, on a line of its own
    assert line in (tmp_path / "run" / "log.txt").read_text().splitlines()
    assert json.loads((tmp_path / "run" / "health.jsonl").read_text())["kind"] == "non_finite"


def test_ctrl_c_gives_an_interrupted_verdict_not_healthy(tmp_path):
    """A real run stopped with SIGINT after its first log lines."""
    import signal

    from gankit.data import write_dataset

    from conftest import blobs

    data = write_dataset(tmp_path / "tiny", blobs(64), source="test-blobs").path
    proc = subprocess.Popen([sys.executable, "-m", "gankit", "train", "--data", str(data), "--out", str(tmp_path),
                             "--name", "i", "--minutes", "5", "--batch", "16", "--width-g", "8", "--width-d", "8",
                             "--latent", "8", "--log-every", "1", "--no-tensorboard"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    seen = 0
    for line in proc.stdout:
        seen += line.startswith("[")
        if seen >= 3:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0, err[-2000:]
    summary = json.loads((tmp_path / "i" / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["stopped_by"] == "interrupted"
    assert summary["verdict"].startswith("Interrupted at epoch ") and "Healthy" not in summary["verdict"]
    assert summary["verdict"] in out
