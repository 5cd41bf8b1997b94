"""The training loop, readable top to bottom.

One iteration = one discriminator step on one real batch; every
``critic_steps`` iterations the generator takes a step too.  Progress is
counted in images seen (``kimg``), periodic work (samples, checkpoints,
evaluation) happens at epoch ends or every ``--snapshot-kimg``.

Numbers that need the host (losses for the console, accuracies) accumulate
on the device and are read once per ``--log-every`` iterations: no
``.item()`` per step, so a GPU never waits on the CPU.
"""
from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from gankit import __version__
from gankit.config import DEFAULT_EPOCHS, TrainConfig, parse_size
from gankit.data.dataset import fingerprint, load_dataset
from gankit.errors import EnvironmentProblem, TrainingFailed, UsageError
from gankit.fsproblems import is_environment, os_error_in, problem
from gankit.losses import build_loss
from gankit.models import build_discriminator, config_generator
from gankit.train import checkpoint as ckpt
from gankit.train import distributed as dist_util
from gankit.train.batches import BatchSource
from gankit.train.conditioning import Conditioning, bind, resolve_conditional
from gankit.train.ema import EMA
from gankit.train.lock import RunLock
from gankit.train.rundir import check_name
from gankit.train.session import RunSession
from gankit.train.signals import GracefulStop, Interrupted

MAX_RETRIES = 3  # roll-backs after non-finite values before giving up


def pick_precision(name: str, device: torch.device) -> str:
    """Resolve ``auto``: bf16 only where it is native (bf16 emulated on an old
    CPU is slower than fp32)."""
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "mps":  # autocast on MPS is young: fp32 is the safe choice
        return "fp32"
    native = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    flags = cpu_flags()
    if flags is not None:
        # oneDNN also says "supported" on AVX-512 CPUs without bf16 units, where
        # it converts in software: 74 vs 116 images/s against fp32 for the
        # breakout preset on such a Xeon (`gankit bench --preset breakout`).
        native = native and bool(flags & BF16_CPU_FLAGS)
    return "bf16" if native else "fp32"


# x86 AVX512-BF16 / AMX, and the Arm feature name.
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str] | None:
    """The CPU feature flags Linux reports, or None where there is no such file."""
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return set(value.split())
    except OSError:
        return None
    return None


def pick_device(name: str) -> torch.device:
    from gankit.device import resolve_device

    return resolve_device(name)


@dataclass
class Counters:
    epoch: int = 1  # current epoch, 1-based
    iter: int = 0  # iterations done in the current epoch
    step: int = 0  # generator steps
    d_steps: int = 0  # discriminator steps
    images_seen: int = 0  # real images shown to D, all ranks together
    elapsed: float = 0.0  # training seconds before this session (resume)
    retries: int = 0  # non-finite roll-backs so far
    next_snapshot_kimg: float = 0.0


class Trainer(RunSession):
    """Holds models, optimisers and counters; ``run()`` trains to the budget.

    ``resume`` is a run directory (its newest checkpoint) or a checkpoint file;
    ``config`` may then be None (the checkpoint's own).  ``restart`` starts the
    run over in place; ``allow_data_change`` lets a resume continue on another
    dataset.  Nothing is written until the data and config have been checked,
    and a start that fails leaves no run directory behind."""

    def __init__(self, config: TrainConfig | None = None, resume: str | Path | None = None, *,
                 restart: bool = False, allow_data_change: bool = False):
        if config is None:
            if resume is None:
                raise UsageError("config: give a TrainConfig, or resume= a run to continue")
            from gankit.train.resume import resume_config

            config = resume_config(resume)
        self.cfg = config
        self.dist = dist_util.init(config.device)
        self.rank0 = self.dist.rank == 0
        self.device = pick_device(config.device) if not self.dist.enabled else self.dist.device
        if config.threads:
            torch.set_num_threads(config.threads)
        # Subnormal floats make x86 CPUs 10x slower per operation; GAN weights
        # and Adam moments drift into that range within an epoch.
        torch.set_flush_denormal(True)
        config = self.cfg = config.replace(precision=pick_precision(config.precision, self.device))
        if config.precision == "fp16" and self.device.type != "cuda":
            raise UsageError("--precision: fp16 needs a CUDA device; use bf16 on the CPU")
        if not config.data:
            raise UsageError("--data: no dataset given (make one with `gankit data atari ...`)")
        if config.name:
            check_name(config.name)
        per_rank_batch = dist_util.per_rank_batch(config.batch, self.dist)
        self.dataset = load_dataset(config.data)
        # conditional: decided from the data's labels once, then saved with the config (issue 20)
        config = self.cfg = resolve_conditional(config, self.dataset)
        if per_rank_batch * self.dist.world > len(self.dataset):
            raise UsageError(f"--batch: {config.batch} is larger than the dataset ({len(self.dataset)} images in "
                             f"{config.data}); use --batch {len(self.dataset) // self.dist.world * self.dist.world} "
                             "or less, or a bigger dataset")
        H, W = parse_size(config.resolution, "resolution") if config.resolution else (self.dataset.height, self.dataset.width)
        self.shape = (self.dataset.channels, H, W)
        self._seed_everything(config.seed + self.dist.rank)
        self.z_gen = torch.Generator(device=self.device).manual_seed(config.seed + 555)  # (see below)
        # classes of generated batches (drawn from z_gen) and of the sample grids; inert when unconditional
        self.cond = Conditioning(config, self.dataset, self.z_gen, self.device, self.dist.rank, self.dist.world)
        self._build()
        self.counters = Counters()
        self.fixed_z = torch.randn(config.num_samples, config.latent, generator=torch.Generator().manual_seed(config.seed + 777))
        # z for training comes from its own stream, seeded alike on every rank and drawn for
        # the global batch (see _sample_z): N ranks then compute what one process would.
        self.before_step: Callable[["Trainer"], None] | None = None  # test hook: runs before each iteration
        self.batches = BatchSource(self.dataset, per_rank_batch, self.device, (H, W),
                                   seed=config.seed, rank=self.dist.rank, world=self.dist.world,
                                   channels_last=config.channels_last, class_balance=config.class_balance,
                                   preview_grid=self.cond.grid)
        self.best: dict[str, Any] = {}  # metric, score, kimg of the state in checkpoints/best.pt (kept on resume)
        self.resumed = False
        self.lock = RunLock(".", "--resume")  # replaced by the run directory's lock below
        self.notes: list[tuple[str, dict[str, float]]] = []  # changes made on resume, logged once run() starts
        self._health_state: dict[str, Any] | None = None  # the health monitor's memory, for run()
        self._created = False  # this process made the run directory (removed again if the start fails)
        self._fresh = True  # no checkpoint written or loaded yet
        try:
            self._open_run_dir(resume, restart, allow_data_change)
        except BaseException:
            self._undo_start()
            raise
        self.ckpt_dir = self.run_dir / "checkpoints"

    # ------------------------------------------------------------------ setup
    @staticmethod
    def _seed_everything(seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    def _build(self) -> None:
        cfg, (C, H, W) = self.cfg, self.shape
        self.G = config_generator(cfg, self.shape, self.cond.num_classes).to(self.device)
        self.D = build_discriminator(cfg.model, H, W, C, cfg.width_d, cfg.loss, cfg.spectral_norm, cfg.mbstd,
                                     coords=cfg.coord_conv, head=cfg.d_head, num_classes=self.cond.num_classes).to(self.device)
        if cfg.spectral_norm:
            from gankit.regularize import apply_spectral_norm

            self.D = apply_spectral_norm(self.D)
        if cfg.channels_last:
            self.G = self.G.to(memory_format=torch.channels_last)
            self.D = self.D.to(memory_format=torch.channels_last)
        self.ema = EMA(self.G, cfg.ema_kimg)
        # One fused kernel per optimiser (CPU since torch 2.4): 3x faster than
        # foreach on the CPU, ~5% of a breakout step; same update up to rounding.
        fused = self.device.type in ("cuda", "cpu")  # MPS: the foreach kernels
        adam = dict(betas=(cfg.beta1, cfg.beta2), foreach=not fused, fused=fused or None)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, **adam)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, **adam)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.precision == "fp16")
        self.loss = build_loss(cfg.loss, cfg.label_smoothing)
        self.ada = None
        if cfg.ada:
            from gankit.augment import AdaptiveAugment

            self.ada = AdaptiveAugment(target=cfg.ada_target, speed_kimg=cfg.ada_kimg, batch=cfg.batch,
                                       ops=tuple(o.strip() for o in cfg.ada_ops.split(",") if o.strip()))
        self.G_train, self.D_train = dist_util.wrap(self.G, self.D, self.dist, cfg.sync_bn)
        # The G step needs D only as a function of its input: it calls the plain module
        # with frozen parameters, so D's gradients are neither computed nor all-reduced.
        self.D_g = self.D
        if cfg.compile:
            self.D_g = torch.compile(self.D)
            self.G_train = torch.compile(self.G_train)
            self.D_train = self.D_g if self.D_train is self.D else torch.compile(self.D_train)
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision)

    # ----------------------------------------------------------- checkpoints
    def state(self) -> dict[str, Any]:
        return {
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "G_ema": self.ema.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ada": self.ada.state_dict() if self.ada is not None else {},
            "counters": dict(vars(self.counters)),
            "rng": ckpt.rng_state(),
            "z_rng": self.z_gen.get_state(),
            "fixed_z": self.fixed_z,
            "best": dict(self.best),
            "config": self.cfg.to_dict(),
            "shape": list(self.shape),
            "gankit_version": __version__,
            "health": self._health_memory(),
            "data": {"path": str(self.cfg.data), **fingerprint(self.dataset)},
            **self.cond.state(),  # "classes": names, conditional runs only
        }

    def _health_memory(self) -> dict[str, Any] | None:
        monitor = getattr(self, "monitor", None)
        return monitor.checker.state_dict() if monitor is not None else self._health_state

    def load_state(self, state: dict[str, Any]) -> None:
        if list(state.get("shape", [])) != list(self.shape):
            raise UsageError(f"--resume: checkpoint images are {state.get('shape')}, this config makes {list(self.shape)}")
        try:
            self.G.load_state_dict(state["G"])
            self.D.load_state_dict(state["D"])
            self.ema.load_state_dict(state["G_ema"])
        except RuntimeError as err:
            raise UsageError(f"--resume: checkpoint holds another architecture: {str(err).splitlines()[0]}") from None
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ada is not None and state.get("ada"):
            self.ada.load_state_dict(state["ada"])
        self.counters = Counters(**state["counters"])
        self.fixed_z = state["fixed_z"]
        self.best = dict(state.get("best") or {})
        if self.dist.world == 1 and state.get("world", 1) == 1:
            ckpt.set_rng_state(state["rng"])
        else:  # rank 0's RNG state alone was saved: give every rank its own stream again
            self._seed_everything(self.cfg.seed + self.dist.rank + 1009 * self.counters.d_steps)
        if "z_rng" in state:
            self.z_gen.set_state(state["z_rng"])
        # the rates the checkpoint trained with (roll-backs and remedies change them)
        self._set_lr(self.opt_g.param_groups[0]["lr"], self.opt_d.param_groups[0]["lr"])

    def save(self) -> Path | None:
        if not ckpt.all_finite(self.G, self.D, self.ema.model):
            raise FloatingPointError("non-finite weights; not writing a checkpoint")
        path = None
        if self.rank0:
            state = self.state()
            state["world"] = self.dist.world
            path = ckpt.save_checkpoint(state, self.ckpt_dir, self.counters.images_seen, self.cfg.keep)
            self._fresh = False
            self._write_config()  # config.yaml says what the checkpoint trains with (rates after roll-backs)
        dist_util.barrier(self.dist)
        return path

    def _set_lr(self, lr_g: float, lr_d: float) -> None:
        for group in self.opt_g.param_groups:
            group["lr"] = lr_g
        for group in self.opt_d.param_groups:
            group["lr"] = lr_d
        self.cfg = self.cfg.replace(lr_g=lr_g, lr_d=lr_d)

    # ------------------------------------------------------------- one step
    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        if cfg.diffaugment_ops:
            from gankit.augment import diff_augment

            x = diff_augment(x, cfg.diffaugment_ops)
        if self.ada is not None:
            x = self.ada(x)
        if cfg.instance_noise > 0:
            from gankit.regularize import instance_noise

            x = instance_noise(x, cfg.instance_noise, self.progress())
        return x

    def progress(self) -> float:
        """Fraction of the budget done, for annealed schedules (instance noise)."""
        cfg, c = self.cfg, self.counters
        fractions = []
        if cfg.kimg:
            fractions.append(c.images_seen / (cfg.kimg * 1000))
        if self.total_epochs:
            fractions.append(((c.epoch - 1) * self.batches.iters + c.iter) / (self.total_epochs * self.batches.iters))
        if cfg.minutes:
            fractions.append(self.elapsed() / (cfg.minutes * 60))
        return min(1.0, max(fractions)) if fractions else 0.0

    def _sample_z(self, batch: int) -> torch.Tensor:
        """This rank's (batch, latent) slice of the global batch's z."""
        world, rank = self.dist.world, self.dist.rank
        z = torch.randn(batch * world, self.cfg.latent, generator=self.z_gen, device=self.device)
        return z[rank * batch : (rank + 1) * batch]

    def train_step(self, real: torch.Tensor, stats: torch.Tensor, log_now: bool,
                   y_real: torch.Tensor | None = None) -> None:
        """One D step (and a G step when due).  ``y_real``: the real batch's classes
        (conditional runs); generated classes come from ``self.cond``; G and D are
        called through `bind`, which adds the classes only when there are some."""
        cfg, c, dev = self.cfg, self.counters, self.device.type
        G, D = self.G_train, self.D_train
        B = real.shape[0]
        take_g_step = (c.d_steps + 1) % cfg.critic_steps == 0
        do_r1 = cfg.r1 > 0 and c.d_steps % cfg.r1_every == 0
        reuse_fake = take_g_step and cfg.critic_steps == 1  # the G step backpropagates through this fake
        with torch.autocast(dev, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            y_fake = self.cond.fake_labels(B)  # None (and no draw) when unconditional
            with torch.set_grad_enabled(reuse_fake):
                fake = bind(G, y_fake)(self._sample_z(B))
            # ---- discriminator step
            real_in = self._augment(real)
            if do_r1:
                real_in = real_in.detach().requires_grad_(True)
            real_logits = bind(D, y_real)(real_in).float()  # augmentation changes images, never labels
            fake_logits = bind(D, y_fake)(self._augment(fake.detach())).float()
            loss_d = self.loss.d_loss(real_logits, fake_logits)
            # wgan-gp's points between real and fake images are scored as the real images' classes
            penalty = self.loss.d_penalty(bind(D, y_real), real_in.detach(), fake.detach())
            if penalty is not None:
                loss_d = loss_d + penalty
            if do_r1:
                from gankit.regularize import r1_penalty

                loss_d = loss_d + r1_penalty(real_logits, real_in) * (cfg.r1 / 2) * cfg.r1_every
        if self.ada is not None:
            self.ada.accumulate(real_logits.detach())
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler.scale(loss_d).backward()
        grad_d = _grad_norm(self.D) if log_now else None
        self.scaler.step(self.opt_d)
        self.loss.after_d_step(self.D)
        c.d_steps += 1
        stats[0] += loss_d.detach()
        stats[2] += torch.sigmoid(real_logits.detach()).mean()
        stats[3] += torch.sigmoid(fake_logits.detach()).mean()
        stats[5] += (real_logits.detach() > 0).float().mean()
        stats[6] += (fake_logits.detach() < 0).float().mean()
        stats[8] += 1
        # ---- generator step
        if take_g_step:
            with torch.autocast(dev, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                if not reuse_fake:
                    y_fake = self.cond.fake_labels(B)
                    fake = bind(G, y_fake)(self._sample_z(B))
                self.D.requires_grad_(False)
                fake_logits_g = bind(self.D_g, y_fake)(self._augment(fake)).float()
                self.D.requires_grad_(True)
                loss_g = self.loss.g_loss(fake_logits_g)
            self.opt_g.zero_grad(set_to_none=True)
            self.scaler.scale(loss_g).backward()
            grad_g = _grad_norm(self.G) if log_now else None
            self.scaler.step(self.opt_g)
            c.step += 1
            self.ema.update(self.G, B * self.dist.world * cfg.critic_steps)
            stats[1] += loss_g.detach()
            stats[4] += torch.sigmoid(fake_logits_g.detach()).mean()
            stats[9] += 1
            if log_now and grad_g is not None:
                stats[10] = grad_g
        if log_now and grad_d is not None:
            stats[7] = grad_d
        self.scaler.update()
        if self.ada is not None:
            self.ada.update(B * self.dist.world)

    # ------------------------------------------------------------ the loop
    def elapsed(self) -> float:
        return self.counters.elapsed + (time.time() - self._t0)

    @property
    def total_epochs(self) -> int:
        cfg = self.cfg
        if cfg.epochs:
            return cfg.epochs
        return 0 if (cfg.kimg or cfg.minutes) else DEFAULT_EPOCHS

    def budget_done(self) -> bool:
        """True once a limit of the budget is reached; the limit is kept in
        ``stop_reason`` and told to the monitor (summary.json, the end line).
        A signal also ends the loop, but it is no limit: the run is interrupted."""
        if self.stop_requested():
            return True
        reached = self._limit_reached()
        if reached is not None:
            self.stop_reason = reached
            monitor = getattr(self, "monitor", None)
            if monitor is not None:
                monitor.stopped_by(*reached)
        return reached is not None

    def _limit_reached(self) -> tuple[str, float] | None:
        cfg, c = self.cfg, self.counters
        if self.total_epochs and c.epoch > self.total_epochs:
            return "epochs", self.total_epochs
        if cfg.kimg and c.images_seen >= cfg.kimg * 1000:
            return "kimg", cfg.kimg
        if cfg.minutes:
            # Every rank must stop at the same iteration: rank clocks differ slightly.
            if dist_util.any_rank(self.elapsed() >= cfg.minutes * 60, self.dist):
                return "minutes", cfg.minutes
        return None

    def budget_status(self, iters: int) -> str:
        """Progress against the limit that will stop the run first, with an
        ETA: 'kimg 42.1/78.0, 3m10s left'."""
        cfg, c = self.cfg, self.counters
        elapsed = self.elapsed()
        per_epoch = iters * self.batches.batch * self.dist.world
        options = []  # (seconds left, text)
        if self.total_epochs:
            done = c.images_seen / (self.total_epochs * per_epoch)
            options.append((_eta(elapsed, done), f"epoch {c.epoch}/{self.total_epochs}"))
        if cfg.kimg:
            done = c.images_seen / (cfg.kimg * 1000)
            options.append((_eta(elapsed, done), f"kimg {c.images_seen / 1000:.1f}/{cfg.kimg:.1f}"))
        if cfg.minutes:
            left = max(0.0, cfg.minutes * 60 - elapsed)
            options.append((left, f"time {_clock(elapsed)}/{_clock(cfg.minutes * 60)}"))
        if not options:
            return ""
        left, text = min(options, key=lambda o: o[0])
        return f"{text}, {_clock(left)} left" if math.isfinite(left) else text

    def run(self) -> Path:
        """Train to the budget.  SIGTERM/SIGINT: finish the step, checkpoint, raise `Interrupted`."""
        self._t0 = time.time()
        self._stop, self._stopping = GracefulStop(), False
        self.monitor, self.log_file = None, None
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
                self.counters.elapsed = self.elapsed()
                self._t0 = time.time()
                if self.counters.iter > 0:  # stopped mid-epoch (signal, --minutes, --kimg): show where it got to
                    self._snapshot()
                ev = self.evaluator  # once a run has evaluated, its final state competes for best.pt too
                if status == "finished" and ev is not None and ev.evaluations and \
                        ev.last_kimg != self.counters.images_seen / 1000:
                    self._evaluate()  # (not after a signal: a preemption's grace period is short)
                self.save()
                if status == "interrupted":
                    self._say(self._stopped_message())
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
        best = self.ckpt_dir / ckpt.BEST
        if best.is_file() and self.best:
            b = self.best
            self._say(f"best checkpoint: {best} ({b['metric']} {b['score']:.3f} at {b['kimg']:.1f} kimg); "
                      "`gankit sample` uses it by default")
            self._say(f"samples: {self.run_dir / 'samples'} (best state: {self.run_dir / 'samples' / 'best.png'})")
        else:
            self._say(f"samples: {self.run_dir / 'samples'}")
        self._say(f"run directory: {self.run_dir}")
        return self.run_dir

    def _run_epoch(self) -> None:
        cfg, c = self.cfg, self.counters
        order = self.batches.order(c.epoch)
        iters, B = self.batches.iters, self.batches.batch
        stats = torch.zeros(11, device=self.device)
        bar = _progress(iters, c.iter, f"epoch {c.epoch}", enabled=self.rank0)
        while c.iter < iters:
            if self.budget_done():
                break
            if self.before_step is not None:
                self.before_step(self)
            log_now = (c.iter + 1) % cfg.log_every == 0 or c.iter + 1 == iters
            real, y_real = self.batches.pair(order[c.iter * B : (c.iter + 1) * B], self.cond.enabled)  # y: classes
            self.train_step(real, stats, log_now, y_real)
            c.iter += 1
            c.images_seen += B * self.dist.world
            bar.update(1)
            if log_now:
                self._log(stats, iters, bar)
                stats.zero_()
            if cfg.snapshot_kimg and c.images_seen / 1000 >= c.next_snapshot_kimg:
                c.next_snapshot_kimg = c.images_seen / 1000 + cfg.snapshot_kimg
                self._snapshot()
            if self.evaluator is not None and self.evaluator.due(c.images_seen / 1000):
                self._evaluate()
        bar.close()
        if stats[8] > 0:  # the budget ended between two log lines: log the rest
            self._log(stats, iters, bar)
        if c.iter >= iters:  # a whole epoch: periodic work, then the next one
            self._snapshot()
            c.epoch += 1
            c.iter = 0
            if self.monitor is not None:
                self.monitor.epoch_end(c.epoch - 1)
            if (c.epoch - 1) % cfg.checkpoint_every == 0:
                self.save()

    def _log(self, stats: torch.Tensor, iters: int, bar: Any) -> None:
        cfg, c = self.cfg, self.counters
        dist_util.all_reduce_mean(stats, self.dist)  # every rank logs (and judges) the same numbers
        s = stats.tolist()  # the one host sync of the log interval
        n_d, n_g = max(s[8], 1), max(s[9], 1)
        record = {
            "epoch": c.epoch, "epochs": self.total_epochs, "iter": c.iter, "iters": iters,
            "step": c.step, "images_seen": c.images_seen, "kimg": round(c.images_seen / 1000, 3),
            "time": round(self.elapsed(), 3),
            "loss_d": s[0] / n_d, "loss_g": s[1] / n_g, "d_x": s[2] / n_d, "d_g_z1": s[3] / n_d,
            "d_g_z2": s[4] / n_g, "acc_real": s[5] / n_d, "acc_fake": s[6] / n_d,
            "lr_g": self.opt_g.param_groups[0]["lr"], "lr_d": self.opt_d.param_groups[0]["lr"],
            "grad_norm_g": s[10], "grad_norm_d": s[7],
        }
        if self.ada is not None:
            record["ada_p"] = float(self.ada.p)
            record["ada_rt"] = float(self.ada.r_t)
        if not all(math.isfinite(v) for v in (record["loss_d"], record["loss_g"])):
            raise FloatingPointError(f"non-finite loss at step {c.step} (Loss_D {record['loss_d']}, Loss_G {record['loss_g']})")
        budget = self.budget_status(iters)
        epochs = f"/{self.total_epochs}" if self.total_epochs else ""
        line = (f"[{c.epoch}{epochs}][{c.iter}/{iters}] Loss_D: {record['loss_d']:.4f} Loss_G: {record['loss_g']:.4f} "
                f"D(x): {record['d_x']:.4f} D(G(z)): {record['d_g_z1']:.4f} / {record['d_g_z2']:.4f}"
                + (f" | {budget}" if budget else ""))
        if self.rank0:
            bar.set_postfix_str(budget, refresh=False)
            bar.write(line, file=sys.stdout)
            self.log_file.write(line + "\n")
            self.log_file.flush()
            events = self.monitor.log(record)
        if cfg.auto_remedy:
            for event in dist_util.broadcast_object(events if self.rank0 else [], self.dist):
                self._apply_remedy(event)

    def _apply_remedy(self, event: Any) -> None:
        changes = {k: v for k, v in (event.remedy or {}).items() if hasattr(self.cfg, k)}
        if not changes:
            return
        lr_g, lr_d = changes.pop("lr_g", self.cfg.lr_g), changes.pop("lr_d", self.cfg.lr_d)
        self._set_lr(lr_g, lr_d)
        if changes:
            self.cfg = self.cfg.replace(**changes)
            self.loss = build_loss(self.cfg.loss, self.cfg.label_smoothing)
        applied = {"lr_g": lr_g, "lr_d": lr_d, **changes}
        if self.monitor is None:
            return
        self.monitor.event("remedy_applied", self.counters.step, self.counters.images_seen / 1000,
                           f"--auto-remedy after {event.kind}: set " + ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in applied.items()),
                           remedy=applied, applied=True)

    @torch.no_grad()
    def _snapshot(self, best: bool = False) -> None:
        """The fixed latents' samples: the epoch's grid and GIF frame, or ``samples/best.png``."""
        if not self.rank0:
            return
        G = self.G if self.cfg.no_ema else self.ema.model
        was_training = G.training
        G.eval()
        z, y = self.cond.grid_inputs(self.fixed_z)  # conditional: a row per class, the same z in each column
        fake = bind(G, None if y is None else y.to(self.device))(z.to(self.device)).float()
        G.train(was_training)
        c, cols = self.counters, self.cond.grid_cols
        if best:
            self.monitor.snapshot_best(c.images_seen / 1000, self.preview, fake, c.step, cols=cols)
            return
        self.monitor.snapshot(c.epoch, c.images_seen / 1000, self.preview, fake, c.step, cols=cols)
        self.monitor.check_diversity(fake, self.preview, c.step, c.images_seen / 1000,
                                     fake_labels=y, real_labels=self.batches.preview_labels)

    def _make_evaluator(self) -> Any:
        if not self.cfg.eval_every_kimg or not self.rank0:
            return None
        from gankit.metrics.training import TrainingEvaluator

        return TrainingEvaluator(self.cfg, self.dataset, self.device, self.run_dir)

    def _evaluate(self) -> None:
        """Score the generator that samples come from; a new best score writes
        ``checkpoints/best.pt`` (the whole state) and ``samples/best.png``."""
        c = self.counters
        G = self.G if self.cfg.no_ema else self.ema.model
        kimg = c.images_seen / 1000
        result = self.evaluator.evaluate(G, kimg)
        record = {"kind": "eval", "step": c.step, "kimg": round(kimg, 3), "time": round(self.elapsed(), 3), **result}
        self.monitor.log(record)
        score = result.get("score")
        if score is None or not math.isfinite(score) or score >= self.best.get("score", math.inf):
            return
        self.best = {"metric": result["score_metric"], "score": score, "kimg": round(kimg, 3)}
        ckpt.atomic_save(self.state(), self.ckpt_dir / ckpt.BEST)
        self._snapshot(best=True)

    def _roll_back(self, reason: str) -> None:
        c = self.counters
        c.retries += 1
        kimg = c.images_seen / 1000
        if self.monitor is not None:
            self.monitor.event("non_finite", c.step, kimg, f"non-finite values: {reason}",
                               "lower the learning rates (--lr-g, --lr-d), use --precision fp32, or add --r1 / --spectral-norm")
        if c.retries > MAX_RETRIES:
            raise TrainingFailed(f"non-finite losses or weights persisted after {MAX_RETRIES} roll-backs with lowered "
                                 f"learning rates ({reason}); last good checkpoint: {ckpt.latest_checkpoint(self.ckpt_dir)}")
        last = ckpt.latest_checkpoint(self.ckpt_dir)
        if last is None:
            raise TrainingFailed(f"non-finite values ({reason}) and no checkpoint to roll back to")
        retries, best = c.retries, self.best  # best.pt stays valid: it may be newer than `last`
        lr_g, lr_d = self.cfg.lr_g * 0.5, self.cfg.lr_d * 0.5
        self.load_state(ckpt.load_checkpoint(last, map_location=self.device))
        self.counters.retries, self.best = retries, best
        self._set_lr(lr_g, lr_d)
        msg = f"rolled back to {last.name}, learning rates halved to lr_g={lr_g:g} lr_d={lr_d:g} (retry {retries}/{MAX_RETRIES})"
        self._say("WARNING: " + msg)
        if self.monitor is not None:
            self.monitor.event("rollback", self.counters.step, self.counters.images_seen / 1000, msg,
                               remedy={"lr_g": lr_g, "lr_d": lr_d}, applied=True)

    def _say(self, text: str) -> None:
        if self.rank0:
            print(text, flush=True)
            if getattr(self, "log_file", None) is not None and not self.log_file.closed:
                self.log_file.write(text + "\n")


def _grad_norm(module: nn.Module) -> torch.Tensor:
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)).float())


def _eta(elapsed: float, done: float) -> float:
    """Seconds left at the average pace so far (inf before any progress)."""
    if done <= 0:
        return math.inf
    return max(0.0, elapsed * (1 - done) / done)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def _progress(total: int, initial: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="it", disable=not enabled, leave=False,
                file=sys.stderr, dynamic_ncols=True, mininterval=1.0 if sys.stderr.isatty() else 30.0)


def train(config: TrainConfig | None = None, resume: str | Path | None = None, *, restart: bool = False,
          allow_data_change: bool = False) -> Path:
    """Train to the config's budget; returns the run directory.

    ``resume`` is a run directory (its newest checkpoint) or a checkpoint file;
    with it ``config`` may be None (the checkpoint's own config).  See `Trainer`.
    SIGTERM/SIGINT end with `gankit.train.signals.Interrupted` after a checkpoint.
    """
    return Trainer(config, resume=resume, restart=restart, allow_data_change=allow_data_change).run()
