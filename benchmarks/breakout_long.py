"""Does a Breakout run stay healthy far past its budget?  Issue 16's criteria, run by run.

`make run` stops at ~80 kimg, but a faster machine or a user who asks for
more trains on; the recipe must hold there too.  For each run (one per seed)
and each budget this prints, from the run's own records and checkpoints:

- D's accuracy on real images: the largest mean over 8 consecutive logs
  after the first 20 kimg, up to the budget (healthy: below 0.90);
- the health warnings up to the budget (healthy: no `d_saturation`);
- the checkpoint nearest the budget, scored as benchmarks/breakout_quality.py
  does: single-paddle share, paddle-x W1, ball share, FID (dataset extractor);
- the paddle hold: at each --hold kimg the single-paddle share is no more
  than 0.03 below the best earlier one.

    python benchmarks/breakout_long.py /tmp/b16/seed0 /tmp/b16/seed1 /tmp/b16/seed2 \\
        --at 80,250,800 --hold 100,200,400,800 --num 500 --json long.json

A run only needs checkpoints near the budgets (`--keep 100` keeps one per
epoch, 12 kimg on the Breakout frames); budgets a run has not reached are
left out.  Results: docs/presets/breakout.md.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from breakout_quality import evaluate_run, finish  # noqa: E402
from remedies import WINDOW, windows  # noqa: E402

SETTLE_KIMG = 20.0  # issue 16: D's accuracy is judged after the first 20 kimg
HOLD_SLACK = 0.03  # issue 16: the paddle share may fall at most this far below its best earlier value


def checkpoint_kimgs(run: Path) -> dict[float, Path]:
    found = {}
    for path in (run / "checkpoints").glob("ckpt-*.pt"):
        m = re.match(r"ckpt-(\d+)\.pt$", path.name)
        if m:
            found[int(m.group(1)) / 1000] = path
    return found


def nearest(found: dict[float, Path], kimg: float, tolerance: float) -> float | None:
    """The checkpoint kimg closest to `kimg` (the earlier on a tie), None if none lies within `tolerance`."""
    close = [k for k in found if abs(k - kimg) <= tolerance]
    return min(close, key=lambda k: (abs(k - kimg), k)) if close else None


def health_until(run: Path, until: float) -> dict[str, Any]:
    """D's worst 8-log window after SETTLE_KIMG and the warnings, both up to `until` kimg."""
    from gankit.monitor.events import PROBLEM_KINDS, load_events, load_records, train_records

    records = [r for r in train_records(load_records(run / "metrics.jsonl")) if SETTLE_KIMG < r["kimg"] <= until]
    wins = windows([r["acc_real"] for r in records])
    worst = max(range(len(wins)), key=wins.__getitem__) if wins else None
    events = [f"{e.kind}@{e.kimg:.0f}" for e in load_events(run / "health.jsonl")
              if e.kimg <= until and e.kind in PROBLEM_KINDS]
    return {"acc_real_max_window": wins[worst] if worst is not None else float("nan"),
            "at_kimg": records[worst + WINDOW - 1]["kimg"] if worst is not None else float("nan"),
            "events": events}


def hold(shares: dict[float, float], slack: float = HOLD_SLACK) -> list[str]:
    """Where the share fell more than `slack` below the best earlier one (empty: it held)."""
    falls, best = [], float("-inf")
    for kimg in sorted(shares):
        if shares[kimg] < best - slack:
            falls.append(f"{shares[kimg]:.2f} at {kimg:g} kimg < best earlier {best:.2f}")
        best = max(best, shares[kimg])
    return falls


def judge_run(run: Path, at: list[float], holds: list[float], num: int, seed: int, with_fid: bool) -> dict[str, Any]:
    found = checkpoint_kimgs(run)
    tolerance = 7.0  # half an epoch of the Breakout frames, plus a little
    wanted = {k: nearest(found, k, tolerance) for k in sorted(set(at) | set(holds))}
    paths = sorted({found[k] for k in wanted.values() if k is not None})
    quality = evaluate_run(run, num, seed, only=paths, with_fid=with_fid) if paths else {"checkpoints": {}}
    rows = quality["checkpoints"]  # keyed by kimg as "%.3f", breakout_quality.kimg_of
    result: dict[str, Any] = {"run": str(run), "budgets": {}, "hold": {}}
    for target in at:
        k = wanted[target]
        if k is not None:
            result["budgets"][f"{target:g}"] = {"checkpoint_kimg": k, **rows[f"{k:.3f}"], **health_until(run, k)}
    shares = {k: rows[f"{k:.3f}"]["paddle"] for t in holds if (k := wanted[t]) is not None}
    result["hold"] = {"shares": {f"{k:g}": v for k, v in sorted(shares.items())}, "falls": hold(shares)}
    result["real_vs_real"], result["real"] = quality.get("real_vs_real", {}), quality.get("real", {})
    return result


def print_tables(results: list[dict[str, Any]]) -> None:
    print("| run | budget (checkpoint) kimg | D acc. real, max 8-log mean | warnings | single paddle | paddle W1 "
          "| ball (real) | FID (real/real) |")
    print("|---|---|---|---|---|---|---|---|")
    for res in results:
        floor, real = res["real_vs_real"], res["real"]
        for target, b in res["budgets"].items():
            events = ", ".join(b["events"]) or "none"
            print(f"| {Path(res['run']).name} | {target} ({b['checkpoint_kimg']:g}) | {b['acc_real_max_window']:.3f} "
                  f"(at {b['at_kimg']:.0f}) | {events} | {b['paddle']:.2f} | {b['paddle_w1']:.3f} "
                  f"| {b['ball']:.2f} ({real.get('ball', float('nan')):.2f}) "
                  f"| {b.get('fid', float('nan')):.3f} ({floor.get('fid', float('nan')):.3f}) |")
    print()
    print("| run | single paddle at the hold points | held within 0.03 |")
    print("|---|---|---|")
    for res in results:
        shares = ", ".join(f"{k}: {v:.2f}" for k, v in res["hold"]["shares"].items())
        print(f"| {Path(res['run']).name} | {shares} | {'; '.join(res['hold']['falls']) or 'yes'} |")


def _kimgs(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run directories, one per seed")
    parser.add_argument("--at", type=_kimgs, default=[80.0, 250.0, 800.0], help="budgets in kimg (comma-separated)")
    parser.add_argument("--hold", type=_kimgs, default=[100.0, 200.0, 400.0, 800.0],
                        help="kimg at which the single-paddle share must hold")
    parser.add_argument("--num", type=int, default=500, help="generated frames per checkpoint (and per real half)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-fid", action="store_true", help="skip FID")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    for run in args.runs:
        if not (run / "metrics.jsonl").is_file():
            parser.error(f"{run}: not a run directory (no metrics.jsonl)")
    results = [judge_run(run, args.at, args.hold, args.num, args.seed, not args.no_fid) for run in args.runs]
    return finish(results, print_tables, args.json)


if __name__ == "__main__":
    sys.exit(main())
