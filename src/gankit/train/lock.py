"""One writer per run directory.

Two processes training into the same folder interleave metrics.jsonl, race
on temporary files and leave checkpoints that disagree with config.yaml.  So
the process that writes a run holds an OS lock (``flock``) on ``RUN/.lock``
for its whole life.  The kernel drops the lock when the process ends, however
it ends (even ``kill -9``), so a lock left by a dead process is simply taken
over; the file itself only carries the holder's PID for the message a second
writer gets.  Under torchrun only rank 0 takes it.
"""
from __future__ import annotations

import os
from pathlib import Path

from gankit.errors import UsageError
from gankit.runpaths import RunDir

LOCK_FILE = RunDir.LOCK

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, no lock
    fcntl = None  # type: ignore[assignment]


class RunLocked(UsageError):
    """Another live process holds the run directory."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """``acquire()`` or raise `RunLocked` naming the holder; ``release()`` when done."""

    def __init__(self, run_dir: str | os.PathLike[str], flag: str = "--resume") -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.flag = flag
        self._fd: int | None = None
        self.stale_pid: int | None = None  # PID found in a lock file whose process is gone

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        if fcntl is None or self._fd is not None:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"PID {holder}" if holder else "another process"
            raise RunLocked(f"{self.flag}: run directory {self.run_dir} is being written by another gankit process "
                            f"({who}); wait for it to end or stop it (kill {holder or 'PID'}), "
                            "then try again") from None
        previous = _read_pid(fd)
        if previous and previous != os.getpid() and not _pid_alive(previous):
            self.stale_pid = previous
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
        except OSError:
            pass
        os.close(self._fd)  # closing the descriptor drops the flock
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
