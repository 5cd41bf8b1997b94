"""The `gankit` command line.

Each command lives next to the code it drives and exposes two functions:
``add_parser(subparsers)`` that declares its flags, and a ``run(args)`` set as
the parser's default ``func``.  This module only assembles them, so
``gankit --help`` and ``gankit <command> --help`` always list every command and
flag with its default.

Exit statuses: 0 success, 1 training failed or the machine stopped it
(`EnvironmentProblem`: disk full, read-only folder, locked run), 2 bad flag or input (argparse's
own convention, which `UsageError` follows).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from gankit import __version__
from gankit.errors import EnvironmentProblem, TrainingFailed, UsageError

# command name -> module that defines add_parser(subparsers) and run(args)
COMMANDS = {
    "data": "gankit.data.cli",
    "train": "gankit.train.cli",
    "bench": "gankit.train.cli",
    "sample": "gankit.sample",
    "interpolate": "gankit.sample",
    "report": "gankit.monitor.cli",
    "eval": "gankit.metrics.cli",
    "export": "gankit.export",
    "explore": "gankit.explore.server",
    "project": "gankit.project",
}
# one line per command for `gankit --help`, which must not import torch
SUMMARY = {
    "data": "make a dataset: atari, folder, fetch (CSV of URLs), show",
    "train": "train a GAN on a dataset",
    "bench": "measure training steps/s and images/s for a config",
    "sample": "write images from a trained generator",
    "interpolate": "animated walk through latent space",
    "report": "redraw plots, GIF and report.html of a run",
    "eval": "FID, KID, precision/recall, density/coverage",
    "export": "write the generator as safetensors, ONNX or TorchScript",
    "explore": "browse a generator in a local web page",
    "project": "find the latents that reproduce given images",
}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults and keeps the line breaks of descriptions."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        # `gankit train` flags default to None (so a preset can fill them) and
        # state the real default in their own help text: do not add a second.
        # A default of None or "" means "not given": nothing worth showing.
        help_text = action.help or ""
        if "(default: " in help_text or action.default in (None, ""):
            return help_text
        return super()._get_help_string(action)


def positive_int(text: str) -> int:
    """argparse type for counts: a bad value makes argparse name the flag and exit 2."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The full parser of the command named in ``argv`` (all of them when
    ``argv`` is None); other commands get a placeholder with their summary,
    so `gankit --help` and `gankit data ...` do not import torch."""
    parser = argparse.ArgumentParser(
        prog="gankit",
        description="Train GANs on images and watch them learn.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"gankit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    wanted = [a for a in (argv or []) if not a.startswith("-")][:1] if argv is not None else list(COMMANDS)
    loaded: set[str] = set()
    for name in COMMANDS:
        module_name = COMMANDS[name]
        if name in wanted and module_name not in loaded:
            loaded.add(module_name)
            importlib.import_module(module_name).add_parser(sub)
    for name in COMMANDS:
        if name not in sub.choices:
            sub.add_parser(name, help=SUMMARY.get(name, ""), add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except UsageError as err:
        parser_for = getattr(args, "_parser", parser)
        parser_for.print_usage(sys.stderr)
        print(f"gankit {args.command}: error: {err}", file=sys.stderr)
        return 2
    except EnvironmentProblem as err:
        print(f"gankit {args.command}: error: {err}", file=sys.stderr)
        return 1
    except TrainingFailed as err:
        print(f"gankit {args.command}: training failed: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
