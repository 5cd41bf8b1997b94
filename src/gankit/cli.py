"""The `gankit` command line.

Each command lives next to the code it drives and exposes two functions:
``add_parser(subparsers)`` that declares its flags, and a ``run(args)`` set as
the parser's default ``func``.  This module only assembles them, so
``gankit --help`` and ``gankit <command> --help`` always list every command and
flag with its default.

Every error reaches the user the same way, whether argparse found it while
parsing or a command found it later: one line ``gankit <command>: error: ...``
and one ``hint:`` line, no usage dump and no traceback (``--debug`` or
``GANKIT_DEBUG=1`` shows the traceback).  Exit statuses: 0 success, 1 training
failed or the machine stopped it (`EnvironmentProblem`: disk full, read-only
folder), 2 bad flag or input (a run locked by another writer too) (argparse's own convention, which
`UsageError` follows).
"""
from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from gankit import __version__
from gankit.cli_helpers import HelpFormatter, positive_int  # noqa: F401 - still imported from here by some commands
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
    "runs": "gankit.monitor.runs",
    "presets": "gankit.train.presets_cli",
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
    "runs": "list the runs under a folder: status, kimg, best score, last change",
    "presets": "list the presets, or show one preset's values and why",
    "export": "write the generator as safetensors, ONNX or TorchScript",
    "explore": "browse a generator in a local web page",
    "project": "find the latents that reproduce given images",
}
DEBUG_ENV = "GANKIT_DEBUG"
# errno values that mean "the machine said no", not "the code is wrong"
ENVIRONMENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS, errno.EDQUOT}


class Parser(argparse.ArgumentParser):
    """argparse with gankit's error style: one error line and one hint line, no usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\nhint: `{self.prog} --help` lists every flag and its default\n")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The full parser of the command named in ``argv`` (all of them when
    ``argv`` is None); other commands get a placeholder with their summary,
    so `gankit --help` and `gankit data ...` do not import torch."""
    parser = Parser(
        prog="gankit",
        description="Train GANs on images and watch them learn.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"gankit {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help=f"show the full traceback of an error (also {DEBUG_ENV}=1); allowed anywhere on the line")
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


def debug_wanted(argv: Sequence[str]) -> bool:
    return "--debug" in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def explain(err: BaseException, command: str) -> tuple[int, str, str] | None:
    """(exit status, error line, hint line) for an error the user can act on; None for a bug."""
    prefix = f"gankit {command}: error:"
    if isinstance(err, UsageError):
        return (2, f"{prefix} {_one_line(err)}",
                err.hint or f"`gankit {command} --help` lists every flag and its default")
    if isinstance(err, EnvironmentProblem):
        return (1, f"{prefix} {_one_line(err)}",
                err.hint or f"nothing is wrong with the flags; add --debug (or {DEBUG_ENV}=1) for the traceback")
    if isinstance(err, TrainingFailed):
        return (1, f"{prefix} training failed: {_one_line(err)}",
                "see the run's log.txt and health.jsonl; the last good checkpoint is kept")
    if isinstance(err, OSError) and err.errno in ENVIRONMENT_ERRNOS:
        where = f": {err.filename}" if err.filename else ""
        return (1, f"{prefix} {err.strerror or err}{where}",
                "free some space, fix the folder's permissions, or write somewhere else (--out)")
    return None


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_wanted(argv)
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - sorted by explain(); bugs are re-raised
        prog = getattr(getattr(args, "_parser", None), "prog", "")  # "gankit data show" for a nested command
        explained = explain(err, prog.removeprefix("gankit ") if prog.startswith("gankit ") else args.command)
        if explained is None or debug:
            raise
        status, line, hint = explained
        print(line, file=sys.stderr)
        print(f"hint: {hint}", file=sys.stderr)
        return status
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
