"""The files of a run directory, each named once.

Training writes them, and `sample`, `eval`, `report`, `runs` and the monitor
read them: a name spelt in one place cannot drift between writer and reader.
A path typed by the user may be a run directory or a checkpoint file inside
``RUN/checkpoints``; `RunDir.of` turns either into the run, and
`RunDir.pick_checkpoint` chooses the file (best, last, a name, a path).

Names only and the standard library (no torch), so it sits with config and
errors at the bottom of the layers, where every command can use it.
"""
from __future__ import annotations

import re
from pathlib import Path

from gankit.errors import UsageError

CHECKPOINT_FILE = re.compile(r"^ckpt-(\d{9})\.pt$")  # ckpt-<images seen, 9 digits>.pt: names sort by progress


def checkpoint_name(images_seen: int) -> str:
    return f"ckpt-{images_seen:09d}.pt"


def list_checkpoints(folder: str | Path) -> list[Path]:
    """The periodic checkpoints in ``folder``, oldest first (best.pt is not among them)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if CHECKPOINT_FILE.match(p.name))


def latest_checkpoint(folder: str | Path) -> Path | None:
    found = list_checkpoints(folder)
    return found[-1] if found else None


class RunDir:
    """``runs/00007-breakout`` and the names of what training writes into it."""

    CONFIG = "config.yaml"  # the resolved config the checkpoints train with
    LOG = "log.txt"  # the console lines
    METRICS = "metrics.jsonl"  # one record per log line and per evaluation
    HEALTH = "health.jsonl"  # the health monitor's events
    SUMMARY = "summary.json"  # the verdict, written at the end (and by `gankit report`)
    REPORT = "report.html"
    GIF = "progress.gif"  # the fixed latents' samples, one frame per epoch
    EVAL = "eval.json"  # `gankit eval RUN`'s full record
    CHECKPOINTS = "checkpoints"
    BEST = "best.pt"  # in checkpoints/: the state with the best evaluation score
    SAMPLES = "samples"  # epoch_NNNN.png grids, best.png, frames/
    BEST_SAMPLES = "best.png"  # in samples/: the grid drawn by best.pt
    FRAMES = "frames"  # in samples/: the GIF's frames
    PLOTS = "plots"
    TENSORBOARD = "tb"
    LOCK = ".lock"  # held by the one process writing the run

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def of(cls, path: str | Path) -> RunDir:
        """The run of a run directory or of a checkpoint file inside ``RUN/checkpoints``."""
        path = Path(path)
        return cls(path.parent.parent if path.is_file() else path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    # -------------------------------------------------------------- names
    @property
    def config(self) -> Path:
        return self.path / self.CONFIG

    @property
    def log(self) -> Path:
        return self.path / self.LOG

    @property
    def metrics(self) -> Path:
        return self.path / self.METRICS

    @property
    def health(self) -> Path:
        return self.path / self.HEALTH

    @property
    def summary(self) -> Path:
        return self.path / self.SUMMARY

    @property
    def report(self) -> Path:
        return self.path / self.REPORT

    @property
    def gif(self) -> Path:
        return self.path / self.GIF

    @property
    def eval_record(self) -> Path:
        return self.path / self.EVAL

    @property
    def checkpoints(self) -> Path:
        return self.path / self.CHECKPOINTS

    @property
    def best(self) -> Path:
        return self.checkpoints / self.BEST

    @property
    def samples(self) -> Path:
        return self.path / self.SAMPLES

    @property
    def best_samples(self) -> Path:
        return self.samples / self.BEST_SAMPLES

    @property
    def frames(self) -> Path:
        return self.samples / self.FRAMES

    @property
    def plots(self) -> Path:
        return self.path / self.PLOTS

    @property
    def tensorboard(self) -> Path:
        return self.path / self.TENSORBOARD

    @property
    def lock(self) -> Path:
        return self.path / self.LOCK

    def epoch_samples(self, epoch: int) -> Path:
        return self.samples / f"epoch_{int(epoch):04d}.png"

    # ------------------------------------------------------- what is there
    def is_run(self) -> bool:
        return self.path.is_dir() and (self.config.is_file() or self.checkpoints.is_dir())

    def latest_checkpoint(self) -> Path | None:
        return latest_checkpoint(self.checkpoints)

    def pick_checkpoint(self, which: str | Path | None = None) -> Path:
        """``which``: None (best.pt when the run has one, else the newest), ``best``,
        ``last``, a file name inside checkpoints/ or a path; UsageError when absent."""
        if which in (None, "best"):
            if self.best.is_file():
                return self.best
            if which == "best":
                raise UsageError(f"--checkpoint: {self.path} has no {self.BEST} (it is written when training "
                                 "evaluates, --eval-every-kimg K)", hint="use --checkpoint last for the newest state")
        elif which != "last":
            return self._named_checkpoint(str(which))
        found = self.latest_checkpoint()
        if found is None:
            raise UsageError(f"RUN: {self.path} has no checkpoint yet (nothing in {self.checkpoints})",
                             hint="a run writes its first checkpoint when it starts; is it still starting?")
        return found

    def _named_checkpoint(self, which: str) -> Path:
        path = Path(which)
        if not path.is_file():
            path = self.checkpoints / which
        if path.is_file():
            return path
        there = sorted(p.name for p in self.checkpoints.glob("*.pt"))
        why = ""
        if Path(which).name == self.BEST:
            why = f" ({self.BEST} is written only by runs trained with --eval-every-kimg)"
        raise UsageError(f"--checkpoint: no such checkpoint {which} in {self.checkpoints}{why}",
                         hint=f"there: {', '.join(there)}; --checkpoint last for the newest" if there else
                         "this run has no checkpoint yet")
