"""Stop training cleanly on SIGTERM and SIGINT.

SLURM, Kubernetes and spot instances send SIGTERM some seconds before they
kill a job; Ctrl-C sends SIGINT.  The first one only raises a flag: the loop
finishes the step it is in, writes a complete checkpoint and the report, and
ends with `Interrupted` (exit 143 / 130 from the CLI).  A second signal means
"now": `Interrupted` is raised at once with ``aborted`` set and nothing more is
written (the last checkpoint on disk stays intact, writes are atomic).

Handlers can only be installed from the main thread; elsewhere (a notebook
worker thread) the previous behaviour is kept.
"""
from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(KeyboardInterrupt):
    """Training stopped by a signal; ``exit_code`` is 128 + the signal number.

    A KeyboardInterrupt, so code that catches ``Exception`` does not swallow it."""

    def __init__(self, signum: int, message: str = "", aborted: bool = False) -> None:
        super().__init__(message or signal_name(signum))
        self.signum = signum
        self.message = message
        self.aborted = aborted

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class GracefulStop:
    """Context manager: while active, the first SIGTERM/SIGINT sets ``signum``;
    the second raises `Interrupted(aborted=True)` from the handler."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
            print(f"\n{signal_name(signum)} received: finishing this step, then writing a checkpoint "
                  "(send it again to stop at once without saving)", file=sys.stderr, flush=True)
            return
        raise Interrupted(signum, f"stopped at once by a second {signal_name(signum)}; nothing saved after "
                                  "the last checkpoint", aborted=True)

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
