"""`gankit train` and `gankit bench`.

Every TrainConfig field is a flag (generated in gankit.config), so the preset,
the flags and the Python API can never drift apart.
"""
from __future__ import annotations

import argparse
import sys
import time

import yaml

from gankit.config import TrainConfig, add_config_flags, config_from_args
from gankit.errors import UsageError

RESUME_HELP = ("continue a run: its directory, its name under --out, a checkpoint file, or 'latest' (the most "
               "recently active run under --out); flags given with it change only the budget, rates, logging and "
               "hardware (each change is logged)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    from gankit.cli import HelpFormatter
    from gankit.presets import PRESETS

    p = sub.add_parser("train", help="train a GAN on a dataset", formatter_class=HelpFormatter,
                       description="Train a GAN. A preset gives starting values; every flag overrides it.\n"
                                   "Budget: --epochs, --kimg or --minutes (the first reached stops).")
    p.add_argument("--preset", choices=sorted(PRESETS), default="", help="named starting point")
    p.add_argument("--resume", default=None, help=RESUME_HELP)
    p.add_argument("--restart", action="store_true",
                   help="start the run given by --resume or --name over from scratch in its folder (deletes its checkpoints)")
    p.add_argument("--allow-data-change", action="store_true",
                   help="with --resume: continue on a dataset other than the one the run trained on")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("--benchmark", action="store_true", help="measure steps/s and images/s for this config and exit")
    add_config_flags(p)
    p.set_defaults(func=run_train, _parser=p)

    b = sub.add_parser("bench", help="measure training steps/s and images/s for a config", formatter_class=HelpFormatter)
    b.add_argument("--preset", choices=sorted(PRESETS), default="", help="named starting point")
    b.add_argument("--warmup", type=int, default=5, help="untimed iterations first")
    b.add_argument("--iters", type=int, default=20, help="timed iterations")
    add_config_flags(b)
    b.set_defaults(func=run_bench, _parser=b)


def _resolve_resume(args: argparse.Namespace) -> tuple[TrainConfig, str]:
    """The run to continue and its config: the checkpoint's (learning rates after
    roll-backs included) with the flags given now on top; the Trainer then
    refuses the changes a resume cannot make and logs the others."""
    from gankit.train.resume import checkpoint_to_resume, find_run, resume_config, run_dir_of

    if args.name:
        raise UsageError("--name: not with --resume (the run keeps its folder); use --resume NAME")
    path = find_run(args.resume, args.out or "runs")
    run_dir = run_dir_of(path)
    if args.restart or checkpoint_to_resume(path) is None:
        cfg_file = run_dir / "config.yaml"
        if not cfg_file.is_file():
            raise UsageError(f"--resume: {run_dir} is not a run directory (no config.yaml)")
        base = TrainConfig.from_dict(yaml.safe_load(cfg_file.read_text()) or {})
    else:
        base = resume_config(path)
    overrides = {k: v for k, v in vars(args).items()
                 if k in base.to_dict() and v is not None and k not in ("preset", "out", "name")}
    cfg = base.replace(**overrides, out=str(run_dir.parent), name=run_dir.name)
    cfg.validate()
    return cfg, str(path)


def run_train(args: argparse.Namespace) -> int:
    if args.resume:
        cfg, resume = _resolve_resume(args)
    else:
        if args.allow_data_change:
            raise UsageError("--allow-data-change: only with --resume")
        if args.restart and not args.name:
            raise UsageError("--restart: give the run to start over with --resume RUN or --name NAME")
        cfg, resume = config_from_args(args), None
    if args.dry_run:
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0
    if args.benchmark:
        return _bench(cfg, warmup=5, iters=20)
    from gankit.train.loop import train
    from gankit.train.signals import Interrupted

    try:
        train(cfg, resume=resume, restart=args.restart, allow_data_change=args.allow_data_change)
    except Interrupted as stop:
        print(f"gankit train: {stop.message or 'interrupted'}", file=sys.stderr, flush=True)
        return stop.exit_code
    return 0


def run_bench(args: argparse.Namespace) -> int:
    return _bench(config_from_args(args), args.warmup, args.iters)


def _bench(cfg: TrainConfig, warmup: int, iters: int) -> int:
    """Full training steps (D + G, optimisers included) on real batches.

    Under torchrun every rank steps and rank 0 reports; images/s counts the
    global batch, i.e. all ranks together.
    """
    import tempfile

    import torch

    from gankit.train import distributed as dist_util
    from gankit.train.loop import Trainer

    if warmup < 0 or iters < 1:
        raise UsageError("--iters: must be >= 1 (and --warmup >= 0)")
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg.replace(out=tmp, name="bench", tensorboard=False))
        order = trainer.batches.order(1)
        B = trainer.batches.batch
        stats = torch.zeros(11, device=trainer.device)

        def step(i: int) -> None:
            j = i % trainer.batches.iters
            trainer.train_step(trainer.batches.get(order[j * B:(j + 1) * B]), stats, log_now=False)

        for i in range(warmup):
            step(i)
        _sync(trainer.device)
        t0 = time.perf_counter()
        for i in range(iters):
            step(warmup + i)
        _sync(trainer.device)
        dt = time.perf_counter() - t0
        dist_util.shutdown(trainer.dist)
    if trainer.rank0:
        c = trainer.cfg
        where = f"{torch.get_num_threads()} threads" if trainer.device.type == "cpu" else torch.cuda.get_device_name(trainer.device)
        print(f"device: {trainer.device} ({where}), {trainer.dist.world} process(es)  precision: {c.precision}  "
              f"channels_last: {c.channels_last}  compile: {c.compile}")
        print(f"model: {c.model} {trainer.shape[1]}x{trainer.shape[2]}x{trainer.shape[0]}  loss: {c.loss}  "
              f"batch: {c.batch}  timed: {iters} steps after {warmup} warm-up steps")
        print(f"ms/step: {1000 * dt / iters:.1f}")
        print(f"steps/s: {iters / dt:.2f}")
        print(f"images/s: {iters * c.batch / dt:.1f}")
    return 0


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use `gankit train`")
