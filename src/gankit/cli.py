"""The `gankit` command line.

Each command lives next to the code it drives and exposes two functions:
``add_parser(subparsers)`` that declares its flags, and a ``run(args)`` set as
the parser's default ``func``.  This module only assembles them, so
``gankit --help`` and ``gankit <command> --help`` always list every command and
flag with its default.

Exit statuses: 0 success, 1 training failed, 2 bad flag or input (argparse's
own convention, which `UsageError` follows).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from gankit import __version__
from gankit.errors import TrainingFailed, UsageError

# command name -> module that defines add_parser(subparsers) and run(args)
COMMANDS = {
    "data": "gankit.data.cli",
    "train": "gankit.train.cli",
    "sample": "gankit.sample",
    "interpolate": "gankit.sample",
    "report": "gankit.monitor.cli",
    "eval": "gankit.metrics.cli",
    "bench": "gankit.train.cli",
}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults and keeps the line breaks of descriptions."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gankit",
        description="Train GANs on images and watch them learn.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"gankit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    seen: set[str] = set()
    for module_name in COMMANDS.values():
        if module_name in seen:
            continue
        seen.add(module_name)
        module = importlib.import_module(module_name)
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except UsageError as err:
        parser_for = getattr(args, "_parser", parser)
        parser_for.print_usage(sys.stderr)
        print(f"gankit {args.command}: error: {err}", file=sys.stderr)
        return 2
    except TrainingFailed as err:
        print(f"gankit {args.command}: training failed: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
