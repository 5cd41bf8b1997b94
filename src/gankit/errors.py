"""Errors a user can fix by changing what they typed, or by fixing the machine.

`UsageError` is raised anywhere a flag value or an input is wrong (an unknown
game, a resolution a model cannot build, a run directory that does not
exist).  The CLI turns it into ``gankit <command>: error: <message>`` and exit
status 2, the same status argparse uses for a bad flag, so scripts see one
convention.  The message should start with the flag it is about, e.g.
``--game: ...``.  Both classes take an optional ``hint``: the one line the CLI
prints under the error saying what to type instead.
"""
from __future__ import annotations


class _Explained(Exception):
    def __init__(self, message: str = "", *, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class UsageError(_Explained, ValueError):
    """A bad flag value or input; the CLI prints it and exits with status 2."""


class EnvironmentProblem(_Explained, RuntimeError):
    """The machine, not the user's flags, stopped the command: a full disk, a
    read-only or unwritable folder.  (A run directory locked by another writer
    is a `UsageError`, exit 2: the fix is to pick another run.)  The CLI
    prints one line naming the path and the fix, and exits with status 1."""


class TrainingFailed(RuntimeError):
    """Training stopped on purpose (for example non-finite losses that three
    roll-backs did not cure); the CLI prints it and exits with status 1."""
