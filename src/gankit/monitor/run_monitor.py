"""`RunMonitor`: the one object the training loop talks to about what it sees.

The loop hands it numbers (`log`), images (`snapshot`, `check_diversity`)
and things it did (`event`); the monitor writes them to the run directory
(metrics.jsonl, health.jsonl, samples/, plots/, tb/, progress.gif,
report.html), runs the health checks and says in plain words on the console
when something goes wrong.  Everything it draws is rebuilt from those files,
so nothing is lost if the process dies, and `gankit report` can redo it.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gankit.errors import UsageError
from gankit.monitor.events import PROBLEM_KINDS, HealthEvent, dump_line, load_events, load_records
from gankit.monitor.health import HealthChecker, HealthThresholds, class_diversities, contrast, diversity, variety_ratio
from gankit.monitor.images import FrameStore, side_by_side
from gankit.monitor.plots import draw_all
from gankit.monitor.report import build_outputs
from gankit.runpaths import RunDir

REDRAW_EVERY_S = 10.0  # epoch_end redraws plots and GIF at most this often ...
REDRAW_SHARE = 0.05  # ... and spends at most this share of the run's time on it (1.4k-image epochs last ~15 s)

if TYPE_CHECKING:  # pragma: no cover
    from torch.utils.tensorboard import SummaryWriter

    from gankit.config import TrainConfig


def say(line: str, log_file: Path | None = None) -> None:
    """A warning on its own console line (above any progress bar, never glued
    to it) and appended to the run's log.txt."""
    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)
    sys.stderr.flush()
    if log_file is not None:
        with open(log_file, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value


class RunMonitor:
    """Watches one run; see the module docstring.  Not thread-safe: call it from the training loop only."""

    def __init__(self, run_dir: Path, config: TrainConfig, *, resume: bool = False,
                 real_preview: torch.Tensor | None = None, thresholds: HealthThresholds | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.files = RunDir(self.run_dir)
        self.config = config
        self.real_preview = real_preview
        for sub in (self.files.samples, self.files.plots, self.files.tensorboard):
            sub.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.files.metrics
        self.health_path = self.files.health
        if not resume and self.metrics_path.exists() and self.metrics_path.stat().st_size > 0:
            raise UsageError(f"--name: run directory {self.run_dir} already holds a run (metrics.jsonl); "
                             "resume it or choose another name")
        self._metrics = self.metrics_path.open("a", encoding="utf-8")
        self._health = self.health_path.open("a", encoding="utf-8")
        self.events: list[HealthEvent] = load_events(self.health_path) if resume else []
        self.checker = HealthChecker(config.loss, config.lr_g, config.lr_d, thresholds)
        self.frames = FrameStore(self.files.frames)
        self._resume = resume
        self._writer: SummaryWriter | None = None
        self._last_step = -1
        self._next_redraw: float | None = None  # time.monotonic() before which epoch_end does not redraw
        self._verdict: str | None = None
        self._stop: tuple[str, float] | None = None

    # ------------------------------------------------------------ tensorboard
    def _tb(self, step: int) -> SummaryWriter | None:
        if not self.config.tensorboard:
            return None
        went_back = step < self._last_step
        if self._writer is not None and went_back:
            # A roll-back: reopen so TensorBoard hides the points of the abandoned timeline.
            self._writer.close()
            self._writer = None
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            purge = step if (self._resume or went_back) else None
            self._writer = SummaryWriter(log_dir=str(self.files.tensorboard), purge_step=purge)
        self._last_step = max(self._last_step, step) if not went_back else step
        return self._writer

    def _scalars(self, record: dict[str, Any], step: int) -> None:
        writer = self._tb(step)
        if writer is None:
            return
        for key, value in record.items():
            if key == "step" or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            writer.add_scalar(key, value, step)

    # ---------------------------------------------------------------- records
    def _write_metrics(self, record: dict[str, Any]) -> None:
        self._metrics.write(dump_line(record) + "\n")
        self._metrics.flush()

    def log(self, record: dict[str, float | int]) -> list[HealthEvent]:
        """Store one metrics record (metrics.jsonl + TensorBoard), run the checks, return new events."""
        rec = {str(k): _plain(v) for k, v in record.items()}
        step = int(rec.get("step", 0))
        self._write_metrics(rec)
        self._scalars(rec, step)
        events: list[HealthEvent] = []
        if self.config.health and rec.get("kind", "train") == "train":
            events = self.checker.observe(rec)
        elif self.config.health and rec.get("kind") == "eval" and "memorization" in rec:
            events = [ev for ev in [self.checker.memorization_event(rec)] if ev is not None]
        for ev in events:
            self._record(ev)
        return events

    def check_diversity(self, fake: torch.Tensor, real: torch.Tensor | None, step: int, kimg: float,
                        fake_labels: torch.Tensor | None = None, real_labels: torch.Tensor | None = None
                        ) -> list[HealthEvent]:
        """Compare the spread of a fixed generated batch with a real one; report mode collapse.
        With the class of every image (both sides), each class is also judged on its own."""
        real = real if real is not None else self.real_preview
        if real is None:
            raise ValueError("check_diversity needs a real batch (or real_preview given to RunMonitor)")
        if (fake_labels is None) != (real_labels is None):
            raise ValueError("check_diversity: give the labels of both batches or of neither")
        fake_div, real_div = diversity(fake), diversity(real)
        fake_con, real_con = contrast(fake), contrast(real)
        rec = {"kind": "diversity", "step": int(step), "kimg": float(kimg),
               "diversity_fake": fake_div, "diversity_real": real_div,
               "contrast_fake": fake_con, "contrast_real": real_con,
               "diversity_ratio": fake_div / real_div if real_div > 0 else 1.0,
               "variety_ratio": variety_ratio(fake_div, fake_con, real_div, real_con)}
        per_class = None
        if fake_labels is not None and real_labels is not None:
            t = self.checker.t
            per_class = class_diversities(fake, real, fake_labels, real_labels, self._class_names(), t.class_min_images)
            rec["classes_judged"] = len(per_class)
            rec["classes_collapsed"] = sum(c.collapsed(t.collapse_ratio) for c in per_class)
            if per_class:
                rec["min_class_diversity_ratio"] = min(c.ratio for c in per_class)
        self._write_metrics(rec)
        self._scalars({k: v for k, v in rec.items() if k.endswith(("_ratio", "_fake", "_real"))}, int(step))
        if not self.config.health:
            return []
        event = self.checker.diversity_event(fake_div, real_div, int(step), float(kimg), fake_con, real_con,
                                             per_class=per_class)
        if event is None:
            return []
        self._record(event)
        return [event]

    def _class_names(self) -> list[str] | None:
        """The class names of the run's dataset (from its manifest), for messages; None if unreadable."""
        if not hasattr(self, "_names"):
            import json

            try:
                manifest = json.loads((Path(str(self.config.data)) / "manifest.json").read_text(encoding="utf-8"))
                self._names = [str(c) for c in manifest.get("classes") or []] or None
            except (OSError, ValueError, TypeError, AttributeError):
                self._names = None
        return self._names

    def event(self, kind: str, step: int, kimg: float, message: str, advice: str = "",
              remedy: dict | None = None, applied: bool = False) -> HealthEvent:
        """Record something the loop did or saw (rollback, remedy applied, ...)."""
        ev = HealthEvent(kind, int(step), float(kimg), message, advice,
                         {str(k): float(v) for k, v in (remedy or {}).items()}, applied)
        self._record(ev)
        return ev

    def _record(self, ev: HealthEvent) -> None:
        self.events.append(ev)
        self._health.write(dump_line(ev.to_dict()) + "\n")
        self._health.flush()
        say(ev.console_line(), self.files.log)
        writer = self._tb(ev.step)
        if writer is not None:
            text = f"**{ev.title}** (step {ev.step}, {ev.kimg:.1f} kimg): {ev.message}"
            if ev.advice:
                text += f"  \n*Advice:* {ev.advice}"
            writer.add_text(f"health/{ev.kind}", text, ev.step)

    # ---------------------------------------------------------------- images
    def snapshot(self, epoch: int, kimg: float, real: torch.Tensor, fake: torch.Tensor, step: int,
                 cols: int | None = None) -> Path:
        """Write samples/epoch_NNNN.png (real | generated), add a GIF frame and a TensorBoard image.
        ``cols``: grids that many columns wide (a conditional run's: one row per class)."""
        caption = f"epoch {epoch} | {kimg:.1f} kimg | step {step}" + (" | a row per class" if cols else "")
        img = side_by_side(real, fake, caption, cols)
        path = self.files.epoch_samples(epoch)
        tmp = path.with_name(path.stem + ".tmp.png")
        img.save(tmp)
        tmp.replace(path)
        self.frames.add(fake, int(epoch), float(kimg), int(step), cols)
        writer = self._tb(int(step))
        if writer is not None:
            writer.add_image("samples/real_vs_generated", np.asarray(img), int(step), dataformats="HWC")
            writer.flush()
        return path

    def snapshot_best(self, kimg: float, real: torch.Tensor, fake: torch.Tensor, step: int,
                      cols: int | None = None) -> Path:
        """Write samples/best.png: the fixed latents drawn by the state behind checkpoints/best.pt."""
        img = side_by_side(real, fake, f"best so far | {kimg:.1f} kimg | step {step}", cols)
        path = self.files.best_samples
        tmp = path.with_name("best.tmp.png")
        img.save(tmp)
        tmp.replace(path)
        return path

    # ------------------------------------------------------------ redrawing
    def epoch_end(self, epoch: int) -> None:
        """Redraw the plots from metrics.jsonl and rewrite progress.gif.

        A redraw takes 1-3 s on a CPU, so it waits at least REDRAW_EVERY_S
        after the last one, and longer when the last one was slow: at most
        REDRAW_SHARE of the run goes to it, however short the epochs (small
        sets).  close() always draws."""
        if self._writer is not None:
            self._writer.flush()
        start = time.monotonic()
        if self._next_redraw is not None and start < self._next_redraw:
            return
        draw_all(load_records(self.metrics_path), self.files.plots)
        self.frames.write_gif(self.files.gif)
        end = time.monotonic()
        self._next_redraw = end + max(REDRAW_EVERY_S, (end - start) * (1 / REDRAW_SHARE - 1))

    def stopped_by(self, limit: str, value: float) -> None:
        """The budget limit that ended training ("epochs", "kimg" or "minutes"), for summary.json and the verdict."""
        self._stop = (limit, float(value))

    def close(self, status: str = "finished") -> str:
        """Final plots, GIF and report.html; returns the one-paragraph verdict (call again: same verdict)."""
        if self._verdict is not None:
            return self._verdict
        for fh in (self._metrics, self._health):
            fh.flush()
        self._verdict = build_outputs(self.run_dir, status, self._stop if status == "finished" else None)
        self._metrics.close()
        self._health.close()
        if self._writer is not None:
            self._writer.close()
        return self._verdict

    # convenience for `with RunMonitor(...) as mon:` in notebooks and tests
    def __enter__(self) -> RunMonitor:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close("finished" if exc_type is None else f"failed ({exc_type.__name__})")

    @property
    def problems(self) -> list[HealthEvent]:
        """The events that describe a training problem (not the loop's own actions)."""
        return [e for e in self.events if e.kind in PROBLEM_KINDS]
