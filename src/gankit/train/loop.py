"""The training loop, readable top to bottom.

One iteration = one discriminator step on one real batch; every
``critic_steps`` iterations the generator takes a step too (`step.py`).
Progress is counted in images seen (``kimg``); periodic work (log lines,
samples, checkpoints, evaluation and ``best.pt``) happens every
``--log-every`` iterations, at epoch ends or every ``--snapshot-kimg``.
Non-finite values roll the run back to its last checkpoint with halved
learning rates; ``--auto-remedy`` applies the health monitor's advice.

The parts the loop drives are built elsewhere: hardware (`hardware.py`),
models, optimisers and RNG streams (`state.py`), the step (`step.py`), the
budget (`budget.py`), the run directory's life (`session.py`).
"""
from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from gankit import __version__
from gankit.config import TrainConfig
from gankit.data.dataset import fingerprint
from gankit.errors import EnvironmentProblem, TrainingFailed, UsageError
from gankit.fsproblems import is_environment, os_error_in, problem
from gankit.regularize import r1_active, r1_weight
from gankit.train import checkpoint as ckpt
from gankit.train import distributed as dist_util
from gankit.train.budget import progress_bar
from gankit.train.conditioning import bind
from gankit.train.session import RunSession
from gankit.train.signals import Interrupted
from gankit.train.step import StepStats

MAX_RETRIES = 3  # roll-backs after non-finite values before giving up
LR_BACKOFF = 0.5  # a roll-back halves both learning rates

Callback = Callable[["Trainer"], None]


class Trainer(RunSession):
    """The parts (`TrainingParts`) in a run directory (`RunSession`), and ``run()``,
    which trains to the budget.

    ``resume`` is a run directory (its newest checkpoint) or a checkpoint file;
    ``config`` may then be None (the checkpoint's own).  ``restart`` starts the
    run over in place; ``allow_data_change`` lets a resume continue on another
    dataset.  ``callbacks`` are called with the trainer before every iteration
    (tests use one to inject faults).  Nothing is written until the data and
    config have been checked, and a start that fails leaves no run directory."""

    def __init__(self, config: TrainConfig | None = None, resume: str | Path | None = None, *,
                 restart: bool = False, allow_data_change: bool = False, callbacks: Sequence[Callback] = ()) -> None:
        if config is None:
            if resume is None:
                raise UsageError("config: give a TrainConfig, or resume= a run to continue")
            from gankit.train.resume import resume_config

            config = resume_config(resume)
        super().__init__(config, resume, restart, allow_data_change)
        self.callbacks = list(callbacks)
        self.preview = self.batches.preview(self.cfg.num_samples)  # the real half of every sample grid

    # ----------------------------------------------------------- checkpoints
    def checkpoint_state(self) -> dict[str, Any]:
        """The whole checkpoint: the training state plus what describes it."""
        return {
            **self.state.state_dict(),
            "config": self.config_now().to_dict(),
            "gankit_version": __version__,
            "health": self.monitor.checker.state_dict() if self.monitor is not None else self._health_state,
            "data": {"path": str(self.cfg.data), **fingerprint(self.dataset), **self.split_record()},
        }

    def save(self) -> Path | None:
        if not ckpt.all_finite(self.state.G, self.state.D, self.state.ema.model):
            raise FloatingPointError("non-finite weights; not writing a checkpoint")
        path = None
        if self.rank0:
            state = self.checkpoint_state()
            state["world"] = self.dist.world
            path = ckpt.save_checkpoint(state, self.ckpt_dir, self.counters.images_seen, self.cfg.keep)
            self._fresh = False
            self._write_config()  # config.yaml says what the checkpoint trains with (rates after roll-backs)
        dist_util.barrier(self.dist)
        return path

    # ------------------------------------------------------------ the loop
    def elapsed(self) -> float:
        return self.budget.elapsed(self.counters)

    @property
    def total_epochs(self) -> int:
        return self.budget.total_epochs

    def budget_done(self) -> bool:
        """True once a limit of the budget is reached (told to the monitor for summary.json
        and the end line).  A signal also ends the loop, but it is no limit: the run is interrupted."""
        if self.stop_requested():
            return True
        reached = self.budget.limit_reached(self.counters)
        if reached is not None and self.monitor is not None:
            self.monitor.stopped_by(*reached)
        return reached is not None

    def run(self) -> Path:
        """Train to the budget.  SIGTERM/SIGINT: finish the step, checkpoint, raise `Interrupted`."""
        self.budget.restart_clock()
        status = "failed"
        with self._stop:  # also while reporting: a second signal during the report stops at once, cleanly
            try:
                self._start_outputs()
                if not self.resumed:
                    self.save()  # a known-good state to roll back to
                while not self.budget_done():
                    try:
                        self._run_epoch()
                    except FloatingPointError as err:
                        self._roll_back(str(err))
                status = "interrupted" if self._stopping else "finished"
                self._finish(status)
            except Interrupted as err:
                status = "aborted" if err.aborted else "interrupted"
                raise
            except KeyboardInterrupt:
                status = "interrupted"
                raise
            except OSError as err:
                cause = os_error_in(err)
                if cause is None or not is_environment(cause):
                    raise
                raise self._with_hint(problem(cause, cause.filename or self.run_dir, "cannot write to")) from None
            except EnvironmentProblem as err:
                raise self._with_hint(err) from None
            finally:
                self._close(status)
        if status == "interrupted":
            raise Interrupted(self._stop.signum or 2, self._stopped_message())
        self._say_where_things_are()
        return self.run_dir

    def _finish(self, status: str) -> None:
        """The last snapshot, evaluation and checkpoint of a run that ended by its budget or a signal."""
        self.counters.elapsed = self.elapsed()
        self.budget.restart_clock()
        if self.counters.iter > 0:  # stopped mid-epoch (signal, --minutes, --kimg): show where it got to
            self._snapshot()
        ev = self.evaluator  # once a run has evaluated, its final state competes for best.pt too
        if status == "finished" and ev is not None and ev.evaluations and ev.last_kimg != self.counters.kimg:
            self._evaluate()  # (not after a signal: a preemption's grace period is short)
        self.save()
        if status == "interrupted":
            self._say(self._stopped_message())

    def _run_epoch(self) -> None:
        cfg, c = self.cfg, self.counters
        order, iters = self.batches.order(c.epoch), self.batches.iters
        stats = StepStats.zeros(self.device)
        bar = progress_bar(iters, c.iter, f"epoch {c.epoch}", enabled=self.rank0)
        while c.iter < iters and not self.budget_done():
            for callback in self.callbacks:
                callback(self)
            log_now = (c.iter + 1) % cfg.log_every == 0 or c.iter + 1 == iters
            self.state.follow_lr_steps(cfg.lr_factor(c.kimg))
            stats.add(self.step(*self.batch_of(order, c.iter), measure_grads=log_now))
            c.iter += 1
            c.images_seen += self.batches.batch * self.dist.world
            bar.update(1)
            if log_now:
                self._log(stats, iters, bar)
                stats.reset()
            if cfg.snapshot_kimg and c.kimg >= c.next_snapshot_kimg:
                c.next_snapshot_kimg = c.kimg + cfg.snapshot_kimg
                self._snapshot()
            if self.evaluator is not None and self.evaluator.due(c.kimg):
                self._evaluate()
        bar.close()
        if stats.d_steps > 0:  # the budget ended between two log lines: log the rest
            self._log(stats, iters, bar)
        if c.iter >= iters:  # a whole epoch: periodic work, then the next one
            self._end_epoch()

    def _end_epoch(self) -> None:
        c = self.counters
        self._snapshot()
        c.epoch += 1
        c.iter = 0
        if self.monitor is not None:
            self.monitor.epoch_end(c.epoch - 1)
        if (c.epoch - 1) % self.cfg.checkpoint_every == 0:
            self.save()

    def _log(self, stats: StepStats, iters: int, bar: Any) -> None:
        c = self.counters
        stats.all_reduce(self.dist)  # every rank logs (and judges) the same numbers
        record: dict[str, Any] = {
            "epoch": c.epoch, "epochs": self.total_epochs, "iter": c.iter, "iters": iters,
            "step": c.step, "images_seen": c.images_seen, "kimg": round(c.kimg, 3),
            "time": round(self.elapsed(), 3), **stats.to_record(), "lr_g": self.state.lr_g, "lr_d": self.state.lr_d,
        }
        for key in ("grad_norm_g", "grad_norm_d"):  # after the rates, as in earlier runs' metrics.jsonl
            record[key] = record.pop(key)
        if r1_active(self.cfg, c.kimg):  # the weight in use: the health monitor's remedy starts from it
            record["r1"] = r1_weight(self.cfg, self.state.lr_scale)
        if self.state.ada is not None:
            record["ada_p"] = float(self.state.ada.p)
            record["ada_rt"] = float(self.state.ada.r_t)
        if not all(math.isfinite(v) for v in (record["loss_d"], record["loss_g"])):
            raise FloatingPointError(f"non-finite loss at step {c.step} "
                                     f"(Loss_D {record['loss_d']}, Loss_G {record['loss_g']})")
        budget = self.budget.status(c)
        epochs = f"/{self.total_epochs}" if self.total_epochs else ""
        line = (f"[{c.epoch}{epochs}][{c.iter}/{iters}] Loss_D: {record['loss_d']:.4f} Loss_G: {record['loss_g']:.4f} "
                f"D(x): {record['d_x']:.4f} D(G(z)): {record['d_g_z1']:.4f} / {record['d_g_z2']:.4f}"
                + (f" | {budget}" if budget else ""))
        events: list[Any] = []  # the health monitor's events (rank 0's, sent to all)
        if self.monitor is not None:  # rank 0
            bar.set_postfix_str(budget, refresh=False)
            bar.write(line, file=sys.stdout)
            self._say(line, echo=False)
            events = self.monitor.log(record)
        if self.cfg.auto_remedy:
            for event in dist_util.broadcast_object(events, self.dist):
                self._apply_remedy(event)

    def _apply_remedy(self, event: Any) -> None:
        """The health monitor's advice: new learning rates, or an R1 weight (the step is rebuilt for it)."""
        remedy = event.remedy or {}
        applied: dict[str, float] = {}
        changes = []
        if {"lr_g", "lr_d"} & remedy.keys():
            lr_g, lr_d = remedy.get("lr_g", self.state.lr_g), remedy.get("lr_d", self.state.lr_d)
            self.state.set_lr(lr_g, lr_d)
            applied.update(lr_g=lr_g, lr_d=lr_d)
            changes.append(f"lr_g={lr_g:g}, lr_d={lr_d:g}")
        if "r1" in remedy:  # the weight in force becomes the remedy's (with --r1-follows-lr, the base one so)
            scale = self.state.lr_scale if self.cfg.r1_follows_lr else 1.0
            self.cfg = self.cfg.replace(r1=float(remedy["r1"]) * scale, r1_from_kimg=0.0)  # now, not later
            self.step = self.make_step()  # the step reads the R1 weight when it is built
            applied["r1"] = r1_weight(self.cfg, self.state.lr_scale)
            changes.append(f"r1={applied['r1']:g} (every {self.cfg.r1_every} D steps)")
        if changes and self.monitor is not None:
            self.monitor.event("remedy_applied", self.counters.step, self.counters.kimg,
                               f"--auto-remedy after {event.kind}: set {'; '.join(changes)}", remedy=applied,
                               applied=True)

    @torch.no_grad()
    def _snapshot(self, best: bool = False) -> None:
        """The fixed latents' samples: the epoch's grid and GIF frame, or ``samples/best.png``."""
        if self.monitor is None:  # not rank 0
            return
        G = self.state.sampling_generator(self.cfg.no_ema)
        was_training = G.training
        G.eval()
        z, y = self.cond.grid_inputs(self.state.fixed_z)  # conditional: a row per class, the same z in each column
        fake = bind(G, None if y is None else y.to(self.device))(z.to(self.device)).float()
        G.train(was_training)
        c, cols = self.counters, self.cond.grid_cols
        if best:
            self.monitor.snapshot_best(c.kimg, self.preview, fake, c.step, cols=cols)
            return
        self.monitor.snapshot(c.epoch, c.kimg, self.preview, fake, c.step, cols=cols)
        self.monitor.check_diversity(fake, self.preview, c.step, c.kimg,
                                     fake_labels=y, real_labels=self.batches.preview_labels)

    def _evaluate(self) -> None:
        """Score the generator that samples come from; a new best score writes
        ``checkpoints/best.pt`` (the whole state) and ``samples/best.png``."""
        c, kimg = self.counters, self.counters.kimg
        assert self.evaluator is not None and self.monitor is not None  # rank 0 with --eval-every-kimg
        result = self.evaluator.evaluate(self.state.sampling_generator(self.cfg.no_ema), kimg)
        self.budget.exclude(result.get("eval_setup_seconds", 0.0))  # once per run: not training time
        record = {"kind": "eval", "step": c.step, "kimg": round(kimg, 3), "time": round(self.elapsed(), 3), **result}
        self.monitor.log(record)
        score, best = result.get("score"), self.state.best
        if best and best.get("extractor_id") != result.get("extractor_id"):
            # e.g. a run resumed after the dataset extractor's recipe changed: the old score is on another scale
            self._say(f"best.pt: its {best.get('metric')} {best.get('score'):.4g} ({best.get('kimg')} kimg) was "
                      f"measured by {best.get('extractor_id') or 'an older extractor'}; scores now come from "
                      f"{result.get('extractor_id')}, so the best state is chosen anew")
            self.state.best = {}
        if score is None or not math.isfinite(score) or score >= self.state.best.get("score", math.inf):
            return
        self.state.best = {"metric": result["score_metric"], "score": score, "kimg": round(kimg, 3),
                           "extractor_id": result.get("extractor_id")}
        ckpt.atomic_save(self.checkpoint_state(), self.files.best)
        self._snapshot(best=True)

    def _roll_back(self, reason: str) -> None:
        c = self.counters
        c.retries += 1
        last = ckpt.latest_checkpoint(self.ckpt_dir)
        if self.monitor is not None:
            self.monitor.event("non_finite", c.step, c.kimg, f"non-finite values: {reason}",
                               "lower the learning rates (--lr-g, --lr-d), use --precision fp32, "
                               "or add --r1 / --spectral-norm")
        if c.retries > MAX_RETRIES:
            raise TrainingFailed(f"non-finite losses or weights persisted after {MAX_RETRIES} roll-backs with lowered "
                                 f"learning rates ({reason}); last good checkpoint: {last}")
        if last is None:
            raise TrainingFailed(f"non-finite values ({reason}) and no checkpoint to roll back to")
        retries, best = c.retries, self.state.best  # best.pt stays valid: it may be newer than `last`
        lr_g, lr_d = self.state.lr_g * LR_BACKOFF, self.state.lr_d * LR_BACKOFF
        self.state.load_state_dict(ckpt.load_checkpoint(last, map_location=self.device))
        self.counters.retries, self.state.best = retries, best
        self.state.set_lr(lr_g, lr_d)
        msg = (f"rolled back to {last.name}, learning rates halved to lr_g={lr_g:g} lr_d={lr_d:g} "
               f"(retry {retries}/{MAX_RETRIES})")
        self._say("WARNING: " + msg)
        if self.monitor is not None:
            self.monitor.event("rollback", self.counters.step, self.counters.kimg, msg,
                               remedy={"lr_g": lr_g, "lr_d": lr_d}, applied=True)


def train(config: TrainConfig | None = None, resume: str | Path | None = None, *, restart: bool = False,
          allow_data_change: bool = False, callbacks: Sequence[Callback] = ()) -> Path:
    """Train to the config's budget; returns the run directory.

    ``resume`` is a run directory (its newest checkpoint) or a checkpoint file;
    with it ``config`` may be None (the checkpoint's own config).  See `Trainer`.
    SIGTERM/SIGINT end with `gankit.train.signals.Interrupted` after a checkpoint.
    """
    return Trainer(config, resume=resume, restart=restart, allow_data_change=allow_data_change,
                   callbacks=callbacks).run()
