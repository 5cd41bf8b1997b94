"""Faults a user meets, driven for real: signals sent to a training process,
two writers on one run, a full disk (a tiny tmpfs), a read-only folder, a
folder without permission, bad names and failed starts.  Each test checks
the exit status, the one line the user reads, and what is left on disk.

docs/reliability.md lists each fault with the test here that proves it.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from gankit.cli import main
from gankit.data import load_dataset, write_dataset
from gankit.errors import UsageError
from gankit.train import checkpoint as ckpt

from conftest import blobs

# CPU results are bit-identical only at equal thread counts: every run here, in this process or
# in a child, sets the same count (other tests may have changed this process's).
THREADS = str(max(1, min(2, os.cpu_count() or 1)))
TINY = ["--model", "dcgan", "--width-g", "8", "--width-d", "8", "--latent", "16", "--batch", "8",
        "--log-every", "2", "--num-samples", "4", "--no-tensorboard", "--threads", THREADS]
ENV = {**os.environ, "OMP_NUM_THREADS": THREADS, "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module", autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
# The training process, slowed by a sleep before every step (numbers unchanged), so a
# signal sent after a log line lands mid-epoch on any machine; SAVE_DELAY also slows
# the checkpoint written after a signal, so a second signal can land during it.
SLOW = textwrap.dedent("""
    import os, sys, time
    import gankit.train.loop as loop
    import gankit.train.step as step_module
    delay, save_delay = float(sys.argv[1]), float(os.environ.get("SAVE_DELAY", "0"))
    step, save = step_module.TrainStep.__call__, loop.Trainer.save
    def slow(self, *args, **kwargs):
        time.sleep(delay)
        return step(self, *args, **kwargs)
    def slow_save(self):
        if self.stop_requested():
            time.sleep(save_delay)
        return save(self)
    step_module.TrainStep.__call__, loop.Trainer.save = slow, slow_save
    from gankit.cli import main
    sys.exit(main(sys.argv[2:]))
""")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """64 images of 16x16 written by gankit.data's writer: 8 iterations per epoch at batch 8."""
    return write_dataset(tmp_path_factory.mktemp("faults") / "blobs", blobs(64, seed=1), source="test-blobs").path


def _common(data: Path, out: Path) -> list[str]:
    return ["--data", str(data), "--out", str(out), *TINY, "--ada"]


def _error_line(stderr: str) -> str:
    """The line gankit prints for an error (after argparse's usage lines, if any)."""
    lines = [line for line in stderr.splitlines() if line.startswith("gankit ")]
    assert lines, stderr
    return lines[-1]


def _slow_train(tmp_path: Path, delay: float, argv: list[str], save_delay: float = 0.0) -> subprocess.Popen:
    script = tmp_path / "slow_train.py"
    script.write_text(SLOW)
    return subprocess.Popen([sys.executable, str(script), str(delay), "train", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**ENV, "SAVE_DELAY": str(save_delay)},
                            cwd=Path(__file__).parent.parent)


def _wait_for_line(proc: subprocess.Popen, prefix: str, timeout: float = 180) -> str:
    end = time.monotonic() + timeout
    for line in proc.stdout:
        if line.startswith(prefix):
            return line
        assert time.monotonic() < end, f"no line starting {prefix!r}"
    proc.wait()
    raise AssertionError(f"process ended (rc {proc.returncode}) before {prefix!r}: {proc.stderr.read()}")


def _state(run: Path) -> dict:
    return torch.load(ckpt.latest_checkpoint(run / "checkpoints"), weights_only=True)


def _same_training_state(a: dict, b: dict) -> None:
    assert a["counters"]["images_seen"] == b["counters"]["images_seen"]
    for part in ("G", "D", "G_ema"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)
    for opt in ("opt_g", "opt_d"):
        for idx, moments in a[opt]["state"].items():
            for key, value in moments.items():
                assert torch.equal(value, b[opt]["state"][idx][key]), (opt, idx, key)
    assert a["ada"] == b["ada"]


@pytest.fixture(scope="module")
def straight(data, tmp_path_factory) -> dict:
    """Two uninterrupted epochs: what every interrupted-and-resumed run must reproduce."""
    out = tmp_path_factory.mktemp("straight")
    assert main(["train", *_common(data, out), "--name", "straight", "--epochs", "2"]) == 0
    return _state(out / "straight")


@pytest.fixture(scope="module")
def run1(data, tmp_path_factory) -> Path:
    """One uninterrupted epoch (8 steps); tests continue copies of it."""
    out = tmp_path_factory.mktemp("run1")
    assert main(["train", *_common(data, out), "--name", "run1", "--epochs", "1"]) == 0
    return out / "run1"


def _copy(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


def _signal_and_wait(proc: subprocess.Popen, sig: int, prefix: str, second: bool = False) -> tuple[str, str]:
    """Send ``sig`` after the log line ``prefix``; with ``second`` send it again while the
    process waits before its checkpoint.  Returns (stdout, stderr)."""
    _wait_for_line(proc, prefix)
    proc.send_signal(sig)
    if second:
        for line in proc.stderr:  # it finishes the step, then waits (SAVE_DELAY) before the checkpoint
            if line.startswith(f"{signal.Signals(sig).name} received"):
                break
        time.sleep(1.0)
        proc.send_signal(sig)
    return proc.communicate(timeout=300)


# ------------------------------------------------------------------ signals
def test_signals_mid_epoch_checkpoint_resume_bit_identical_and_second_signal_aborts(data, run1, tmp_path):
    """SIGTERM and SIGINT sent mid-epoch to real training processes (all three run at once)."""
    from concurrent.futures import ThreadPoolExecutor

    cases = {"term": (signal.SIGTERM, False), "int": (signal.SIGINT, False), "abort": (signal.SIGTERM, True)}
    procs = {name: _slow_train(tmp_path, 0.4, [*_common(data, tmp_path), "--name", name, "--epochs", "1"],
                               save_delay=120 if second else 0) for name, (sig, second) in cases.items()}
    with ThreadPoolExecutor(len(procs)) as pool:
        futures = {name: pool.submit(_signal_and_wait, procs[name], sig, "[1/1][2/8]", second)
                   for name, (sig, second) in cases.items()}
        outputs = {name: f.result() for name, f in futures.items()}
    for name in ("term", "int"):
        sig, run, stderr = cases[name][0], tmp_path / name, outputs[name][1]
        assert procs[name].returncode == 128 + sig, stderr
        line = _error_line(stderr)
        assert line.startswith(f"gankit train: stopped by {signal.Signals(sig).name}") and \
            f"gankit train --resume {run}" in line and "Traceback" not in stderr, stderr
        state = _state(run)
        assert state["counters"]["epoch"] == 1 and 0 < state["counters"]["iter"] < 8, state["counters"]  # mid-epoch
        assert (run / "report.html").is_file() and "resume with" in (run / "log.txt").read_text()
        assert main(["train", "--resume", str(run)]) == 0
        _same_training_state(_state(run), _state(run1))  # not an image lost or repeated
    stderr = outputs["abort"][1]
    assert procs["abort"].returncode == 143, stderr
    assert "stopped at once by a second SIGTERM" in _error_line(stderr) and "Traceback" not in stderr
    run = tmp_path / "abort"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["ckpt-000000000.pt"]  # nothing after the abort
    assert not (run / ".lock").read_text()  # released


def test_stop_message_says_when_the_minutes_budget_was_nearly_spent(data, tmp_path):
    from gankit.config import TrainConfig
    from gankit.train.loop import Trainer
    from gankit.train.signals import GracefulStop

    cfg = TrainConfig(data=str(data), out=str(tmp_path), model="dcgan", width_g=8, width_d=8, latent=16, batch=8,
                      minutes=10.0, tensorboard=False)
    trainer = Trainer(cfg)
    try:
        trainer._stop = GracefulStop()
        trainer._stop.signum = signal.SIGTERM
        trainer.counters.elapsed, trainer.counters.iter = 590.0, 3
        text = trainer._stopped_message()
        assert text.startswith("stopped by SIGTERM at 0 kimg (epoch 1, iteration 3/8)"), text
        assert "only 10 s of the --minutes 10 budget were left" in text
        trainer.counters.elapsed = 60.0  # far from the end: no such note
        assert "budget" not in trainer._stopped_message()
    finally:
        trainer.lock.release()


# ------------------------------------------------------------ one writer per run
def test_second_writer_is_refused_naming_the_holder_and_a_dead_holder_is_taken_over(data, tmp_path, capsys):
    from gankit.train.lock import RunLock

    proc = _slow_train(tmp_path, 0.3, [*_common(data, tmp_path), "--name", "r", "--epochs", "3"])
    run = tmp_path / "r"
    try:
        _wait_for_line(proc, "[1/3][2/8]")
        capsys.readouterr()
        assert main(["train", "--resume", str(run)]) == 2
        line = _error_line(capsys.readouterr().err)
        assert f"PID {proc.pid}" in line and str(run) in line, line
        assert main(["train", *_common(data, tmp_path), "--name", "r", "--epochs", "1"]) == 2
        assert f"PID {proc.pid}" in _error_line(capsys.readouterr().err)
        assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["ckpt-000000000.pt"]  # nothing touched
    finally:
        proc.kill()  # kill -9: no handler runs, the kernel drops the lock with the process
        proc.wait()
    lock = RunLock(run).acquire()
    assert lock.stale_pid == proc.pid  # taken over from the dead holder
    lock.release()


def test_lock_is_held_by_the_process_and_released_at_its_end(tmp_path):
    from gankit.train.lock import RunLock, RunLocked

    first = RunLock(tmp_path).acquire()
    probe = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        from gankit.train.lock import RunLock, RunLocked
        try:
            RunLock({str(tmp_path)!r}).acquire()
        except RunLocked as err:
            print(err)
    """)], capture_output=True, text=True, env=ENV, timeout=60)
    assert f"PID {os.getpid()}" in probe.stdout
    first.release()
    again = RunLock(tmp_path).acquire()
    with pytest.raises(RunLocked):  # flock is per open file: a second open in this process is refused too
        RunLock(tmp_path).acquire()
    again.release()


# --------------------------------------------------------- resume remembers
def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_resume_keeps_rolled_back_learning_rates_and_health_memory(data, tmp_path, capsys):
    from gankit.config import TrainConfig
    from gankit.train.loop import Trainer

    cfg = TrainConfig.from_preset("", data=str(data), out=str(tmp_path), name="r", model="dcgan", width_g=8, width_d=8,
                                  latent=16, batch=8, epochs=1, log_every=2, tensorboard=False)
    poisoned = {"left": 1}

    def poison(t: Trainer) -> None:
        if t.counters.step >= 4 and poisoned["left"]:
            poisoned["left"] = 0
            with torch.no_grad():
                next(t.state.G.parameters()).fill_(float("nan"))

    run = Trainer(cfg, callbacks=[poison]).run()
    assert _state(run)["config"]["lr_g"] == pytest.approx(1e-4)  # halved by the roll-back
    seen = _state(run)["health"]["seen"]
    assert seen > 0
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 0
    after = [r for r in _records(run) if "loss_d" in r and r["epoch"] == 2]
    assert after and all(r["lr_g"] == pytest.approx(1e-4) and r["lr_d"] == pytest.approx(1e-4) for r in after)
    assert "lr_g: 0.0001" in (run / "config.yaml").read_text()
    assert _state(run)["health"]["seen"] == seen + len(after)  # the checker's memory continued


def test_resume_matches_straight_run_after_kill_leftovers_and_a_stale_lock(run1, straight, tmp_path, capsys):
    run = _copy(run1, tmp_path / "split")
    dead = subprocess.Popen(["true"])
    dead.wait()
    (run / ".lock").write_text(f"{dead.pid}\n")  # as a kill -9 leaves it
    leftovers = [run / "checkpoints" / ".ckpt-000000072.pt.tmp4242", run / "progress.gif.tmp",
                 run / "samples" / "epoch_0002.tmp.png"]
    for path in leftovers:
        path.write_bytes(b"\0" * 1000)
    capsys.readouterr()
    assert main(["train", "--resume", "split", "--out", str(tmp_path), "--epochs", "2"]) == 0  # a name under --out
    out = capsys.readouterr().out
    assert f"from PID {dead.pid}, which is no longer running" in out
    assert not any(p.exists() for p in leftovers) and not list(run.rglob("*.tmp*"))
    state = _state(run)
    _same_training_state(state, straight)

    def memory(health: dict) -> dict:  # all but the wall-clock times of the records
        return {**health, "history": [{k: v for k, v in r.items() if k != "time"} for r in health["history"]]}

    assert state["health"]["seen"] > 0 and memory(state["health"]) == memory(straight["health"])


def test_best_score_and_its_kimg_come_back_on_resume(run1, tmp_path):
    from gankit.train.loop import Trainer

    run = _copy(run1, tmp_path / "r")
    path = ckpt.latest_checkpoint(run / "checkpoints")
    state = torch.load(path, weights_only=True)
    assert not state["best"]  # this run never evaluated
    state["best"] = {"score": 12.5, "kimg": 0.032, "metric": "fid"}  # as a run that evaluated writes it
    ckpt.atomic_save(state, path)
    trainer = Trainer(None, resume=run)  # the checkpoint's own config
    try:
        assert trainer.state.best == state["best"] and trainer.checkpoint_state()["best"] == state["best"]
        assert trainer.cfg.lr_d == state["config"]["lr_d"] and trainer.resumed
    finally:
        trainer.lock.release()


def test_best_score_from_another_extractor_is_not_compared(run1, tmp_path, monkeypatch, capsys):
    """A best score measured by another extractor (another recipe version) is on
    another scale: the resumed run chooses its best state anew instead of
    keeping a score no new evaluation can be compared with."""
    from gankit.metrics import dataset_encoder

    monkeypatch.setitem(dataset_encoder.RECIPE, "steps", 20)  # the same encoder, trained faster
    run = _copy(run1, tmp_path / "r")
    path = ckpt.latest_checkpoint(run / "checkpoints")
    state = torch.load(path, weights_only=True)
    old = {"score": 1e-9, "kimg": 0.032, "metric": "fid", "extractor_id": "dataset-v1-0123456789ab"}
    state["best"] = old  # unbeatable on any scale: only the id check lets a new state in
    ckpt.atomic_save(state, path)
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "2", "--eval-every-kimg", "0.1", "--eval-num", "32",
                 "--eval-metrics", "fid"]) == 0
    assert "dataset-v1-0123456789ab; scores now come from dataset-" in capsys.readouterr().out
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)["best"]
    assert best["kimg"] > old["kimg"] and best["score"] > old["score"]
    assert best["extractor_id"].startswith("dataset-") and best["extractor_id"] != old["extractor_id"]
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    assert evals and {e["extractor_id"] for e in evals} == {best["extractor_id"]}


def test_flags_and_data_on_resume_are_refused_or_applied_and_logged(data, run1, tmp_path, capsys):
    run = _copy(run1, tmp_path / "r")
    config_before = (run / "config.yaml").read_text()
    capsys.readouterr()
    for flag, value in (("--batch", "16"), ("--latent", "8"), ("--loss", "hinge"), ("--seed", "3")):
        assert main(["train", "--resume", str(run), flag, value]) == 2
        line = _error_line(capsys.readouterr().err)
        assert line.startswith(f"gankit train: error: {flag}: cannot change when resuming"), line
    assert _state(run)["data"]["count"] == 64 and len(_state(run)["data"]["manifest_sha256"]) == 16
    other = write_dataset(tmp_path / "other", blobs(64, seed=9), source="test-blobs").path
    assert main(["train", "--resume", str(run), "--data", str(other), "--epochs", "2"]) == 2
    line = _error_line(capsys.readouterr().err)
    assert line.startswith(f"gankit train: error: --data: {other} is not the dataset this run trained on") and \
        "--allow-data-change" in line, line
    assert (run / "config.yaml").read_text() == config_before  # refused: nothing rewritten
    moved = shutil.copytree(data, tmp_path / "moved")
    assert main(["train", "--resume", str(run), "--epochs", "2", "--lr-d", "1e-4", "--data", str(moved)]) == 0
    assert f"dataset moved: {data} -> {moved}" in capsys.readouterr().out
    notes = [json.loads(line) for line in (run / "health.jsonl").read_text().splitlines()]
    changes = [n["message"] for n in notes if n["kind"] == "resume_change"]
    assert any("--lr-d 0.0002 -> 0.0001" in m for m in changes) and any("--epochs 1 -> 2" in m for m in changes)
    assert "changed on resume: --lr-d" in (run / "log.txt").read_text()
    state = _state(run)
    assert state["opt_d"]["param_groups"][0]["lr"] == pytest.approx(1e-4) and state["counters"]["epoch"] == 3
    assert "lr_d: 0.0001" in (run / "config.yaml").read_text()
    assert main(["train", "--resume", str(run), "--data", str(other), "--allow-data-change"]) == 0
    assert "dataset changed (--allow-data-change)" in (run / "log.txt").read_text()
    assert _state(run)["data"]["path"] == str(other)


# ---------------------------------------------------- leftovers and dead ends
def test_failed_starts_leave_nothing(data, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["train", *_common(data, out), "--batch", "128", "--epochs", "1"]) == 2
    line = _error_line(capsys.readouterr().err)
    assert line.startswith("gankit train: error: --batch: 128 is") and "64 images" in line, line
    broken = tmp_path / "broken"
    shutil.copytree(data, broken)
    (broken / "images.npy").write_bytes(b"not numpy")
    assert main(["train", *_common(broken, out), "--epochs", "1"]) == 2
    assert str(broken) in _error_line(capsys.readouterr().err)
    for name in ("../../escape", str(tmp_path / "abs"), ".."):
        assert main(["train", *_common(data, out), "--name", name, "--epochs", "1"]) == 2
        assert _error_line(capsys.readouterr().err).startswith("gankit train: error: --name:")
    assert not out.exists() and not (tmp_path / "abs").exists() and not (tmp_path.parent / "escape").exists()
    photos = tmp_path / "mine" / "photos"  # not a run: --restart must not empty it
    photos.mkdir(parents=True)
    (photos / "a.jpg").write_bytes(b"precious")
    for argv in (["--name", "photos", "--restart"], ["--resume", str(photos)]):
        assert main(["train", *_common(data, tmp_path / "mine"), *argv, "--epochs", "1"]) == 2
        assert "no config.yaml" in _error_line(capsys.readouterr().err)
    assert sorted(p.name for p in photos.iterdir()) == ["a.jpg"]
    from gankit.config import TrainConfig
    from gankit.train.loop import Trainer

    with pytest.raises(UsageError, match="not a gankit run directory"):  # the API alike
        Trainer(TrainConfig(data=str(data), batch=8), resume=photos)
    assert sorted(p.name for p in photos.iterdir()) == ["a.jpg"]


def test_run_without_checkpoint_restarts_in_place_and_latest_finds_named_runs(data, run1, tmp_path, capsys):
    numbered = _copy(run1, tmp_path / "00000-dcgan")
    for path in [numbered, *numbered.rglob("*")]:
        os.utime(path, (1e9, 1e9))  # an old run
    run = _copy(run1, tmp_path / "named")
    shutil.rmtree(run / "checkpoints")  # as a run killed during its first checkpoint leaves it
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / ".ckpt-000000000.pt.tmp4242").write_bytes(b"\0" * 100)
    common = _common(data, tmp_path)
    capsys.readouterr()
    assert main(["train", *common, "--name", "named", "--epochs", "1"]) == 2
    assert "--restart" in _error_line(capsys.readouterr().err)
    assert main(["train", "--resume", "latest", "--out", str(tmp_path)]) == 0  # the named run is the latest
    assert f"restarting {run} from scratch in place" in capsys.readouterr().out
    assert _state(run)["counters"]["images_seen"] == 64 and not list(run.rglob("*.tmp*"))
    assert [r["iter"] for r in _records(run) if "loss_d" in r] == [2, 4, 6, 8]  # one fresh epoch, old logs gone
    assert main(["train", *common, "--name", "named", "--kimg", "0.016", "--restart"]) == 0
    assert [r["iter"] for r in _records(run) if "loss_d" in r] == [2]
    assert _state(numbered)["counters"]["images_seen"] == 64  # the other run untouched


def test_save_removes_temporary_files_of_killed_writers(tmp_path):
    stale = tmp_path / ".ckpt-000000100.pt.tmp31337"
    stale.write_bytes(b"half a checkpoint")
    ckpt.save_checkpoint({"G": {}, "config": {}}, tmp_path, 200, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-000000200.pt"]


class _Payload:
    """Pickles as a call to os.mkdir: what a malicious checkpoint would run on load."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return os.mkdir, (str(self.target),)


def test_malicious_checkpoint_runs_no_code(tmp_path, capsys):
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.pt"
    torch.save({"G": _Payload(marker), "config": {}}, bad)
    assert main(["sample", str(bad), "--out", str(tmp_path / "x.png")]) == 2
    assert main(["train", "--resume", str(bad)]) == 2
    assert "evil.pt" in _error_line(capsys.readouterr().err)
    assert not marker.exists()


# ----------------------------------------------- disk full, read-only, permissions
def _namespace_ok() -> bool:
    """A private mount namespace (user namespaces, or root in CI) in which a tmpfs can be mounted."""
    if not shutil.which("unshare"):
        return False
    import tempfile

    with tempfile.TemporaryDirectory() as where:
        probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k none {where}"],
                               capture_output=True, env=ENV)
    return probe.returncode == 0


NAMESPACE = _namespace_ok()
needs_namespace = pytest.mark.skipif(not NAMESPACE, reason="cannot mount a private tmpfs here (unshare -rm)")


def _in_mount(tmp_path: Path, options: str, command: str) -> subprocess.CompletedProcess:
    """Run ``command`` (sh) with a fresh tmpfs mounted on tmp_path/mnt, visible to it alone."""
    mnt = tmp_path / "mnt"
    mnt.mkdir(exist_ok=True)
    script = f"mount -t tmpfs -o {options} none {mnt} && {command}"
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, env=ENV,
                          timeout=300, cwd=Path(__file__).parent.parent)


def _gankit(*args: str) -> str:
    return " ".join([sys.executable, "-m", "gankit", *[f"'{a}'" for a in args]])


@needs_namespace
def test_disk_full_at_the_first_checkpoint_leaves_nothing(data, tmp_path):
    mnt = tmp_path / "mnt"
    cmd = _gankit("train", *_common(data, mnt / "runs"), "--name", "r", "--epochs", "1")
    done = _in_mount(tmp_path, "size=48k", f"{cmd}; rc=$?; ls -A {mnt}/runs > {tmp_path}/left.txt; exit $rc")
    assert done.returncode == 1, done.stderr
    line = _error_line(done.stderr)
    assert line.startswith(f"gankit train: error: cannot write checkpoint {mnt}/runs/r/checkpoints/ckpt-000000000.pt: "
                           "no space left on the device"), line
    assert "Traceback" not in done.stderr
    assert (tmp_path / "left.txt").read_text().split() == []  # the failed start removed its run folder


@needs_namespace
def test_disk_full_mid_run_keeps_the_last_checkpoint_and_says_how_to_resume(data, tmp_path):
    mnt = tmp_path / "mnt"
    run = mnt / "runs" / "r"
    train = " ".join([sys.executable, str(tmp_path / "slow_train.py"), "0.3", "train",
                      *[f"'{a}'" for a in _common(data, mnt / "runs")], "--name", "r", "--epochs", "2"])
    (tmp_path / "slow_train.py").write_text(SLOW)
    fill = (f"while [ ! -e {run}/checkpoints/ckpt-000000000.pt ]; do sleep 0.1; done; sleep 1; "
            f"cat /dev/zero > {mnt}/filler 2>/dev/null")
    copy = f"cp -a {run} {tmp_path}/after"
    done = _in_mount(tmp_path, "size=2m", f"{train} & pid=$!; {fill}; wait $pid; rc=$?; {copy}; exit $rc")
    assert done.returncode == 1, done.stderr
    line = _error_line(done.stderr)
    assert "no space left on the device" in line and f"resume with `gankit train --resume {run}`" in line, line
    assert "Traceback" not in done.stderr
    after = tmp_path / "after"
    assert not list(after.rglob("*.tmp*")) and not list((after / "checkpoints").glob(".*"))
    for path in ckpt.list_checkpoints(after / "checkpoints"):  # every checkpoint left loads
        assert ckpt.load_checkpoint(path)["counters"]["images_seen"] in (0, 64)


@needs_namespace
def test_read_only_out_is_one_line_for_train_and_data(data, tmp_path):
    mnt = tmp_path / "mnt"
    cmd = _gankit("train", *_common(data, mnt / "runs"), "--epochs", "1")
    done = _in_mount(tmp_path, "size=1m", f"mount -o remount,ro {mnt} && {cmd}")
    assert done.returncode == 1, done.stderr
    line = _error_line(done.stderr)
    assert line == (f"gankit train: error: --out: cannot create a run directory in {mnt}/runs: the file system is "
                    "read-only; use a writable folder"), line
    src = tmp_path / "src"
    src.mkdir()
    from PIL import Image

    Image.new("RGB", (20, 20), (200, 30, 30)).save(src / "a.png")
    cmd = _gankit("data", "folder", str(src), "--size", "16", "--out", str(mnt / "d"), "--quiet")
    done = _in_mount(tmp_path, "size=1m", f"mount -o remount,ro {mnt} && {cmd}")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert _error_line(done.stderr) == (f"gankit data folder: error: cannot write {mnt}/d: "
                                        "the file system is read-only; use a writable folder")


def test_unwritable_out_and_run_dir_are_one_line(data, run1, tmp_path):
    _copy(run1, tmp_path / "r")
    locked = tmp_path / "locked"
    locked.mkdir()
    (tmp_path / "r").chmod(0o555)
    locked.chmod(0o555)
    # root ignores permission bits: drop the capability that lets it, as an ordinary user has none
    prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"] if os.geteuid() == 0 else []
    try:
        cases = ((["--data", str(data), "--out", str(locked / "runs"), *TINY],
                  f"--out: cannot create a run directory in {locked}/runs"),
                 (["--resume", str(tmp_path / "r"), "--epochs", "2"],
                  f"--resume: cannot write to the run directory {tmp_path}/r"))
        for argv, where in cases:
            done = subprocess.run([*prefix, sys.executable, "-m", "gankit", "train", *argv], capture_output=True,
                                  text=True, env=ENV, timeout=300)
            assert done.returncode == 1, done.stderr
            line = _error_line(done.stderr)
            assert line.startswith(f"gankit train: error: {where}: permission denied"), line
    finally:
        (tmp_path / "r").chmod(0o755)
        locked.chmod(0o755)


# ------------------------------------------------------------ data commands
def test_data_commands_refuse_to_overwrite_a_dataset(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    import numpy as np
    from PIL import Image

    for i in range(6):
        Image.fromarray(np.full((20, 20, 3), 30 * i, np.uint8)).save(src / f"{i}.png")
    existing = write_dataset(tmp_path / "pong", blobs(30, seed=4), source="atari")
    before = (existing.path / "manifest.json").read_bytes()

    def gankit(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "gankit", "data", *args], capture_output=True, text=True,
                              env=ENV, timeout=300)

    for argv in (["atari", "--frames", "10", "--out", str(existing.path)],
                 ["folder", str(src), "--size", "16", "--out", str(existing.path)]):
        done = gankit(*argv)
        assert done.returncode == 2, done.stderr
        line = _error_line(done.stderr)
        assert line.startswith(f"gankit data {argv[0]}: error: --out: {existing.path} already holds a dataset "
                               "(30 images 16x16x3 from atari); pass --overwrite"), line
    assert (existing.path / "manifest.json").read_bytes() == before and len(load_dataset(existing.path)) == 30
    grow = gankit("folder", str(src), "--size", "16", "--out", str(existing.path), "--append", "--quiet")
    assert grow.returncode == 0, grow.stderr
    grown = load_dataset(existing.path)
    assert len(grown) == 36 and [p["count"] for p in grown.manifest["parts"]] == [30, 6]
    assert (grown.images[:30] == blobs(30, seed=4)).all()
    replace = gankit("folder", str(src), "--size", "16", "--out", str(existing.path), "--overwrite", "--quiet")
    assert replace.returncode == 0, replace.stderr
    assert len(load_dataset(existing.path)) == 6 and not list(existing.path.glob(".*"))
