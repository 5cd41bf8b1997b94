"""`gankit train` and `gankit bench`.

Every TrainConfig field is a flag (generated in gankit.config), so the preset,
the flags and the Python API can never drift apart.
"""
from __future__ import annotations

import argparse
import sys
import textwrap

import yaml

from gankit.config import (
    BUDGET_RULE,
    DEFAULT_EPOCHS,
    TrainConfig,
    add_config_flags,
    apply_budget_rule,
    budget_text,
    config_from_args,
    resolve_args,
)
from gankit.errors import UsageError

HELP_HELP = "show this help (with --preset NAME before it: that preset's values)"
RESUME_HELP = ("continue a run: its directory, its name under --out, a checkpoint file, or 'latest' (the most "
               "recently active run under --out); flags given with it change only the budget, rates, logging and "
               "hardware (each change is logged)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    from gankit.cli_helpers import HelpFormatter
    from gankit.presets import PRESETS, describe_presets

    p = sub.add_parser("train", help="train a GAN on a dataset", formatter_class=HelpFormatter, add_help=False,
                       description="Train a GAN. Values come from the defaults, then --preset, then --config FILE,\n"
                                   "then the flags typed, each overriding the one before.\n"
                                   + textwrap.fill(f"Budget: {BUDGET_RULE}.", 78) + "\n\n"
                                   "`gankit train --preset NAME --help` shows the preset's values in place of the "
                                   "defaults.")
    p.add_argument("-h", "--help", action=PresetHelp, help=HELP_HELP)
    p.add_argument("--preset", choices=sorted(PRESETS), default="", metavar="NAME",
                   help="named starting point: " + describe_presets() + " (`gankit presets NAME` shows why each value)")
    p.add_argument("--config", default=None, metavar="FILE.yaml",
                   help="values from a YAML file with the keys of a run's config.yaml (a run's own config.yaml "
                        "works); flags override it")
    p.add_argument("--resume", default=None, help=RESUME_HELP)
    p.add_argument("--restart", action="store_true",
                   help="start the run given by --resume or --name over from scratch in its folder "
                        "(deletes its checkpoints)")
    p.add_argument("--allow-data-change", action="store_true",
                   help="with --resume: continue on a dataset other than the one the run trained on")
    p.add_argument("--dry-run", action="store_true",
                   help="check the dataset (it opens, its size, the batch) and print every resolved value, then exit")
    p.add_argument("--benchmark", action="store_true", help="measure steps/s and images/s for this config and exit")
    add_config_flags(p)
    p.set_defaults(func=run_train, _parser=p)

    b = sub.add_parser("bench", help="measure training steps/s and images/s for a config",
                       formatter_class=HelpFormatter, add_help=False)
    b.add_argument("-h", "--help", action=PresetHelp, help=HELP_HELP)
    b.add_argument("--preset", choices=sorted(PRESETS), default="", metavar="NAME",
                   help="named starting point: " + describe_presets())
    b.add_argument("--config", default=None, metavar="FILE.yaml",
                   help="values from a YAML file (keys of a run's config.yaml)")
    b.add_argument("--warmup", type=int, default=5, help="untimed iterations first")
    b.add_argument("--iters", type=int, default=20, help="timed iterations")
    add_config_flags(b)
    b.set_defaults(func=run_bench, _parser=b)


class PresetHelp(argparse.Action):
    """``--help``; after ``--preset NAME`` each flag's help shows the preset's value and why."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, default: str = argparse.SUPPRESS,
                 help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        from gankit.presets import PRESETS, REASONS

        name = getattr(namespace, "preset", "") or ""
        if name in PRESETS:
            for action in parser._actions:
                if action.dest in PRESETS[name] and action.help:
                    why = REASONS[name].get(action.dest, "").replace("%", "%%")  # argparse formats help with %
                    action.help = (f"{action.help.split(' (default: ')[0]} "
                                   f"[preset {name}: {PRESETS[name][action.dest]!r}"
                                   + (f", {why}" if why else "") + "]")
            parser.description = ((parser.description or "")
                                  + f"\n\nShowing preset {name}: its values are in [brackets].")
        parser.print_help()
        parser.exit()


def _resolve_resume(args: argparse.Namespace) -> tuple[TrainConfig, str, list[str]]:
    """The run to continue and its config: the checkpoint's (learning rates after
    roll-backs included) with the flags given now on top; the Trainer then
    refuses the changes a resume cannot make and logs the others."""
    from gankit.runpaths import RunDir
    from gankit.train.resume import checkpoint_to_resume, find_run, resume_config
    from gankit.train.rundir import read_config

    if args.name:
        raise UsageError("--name: not with --resume (the run keeps its folder); use --resume NAME")
    path = find_run(args.resume, args.out or "runs")
    run = RunDir.of(path)
    run_dir = run.path
    if args.restart or checkpoint_to_resume(path) is None:
        if not run.config.is_file():
            raise UsageError(f"--resume: {run_dir} is not a run directory (no {run.CONFIG})")
        base = TrainConfig.from_dict(read_config(run_dir) or {})
    else:
        base = resume_config(path)
    overrides = {k: v for k, v in vars(args).items()
                 if k in base.to_dict() and v is not None and k not in ("preset", "out", "name")}
    values = base.to_dict()
    notes = apply_budget_rule(values, overrides, "run's config")  # --kimg alone replaces the saved epochs too
    cfg = TrainConfig.from_dict(values).replace(**overrides, out=str(run_dir.parent), name=run_dir.name)
    cfg.validate()
    return cfg, str(path), notes


def run_train(args: argparse.Namespace) -> int:
    notes: list[str] = []
    if args.resume:
        cfg, resume, notes = _resolve_resume(args)
    else:
        if args.allow_data_change:
            raise UsageError("--allow-data-change: only with --resume")
        if args.restart and not args.name:
            raise UsageError("--restart: give the run to start over with --resume RUN or --name NAME")
        (cfg, notes), resume = resolve_args(args), None
    if args.dry_run:
        return dry_run(cfg, notes)
    check_data(cfg)
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


def check_data(cfg: TrainConfig) -> tuple[list[str], dict]:
    """Open the dataset without reading its images and check it against the config:
    returns lines describing it and the values it resolves (resolution)."""
    from gankit.data.dataset import load_dataset
    from gankit.inputs import expect_dataset

    if not cfg.data:
        raise UsageError("--data: no dataset given",
                         hint="make one with `gankit data atari ...` or `gankit data folder ...`")
    ds = load_dataset(expect_dataset(cfg.data))
    H, W = cfg.image_size or (ds.height, ds.width)
    if cfg.batch > len(ds):
        raise UsageError(f"--batch: {cfg.batch} is more than the {len(ds)} images in {cfg.data}",
                         hint=f"use --batch {max(1, len(ds) // 4)} or fewer, or a larger dataset")
    lines = [f"data: {cfg.data}: {len(ds)} images of {ds.height}x{ds.width}x{ds.channels}; "
             f"{len(ds) // cfg.batch} iterations of batch {cfg.batch} per epoch"]
    if (H, W) != (ds.height, ds.width):
        lines.append(f"resolution: images are resized from {ds.height}x{ds.width} to {H}x{W} on load")
    return lines, {"resolution": f"{H}x{W}"}


def dry_run(cfg: TrainConfig, notes: list[str]) -> int:
    """Print every value the run would use, resolved (device, precision, size, budget), then why."""
    from gankit.device import resolve_device

    lines, resolved = check_data(cfg) if cfg.data else (["data: none given (--data is needed to train)"], {})
    device = resolve_device(cfg.device)
    precision = cfg.precision
    if precision == "auto":
        from gankit.train.hardware import pick_precision

        precision = pick_precision(precision, device)
    resolved.update(device=str(device), precision=precision, n_critic=cfg.critic_steps)
    if not (cfg.epochs or cfg.kimg or cfg.minutes):
        resolved["epochs"] = DEFAULT_EPOCHS
    values = {**cfg.to_dict(), **resolved}
    print(yaml.safe_dump(values, sort_keys=False), end="")
    print(f"# budget: {budget_text(cfg)} (the first of --epochs, --kimg and --minutes reached stops the run)")
    for line in notes + lines:
        print(f"# {line}")
    return 0


def run_bench(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    check_data(cfg)
    return _bench(cfg, args.warmup, args.iters)


def _bench(cfg: TrainConfig, warmup: int, iters: int) -> int:
    """Full training steps (D + G, optimisers included) on real batches.

    Under torchrun every rank steps and rank 0 reports; images/s counts the
    global batch, i.e. all ranks together.
    """
    import torch

    from gankit.train.parts import TrainingParts

    if warmup < 0 or iters < 1:
        raise UsageError("--iters: must be >= 1 (and --warmup >= 0)")
    parts = TrainingParts(cfg.replace(tensorboard=False))
    try:
        dt = parts.bench(warmup, iters)
    finally:
        parts.close()
    if parts.rank0:
        c, device = parts.cfg, parts.device
        where = {"cpu": f"{torch.get_num_threads()} threads", "mps": "Apple GPU"}.get(device.type) \
            or torch.cuda.get_device_name(device)
        print(f"device: {device} ({where}), {parts.dist.world} process(es)  precision: {c.precision}  "
              f"channels_last: {c.channels_last}  compile: {c.compile}")
        print(f"model: {c.model} {parts.shape[1]}x{parts.shape[2]}x{parts.shape[0]}  loss: {c.loss}  "
              f"batch: {c.batch}  timed: {iters} steps after {warmup} warm-up steps")
        print(f"ms/step: {1000 * dt / iters:.1f}")
        print(f"steps/s: {iters / dt:.2f}")
        print(f"images/s: {iters * c.batch / dt:.1f}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use `gankit train`")
