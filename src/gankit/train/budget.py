"""When a run stops, and how far along it is.

The budget is the first reached of ``--epochs``, ``--kimg`` and
``--minutes``; `Budget` answers "is it done", "what fraction is done" (for
annealed schedules) and "what to print" ('kimg 42.1/78.0, 3m10s left').
Time is training time: the seconds of earlier sessions of a resumed run
count, the pauses between them do not, nor does the one-off setup of the
in-training evaluation (training the dataset extractor once per dataset, up
to several minutes on varied sets: a run on a fresh dataset must get the
same training time as the next one on it, whose extractor is cached).
"""
from __future__ import annotations

import math
import sys
import time
from typing import Any

from gankit.config import DEFAULT_EPOCHS, TrainConfig
from gankit.train import distributed as dist_util
from gankit.train.state import Counters


class Budget:
    """The budget of ``cfg`` for epochs of ``iters`` iterations of ``images_per_iter`` images."""

    def __init__(self, cfg: TrainConfig, iters: int, images_per_iter: int, dist: dist_util.DistInfo) -> None:
        self.cfg, self.iters, self.images_per_iter, self.dist = cfg, iters, images_per_iter, dist
        self._t0 = time.time()  # start of this session's clock (restarted by `restart_clock`)

    @property
    def total_epochs(self) -> int:
        cfg = self.cfg
        if cfg.epochs:
            return cfg.epochs
        return 0 if (cfg.kimg or cfg.minutes) else DEFAULT_EPOCHS

    def restart_clock(self) -> None:
        self._t0 = time.time()

    def exclude(self, seconds: float) -> None:
        """Leave ``seconds`` just spent (the evaluation's one-off setup) out of training time."""
        self._t0 += seconds

    def elapsed(self, c: Counters) -> float:
        """Training seconds: earlier sessions' (kept in the counters) plus this one's."""
        return c.elapsed + (time.time() - self._t0)

    def limit_reached(self, c: Counters) -> tuple[str, float] | None:
        """The limit that ends the run now, as (flag name, value), or None."""
        cfg = self.cfg
        if self.total_epochs and c.epoch > self.total_epochs:
            return "epochs", self.total_epochs
        if cfg.kimg and c.images_seen >= cfg.kimg * 1000:
            return "kimg", cfg.kimg
        if cfg.minutes:
            # Every rank must stop at the same iteration, by the clock showing the least training
            # time: rank 0's, which leaves out the evaluation's setup that the other ranks waited through.
            if dist_util.min_over_ranks(self.elapsed(c), self.dist) >= cfg.minutes * 60:
                return "minutes", cfg.minutes
        return None

    def progress(self, c: Counters) -> float:
        """Fraction of the budget done, for annealed schedules (instance noise)."""
        cfg = self.cfg
        fractions = []
        if cfg.kimg:
            fractions.append(c.images_seen / (cfg.kimg * 1000))
        if self.total_epochs:
            fractions.append(((c.epoch - 1) * self.iters + c.iter) / (self.total_epochs * self.iters))
        if cfg.minutes:
            fractions.append(self.elapsed(c) / (cfg.minutes * 60))
        return min(1.0, max(fractions)) if fractions else 0.0

    def status(self, c: Counters) -> str:
        """Progress against the limit that will stop the run first, with an
        ETA: 'kimg 42.1/78.0, 3m10s left'."""
        cfg = self.cfg
        elapsed = self.elapsed(c)
        options = []  # (seconds left, text)
        if self.total_epochs:
            done = c.images_seen / (self.total_epochs * self.iters * self.images_per_iter)
            options.append((_eta(elapsed, done), f"epoch {c.epoch}/{self.total_epochs}"))
        if cfg.kimg:
            done = c.images_seen / (cfg.kimg * 1000)
            options.append((_eta(elapsed, done), f"kimg {c.images_seen / 1000:.1f}/{cfg.kimg:.1f}"))
        if cfg.minutes:
            left = max(0.0, cfg.minutes * 60 - elapsed)
            options.append((left, f"time {clock(elapsed)}/{clock(cfg.minutes * 60)}"))
        if not options:
            return ""
        left, text = min(options, key=lambda o: o[0])
        return f"{text}, {clock(left)} left" if math.isfinite(left) else text


def _eta(elapsed: float, done: float) -> float:
    """Seconds left at the average pace so far (inf before any progress)."""
    if done <= 0:
        return math.inf
    return max(0.0, elapsed * (1 - done) / done)


def clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def progress_bar(total: int, initial: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="it", disable=not enabled, leave=False,
                file=sys.stderr, dynamic_ncols=True, mininterval=1.0 if sys.stderr.isatty() else 30.0)
