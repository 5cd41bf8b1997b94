"""What every command's parser shares: the help layout and argparse types.

The command modules (``gankit.data.cli``, ``gankit.train.cli`` ...) import
these from here, below them, while `gankit.cli` on top loads the command
modules by name; nothing imports back up into `gankit.cli`.
"""
from __future__ import annotations

import argparse


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
