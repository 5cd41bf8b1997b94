"""A run directory's life around the training parts: `RunSession`, the base of `Trainer`.

Claiming and locking the folder, resuming from its checkpoint (and refusing
or logging what a resume changes), the first outputs, and the end: the
report, the message after a signal, the release of the lock, and the removal
of a run that failed before its first checkpoint.  The loop itself
(`gankit.train.loop`) stays about training.
"""
from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from gankit import __version__
from gankit.config import TrainConfig
from gankit.errors import EnvironmentProblem, UsageError
from gankit.fsproblems import problem
from gankit.runpaths import RunDir
from gankit.train import checkpoint as ckpt
from gankit.train import distributed as dist_util
from gankit.train.lock import RunLock
from gankit.train.parts import TrainingParts
from gankit.train.rundir import claim_run_dir, clear_run_dir, holds_run, remove_leftovers, write_config
from gankit.train.signals import GracefulStop, signal_name

if TYPE_CHECKING:  # pragma: no cover
    from gankit.metrics.training import TrainingEvaluator
    from gankit.monitor.run_monitor import RunMonitor


class RunSession(TrainingParts):
    """The training parts with a run directory: claimed (or resumed) and locked
    on construction, its outputs opened by `_start_outputs` and closed by `_close`.

    ``resume`` is a run directory (its newest checkpoint) or a checkpoint file;
    ``restart`` starts the run over in place; ``allow_data_change`` lets a resume
    continue on another dataset.  A start that fails leaves no run directory."""

    def __init__(self, config: TrainConfig, resume: str | Path | None, restart: bool, allow_data_change: bool) -> None:
        super().__init__(config)
        self.resumed = False
        self.lock = RunLock(".", "--resume")  # replaced by the run directory's lock below
        self.notes: list[tuple[str, dict[str, float]]] = []  # changes made on resume, logged once run() starts
        self._health_state: dict[str, Any] | None = None  # the health monitor's memory, for run()
        self._created = False  # this process made the run directory (removed again if the start fails)
        self._fresh = True  # no checkpoint written or loaded yet
        self.files = RunDir(Path())  # the run directory's files: set by _open_run_dir
        self.monitor: RunMonitor | None = None  # rank 0, from _start_outputs on
        self.evaluator: TrainingEvaluator | None = None  # rank 0 with --eval-every-kimg, from _start_outputs on
        self.log_file: IO[str] | None = None  # log.txt (rank 0), from _start_outputs on
        self._stop, self._stopping = GracefulStop(), False  # SIGTERM/SIGINT seen (by any rank)
        try:
            self._open_run_dir(resume, restart, allow_data_change)
        except BaseException:
            self._undo_start()
            raise

    @property
    def run_dir(self) -> Path:
        return self.files.path

    @property
    def ckpt_dir(self) -> Path:
        return self.files.checkpoints

    def _say(self, text: str, echo: bool = True) -> None:
        """A line for the console (``echo``) and log.txt, from rank 0."""
        if not self.rank0:
            return
        if echo:
            print(text, flush=True)
        if self.log_file is not None and not self.log_file.closed:
            self.log_file.write(text + "\n")
            if not echo:
                self.log_file.flush()

    def _open_run_dir(self, resume: str | Path | None, restart: bool, allow_data_change: bool) -> None:
        """Claim and lock the run directory (rank 0), then load the checkpoint to resume from."""
        from gankit.train.resume import checkpoint_to_resume, run_dir_of

        run, found = None, None
        if self.rank0:
            if resume is not None:
                run = run_dir_of(Path(resume))
                _only_runs(run, "--resume")
                self._lock(run, "--resume")
                found = None if restart else checkpoint_to_resume(Path(resume))
                if found is None:
                    why = "--restart" if restart else "it has no checkpoint (it stopped before writing its first one)"
                    removed = clear_run_dir(run)
                    self._say(f"restarting {run} from scratch in place: {why}" +
                              (f"; removed {', '.join(removed)}" if removed else ""))
            else:
                run, self._created = claim_run_dir(self.cfg)
                self.files = RunDir(run)
                if restart and holds_run(run):
                    _only_runs(run, "--name")
                self._lock(run, "--name")
                if holds_run(run):
                    if not restart:
                        raise UsageError(f"--name: run directory {run} already holds a run; continue it with "
                                         f"--resume {run}, start it over with --restart, or pick another name")
                    removed = clear_run_dir(run)
                    self._say(f"restarting {run} from scratch in place (--restart); removed {', '.join(removed)}")
        self.files = RunDir(dist_util.broadcast_object(str(run) if run is not None else None, self.dist))
        found = dist_util.broadcast_object(str(found) if found is not None else None, self.dist)
        if found is not None:
            state = ckpt.load_checkpoint(Path(found), map_location=self.device)
            self._resume_from(state, allow_data_change)
        if self.rank0:
            self.cfg = self.cfg.replace(out=str(self.run_dir.parent), name=self.run_dir.name)
            self._write_config()

    def _lock(self, run: Path, flag: str) -> None:
        """Hold run/.lock for this process's life; clear what killed writers left behind."""
        if not run.is_dir():
            raise UsageError(f"{flag}: no run directory {run}")
        self.lock = RunLock(run, flag)
        try:
            with tempfile.TemporaryFile(dir=run):  # fail now, not at the first checkpoint
                pass
            self.lock.acquire()
        except OSError as err:
            raise problem(err, run, f"{flag}: cannot write to the run directory") from None
        if self.lock.stale_pid:
            self._say(f"took over the lock of {run} from PID {self.lock.stale_pid}, which is no longer running")
        for path in remove_leftovers(run):
            self._say(f"removed {path} (left by an interrupted write)")

    def _resume_from(self, state: dict[str, Any], allow_data_change: bool) -> None:
        """Load the checkpoint; the config given may change only what `resume.APPLIED` allows."""
        from gankit.train.resume import config_changes, data_change

        wanted = self.cfg
        saved = TrainConfig.from_dict(state["config"])
        changes = config_changes(saved, wanted)
        data = state.get("data") or None
        moved = data_change(data, (data or {}).get("path", saved.data), self.dataset, allow_data_change)
        self.state.load_state_dict(state)  # the checkpoint's learning rates, after roll-backs and remedies ...
        self.state.set_lr(wanted.lr_g, wanted.lr_d)  # ... unless the resume asked for others
        self._health_state = state.get("health") or None
        self.resumed = True
        self._fresh = False
        for name, old, new in changes:
            remedy = {name: float(new)} if name in ("lr_g", "lr_d") else {}
            self.notes.append((f"changed on resume: --{name.replace('_', '-')} {old!r} -> {new!r}", remedy))
        if moved:
            self.notes.append((moved, {}))
        if (data or {}).get("split") != self.split_record().get("split"):  # gankit data split since the checkpoint
            self.notes.append((f"the held-out split of {self.dataset.path} changed since this checkpoint; training "
                               f"now reads {self.data_note()}", {}))

    def _write_config(self) -> None:
        try:
            write_config(self.run_dir, self.config_now(), self.shape)
        except OSError as err:
            raise problem(err, self.files.config, "cannot write") from None

    def _undo_start(self) -> None:
        """A start that failed before its first checkpoint leaves nothing behind."""
        if self._created and self._fresh and self.rank0:  # (_created: the run directory is known)
            shutil.rmtree(self.run_dir, ignore_errors=True)
        self.lock.release()

    def stop_requested(self) -> bool:
        """True once SIGTERM/SIGINT reached any rank (all ranks stop at the same step)."""
        if not self._stopping:
            self._stopping = dist_util.any_rank(self._stop.requested, self.dist)
        return self._stopping

    def _start_outputs(self) -> None:
        from gankit.monitor import RunMonitor

        cfg = self.cfg
        if self.rank0:
            self.monitor = RunMonitor(self.run_dir, cfg, resume=self.resumed)
            if self._health_state:
                self.monitor.checker.load_state_dict(self._health_state)
            self.log_file = open(self.files.log, "a")
        self.evaluator = self._make_evaluator()
        if self.evaluator is not None and self.resumed:  # the next slot after where the run got to
            kimg = self.counters.kimg
            self.evaluator.next_kimg = (math.floor(kimg / self.evaluator.every) + 1) * self.evaluator.every
        self._say(f"gankit {__version__}: training {cfg.model} ({cfg.loss}) on {cfg.data} "
                  f"[{self.data_note()}, {self.shape[1]}x{self.shape[2]}x{self.shape[0]}] "
                  f"on {self.device} ({cfg.precision}), {self.dist.world} process(es); run dir {self.run_dir}")
        for text, remedy in self.notes:
            self._say("NOTE: " + text)
            if self.monitor is not None:
                self.monitor.event("resume_change", self.counters.step, self.counters.kimg, text,
                                   remedy=remedy, applied=True)
        self.notes = []

    def _make_evaluator(self) -> TrainingEvaluator | None:
        if not self.cfg.eval_every_kimg or not self.rank0:
            return None
        from gankit.metrics.training import TrainingEvaluator

        return TrainingEvaluator(self.cfg, self.dataset, self.device, self.run_dir)

    def _say_where_things_are(self) -> None:
        samples = self.files.samples
        if self.files.best.is_file() and self.state.best:
            b = self.state.best
            self._say(f"best checkpoint: {self.files.best} ({b['metric']} {b['score']:.3f} at {b['kimg']:.1f} kimg); "
                      "`gankit sample` uses it by default")
            self._say(f"samples: {samples} (best state: {self.files.best_samples})")
        else:
            self._say(f"samples: {samples}")
        self._say(f"run directory: {self.run_dir}")

    def _close(self, status: str) -> None:
        """Report and release; after a failure, secondary errors (a full disk again) stay quiet."""
        _close_progress_bars()
        try:
            if self.monitor is not None and status != "aborted":  # a second signal means: no more writing
                try:
                    self._say(self.monitor.close(status))
                except OSError:
                    if status != "failed":
                        raise
            if self.log_file is not None:
                try:
                    self.log_file.close()
                except OSError:
                    pass
            if status == "failed" and self.rank0:  # a write cut short (full disk) leaves no half-written file
                remove_leftovers(self.run_dir)
        finally:
            self._undo_start()  # a new run that never wrote a checkpoint leaves nothing; drop the lock
            dist_util.shutdown(self.dist)

    def _with_hint(self, err: EnvironmentProblem) -> EnvironmentProblem:
        if self._fresh:
            return err
        return EnvironmentProblem(f"{err}; the last checkpoint is intact: resume with "
                                  f"`gankit train --resume {self.run_dir}`")

    def _stopped_message(self) -> str:
        c, cfg = self.counters, self.cfg
        name = signal_name(self._stop.signum) if self._stop.signum else "a signal"
        where = f"epoch {c.epoch}, iteration {c.iter}/{self.batches.iters}" if c.iter else f"start of epoch {c.epoch}"
        text = (f"stopped by {name} at {c.images_seen / 1000:g} kimg ({where}); checkpoint "
                f"{ckpt.latest_checkpoint(self.ckpt_dir)} written; resume with: gankit train --resume {self.run_dir}")
        if cfg.minutes:
            left = cfg.minutes * 60 - c.elapsed
            if left < max(60.0, 0.1 * cfg.minutes * 60):
                text += (f" (only {max(left, 0):.0f} s of the --minutes {cfg.minutes:g} budget were left; "
                         "give --minutes to train longer)")
        return text


def _close_progress_bars() -> None:
    """An exception leaves the epoch's bar drawn mid-line; clear it so the error starts a line."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", [])):
        bar.close()


def _only_runs(run: Path, flag: str) -> None:
    """Resume or restart only gankit runs: a restart empties the folder, and a typo must not cost files."""
    if run.is_dir() and not RunDir(run).config.is_file():
        raise UsageError(f"{flag}: {run} is not a gankit run directory (no config.yaml); nothing there was touched")
