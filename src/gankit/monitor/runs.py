"""`gankit runs [--out runs]`: every run under a folder as one table row.

Name, status (from summary.json, written when a run closes; a run without one
is still going or was killed), kimg reached, best FID if the run evaluated
itself, and when a file of the run last changed.  Read from the run
directories' files alone, without importing torch, so it is instant and works
while runs are training.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from gankit.errors import UsageError
from gankit.inputs import is_run
from gankit.monitor.events import read_jsonl
from gankit.runpaths import RunDir

RECENT_S = 300  # a run without summary.json whose files changed this recently is probably training


def add_parser(sub: argparse._SubParsersAction) -> None:
    from gankit.cli_helpers import HelpFormatter

    p = sub.add_parser("runs", help="list the runs under a folder: status, kimg, best score, last change",
                       formatter_class=HelpFormatter,
                       description="One line per run directory under --out, oldest first.")
    p.add_argument("--out", default="runs", help="the folder holding run directories (train's --out)")
    p.set_defaults(func=run, _parser=p)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if not out.is_dir():
        raise UsageError(f"--out: no such folder {out}",
                         hint="runs are made by `gankit train`; its --out is where they go")
    rows = [describe(p) for p in sorted(out.iterdir()) if is_run(p)]
    if not rows:
        print(f"no runs under {out}")
        return 0
    print(table(rows))
    return 0


def describe(run_dir: Path, now: float | None = None) -> dict[str, str]:
    """One run's row: name, status, kimg, best, changed."""
    now = time.time() if now is None else now
    kimg, best = 0.0, math.inf
    for rec in read_jsonl(RunDir(run_dir).metrics):
        if rec.get("kind", "train") == "train":
            kimg = float(rec.get("kimg", kimg))
        fid = rec.get("fid")
        if rec.get("kind") == "eval" and isinstance(fid, (int, float)) and math.isfinite(fid):
            best = min(best, float(fid))
    changed = _last_change(run_dir)
    return {"name": run_dir.name, "status": _status(run_dir, now - changed), "kimg": f"{kimg:.1f}",
            "best": f"FID {best:.2f}" if math.isfinite(best) else "-",
            "changed": time.strftime("%Y-%m-%d %H:%M", time.localtime(changed)) + f" ({_ago(now - changed)})"}


def _status(run_dir: Path, idle_s: float) -> str:
    try:
        summary = json.loads(RunDir(run_dir).summary.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "training?" if idle_s < RECENT_S else "stopped (not closed)"
    status = str(summary.get("status", "?"))
    stopped = summary.get("stopped_by")
    if status == "finished" and stopped in ("epochs", "kimg", "minutes"):
        status += f" ({stopped})"
    return status


def _last_change(run_dir: Path) -> float:
    newest = run_dir.stat().st_mtime
    files = RunDir(run_dir)
    for path in (files.metrics, files.log, files.summary, files.health, files.checkpoints):
        if path.exists():
            newest = max(newest, path.stat().st_mtime)
    return newest


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def table(rows: list[dict[str, str]]) -> str:
    heads = {"name": "run", "status": "status", "kimg": "kimg", "best": "best", "changed": "last change"}
    widths = {k: max(len(heads[k]), *(len(r[k]) for r in rows)) for k in heads}
    line = lambda r: "  ".join(r[k].rjust(widths[k]) if k == "kimg" else r[k].ljust(widths[k]) for k in heads).rstrip()  # noqa: E731
    return "\n".join([line(heads)] + [line(r) for r in rows])
