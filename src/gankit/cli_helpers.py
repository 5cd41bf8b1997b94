"""What every command's parser shares: the help layout and argparse types.

The command modules (``gankit.data.cli``, ``gankit.train.cli`` ...) import
these from here, below them, while `gankit.cli` on top loads the command
modules by name; nothing imports back up into `gankit.cli`.
"""
from __future__ import annotations

import argparse

from gankit.device import DEVICE_HELP


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


CHECKPOINT_HELP = ("best (the best evaluated state, checkpoints/best.pt), last (the newest), a file, or a name "
                   "in checkpoints/ (default: best when the run has one, else last)")


def add_generator_flags(p: argparse.ArgumentParser, verb: str = "use", device: str | None = "auto") -> None:
    """--checkpoint, --no-ema and (unless ``device`` is None) --device: which
    generator of a run a command takes, and where it runs it."""
    p.add_argument("--checkpoint", default=None, help=CHECKPOINT_HELP)
    p.add_argument("--no-ema", action="store_true", help=f"{verb} the raw generator instead of its EMA")
    if device is not None:
        p.add_argument("--device", default=device, help=DEVICE_HELP)
