"""`gankit report RUN`: rebuild a run's plots, progress GIF and report.html.

Works from the run directory's files alone (metrics.jsonl, health.jsonl,
samples/, config.yaml), after a run or while it is still going, so a user can
look at a run on another machine or after a crash.  Torch is not imported.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from gankit.errors import UsageError
from gankit.inputs import expect_run, kind_of
from gankit.runpaths import RunDir


def add_parser(sub: argparse._SubParsersAction) -> None:
    from gankit.cli_helpers import HelpFormatter

    p = sub.add_parser(
        "report",
        help="rebuild plots, progress.gif and report.html of a run",
        description=("Redraw plots/*.png, progress.gif and report.html of a run directory from its files\n"
                     "(metrics.jsonl, health.jsonl, samples/, config.yaml) and print the verdict.\n"
                     "Safe to run while the run is still training."),
        formatter_class=HelpFormatter,
    )
    p.add_argument("run", metavar="RUN", help="run directory, e.g. runs/00001-breakout")
    p.add_argument("--quiet", action="store_true", help="print only the path of report.html")
    p.set_defaults(func=run, _parser=p)


def run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run)
    files = RunDir(run_dir)
    if not run_dir.is_dir() or kind_of(run_dir) in ("dataset", "images", "runs"):
        expect_run(run_dir)  # says what it is instead
        raise UsageError(f"RUN: {run_dir} is a checkpoint file; give its run directory",
                         hint=f"gankit report {RunDir.of(run_dir)}")
    if not any(path.exists() for path in (files.metrics, files.health, files.samples)):
        raise UsageError(f"RUN: {run_dir} is not a gankit run directory (no metrics.jsonl, health.jsonl or samples/)")
    from gankit.monitor.report import build_outputs

    verdict = build_outputs(run_dir)
    if not args.quiet:
        print(verdict)
    print(files.report)
    return 0
