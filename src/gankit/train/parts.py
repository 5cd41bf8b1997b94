"""What one rank trains with, built from a config, without a run directory.

`TrainingParts` checks the config against the data and the hardware, then
builds the process group, the device, the dataset's batches, the training
state, the budget and the step.  `gankit bench` times its steps
(`TrainingParts.bench`); `gankit.train.loop.Trainer` adds a run directory,
the outputs and the loop around the same parts.
"""
from __future__ import annotations

import time

import torch

from gankit.config import TrainConfig
from gankit.data.dataset import load_dataset
from gankit.data.split import read_split
from gankit.errors import UsageError
from gankit.train import distributed as dist_util
from gankit.train import hardware
from gankit.train.batches import BatchSource
from gankit.train.budget import Budget
from gankit.train.conditioning import Conditioning, resolve_conditional
from gankit.train.rundir import check_name
from gankit.train.state import Counters, TrainState
from gankit.train.step import TrainStep


class TrainingParts:
    """Config, process group, device, data, state, budget and step of one rank."""

    def __init__(self, config: TrainConfig) -> None:
        self.dist = dist_util.init(config.device)
        self.rank0 = self.dist.rank == 0
        self.device = self.dist.device if self.dist.enabled else hardware.pick_device(config.device)
        config = self.cfg = hardware.configure(config, self.device)
        if not config.data:
            raise UsageError("--data: no dataset given (make one with `gankit data atari ...`)")
        if config.name:
            check_name(config.name)
        per_rank_batch = dist_util.per_rank_batch(config.batch, self.dist)
        self.dataset = load_dataset(config.data)
        # `gankit data split`: training reads only the training part; the held-out images are for evaluation
        self.split = read_split(self.dataset)
        n = len(self.dataset) if self.split is None else len(self.split.training)
        # conditional: decided from the data's labels once, then saved with the config (docs/conditional.md)
        config = self.cfg = resolve_conditional(config, self.dataset)
        if per_rank_batch * self.dist.world > n:
            what = "images" if self.split is None else "training images after its held-out split"
            raise UsageError(f"--batch: {config.batch} is larger than the dataset ({n} {what} in "
                             f"{config.data}); use --batch {n // self.dist.world * self.dist.world} "
                             "or less, or a bigger dataset")
        H, W = config.image_size or (self.dataset.height, self.dataset.width)
        self.shape = (self.dataset.channels, H, W)
        classes = list(self.dataset.classes) if config.conditional else []
        self.state = TrainState(config, self.shape, self.device, self.dist, classes)
        # the classes of generated batches (drawn from the z stream) and of the sample grids; inert when unconditional
        self.cond = Conditioning(config, self.dataset, self.state.z_gen, self.device, self.dist.rank, self.dist.world)
        self.batches = BatchSource(self.dataset, per_rank_batch, self.device, (H, W),
                                   seed=config.seed, rank=self.dist.rank, world=self.dist.world,
                                   channels_last=config.channels_last, class_balance=config.class_balance,
                                   preview_grid=self.cond.grid,
                                   pool=None if self.split is None else self.split.training,
                                   mirror=config.mirror)
        self.budget = Budget(config, self.batches.iters, self.batches.batch * self.dist.world, self.dist)
        self.step = self.make_step()

    def data_note(self) -> str:
        """'12000 images' or '10800 training images, 1200 held out by split.json' (the console line)."""
        if self.split is None:
            return f"{len(self.dataset)} images"
        return (f"{len(self.split.training)} training images, {len(self.split.heldout)} held out by "
                "split.json")

    def split_record(self) -> dict[str, str]:
        """{'split': digest of the held-out indices} for the checkpoint ({} without a split): eval and resume
        tell from it whether the generator trained under the split it is judged by."""
        return {} if self.split is None else {"split": self.split.digest}

    @property
    def counters(self) -> Counters:
        return self.state.counters

    def config_now(self) -> TrainConfig:
        """The config with the learning rates the optimisers train with now (after roll-backs and remedies)."""
        return self.cfg.replace(lr_g=self.state.lr_g, lr_d=self.state.lr_d)

    def make_step(self) -> TrainStep:
        """The step for the current config (rebuilt when a remedy changes the config)."""
        return TrainStep(self.cfg, self.state, lambda: self.budget.progress(self.state.counters), self.cond)

    def batch_of(self, order: torch.Tensor, i: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The ``i``-th batch of an epoch's ``order``: (images, their classes or None)."""
        B = self.batches.batch
        return self.batches.pair(order[i * B : (i + 1) * B], self.cond.enabled)

    def bench(self, warmup: int, iters: int) -> float:
        """Seconds for ``iters`` full steps (D and G, optimisers, EMA) after ``warmup``
        untimed ones, on real batches of epoch 1 (cycled).  The state trains as it goes."""
        order = self.batches.order(1)
        for i in range(warmup):
            self.step(*self.batch_of(order, i % self.batches.iters))
        _sync(self.device)
        t0 = time.perf_counter()
        for i in range(warmup, warmup + iters):
            self.step(*self.batch_of(order, i % self.batches.iters))
        _sync(self.device)
        return time.perf_counter() - t0

    def close(self) -> None:
        """Leave the process group (torchrun); nothing else is held."""
        dist_util.shutdown(self.dist)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
    elif device.type == "mps":
        torch.mps.synchronize()
