"""File-system failures as one line a user can act on.

A full disk, a read-only mount or a folder without write permission is not a
bug in gankit and not a wrong flag: the command stops with an
`EnvironmentProblem` that names the path, the reason and the fix, instead of
a chain of tracebacks.  torch wraps the OSError of a failed write in a
RuntimeError ("unexpected pos ..."), so the cause is looked up along the
exception's chain.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

from gankit.errors import EnvironmentProblem

REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for this file system or limit",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}
FIXES = {
    errno.ENOSPC: "free some space there or use a folder on another disk",
    errno.EDQUOT: "free some space there or use a folder on another disk",
    errno.EFBIG: "use a folder on another file system",
    errno.EROFS: "use a writable folder",
    errno.EACCES: "use a folder you can write to (or fix its permissions)",
    errno.EPERM: "use a folder you can write to (or fix its permissions)",
}


def os_error_in(err: BaseException | None) -> OSError | None:
    """The first OSError with an errno along ``err``'s cause/context chain."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno is not None:
            return err
        err = err.__cause__ or err.__context__
    return None


def is_environment(err: OSError) -> bool:
    """True for the errors the machine causes (space, permissions, read-only)."""
    return err.errno in REASONS


def problem(err: OSError, path: str | os.PathLike[str] | None, doing: str, then: str = "") -> EnvironmentProblem:
    """``<doing> <path>: <reason>; <fix>[, then <then>]`` as an EnvironmentProblem."""
    where = Path(path) if path is not None else (Path(err.filename) if err.filename else None)
    reason = REASONS.get(err.errno or 0, err.strerror or str(err))
    fix = FIXES.get(err.errno or 0, "check the folder and the disk")
    text = f"{doing} {where}: {reason}; {fix}" if where is not None else f"{doing}: {reason}; {fix}"
    return EnvironmentProblem(text + (f", then {then}" if then else ""))
