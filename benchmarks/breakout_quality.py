"""How good are a Breakout run's samples, checkpoint by checkpoint?  Measured.

`breakout_samples.py` answers "is every part of the screen there?".  This
script adds what a share of single paddles cannot see:

- paddle_w1: where the paddles are.  The 1-D Wasserstein distance between the
  single paddles' x positions in generated and in real frames, in units of
  the frame width (0.03 = two pixels at 64 wide).  A generator that draws one
  paddle at the same three places scores a high share and a bad W1;
- ball: the share of frames showing exactly one ball (a small red blob in the
  empty play field between the bricks and the paddle) against the real
  share, and the W1 of its x and y positions;
- fid: FID with the project's own `dataset` extractor (trained on the real
  frames, cached beside the dataset; no download).

Each figure comes with its floor: the same number between two disjoint
halves of the real frames (generated frames are compared with the first
half), so "W1 0.02" can be read against what sampling noise alone gives.

    python benchmarks/breakout_quality.py runs/00000-breakout              # every checkpoint of the run
    python benchmarks/breakout_quality.py runs/00000-breakout --num 1000 --json q.json
    python benchmarks/breakout_quality.py runs/00000-breakout --checkpoint best.pt

Targets (docs/presets/breakout.md): single paddle >= 0.95, paddle W1 <=
0.03, ball share within 0.05 of real, FID within 2x of real-vs-real.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from breakout_samples import PLAYFIELD_COLS, check_frame  # noqa: E402

BALL_ROWS = slice(31, 54)  # below the lowest brick row (29), above the paddle band (54)


def ball_at(frame: np.ndarray) -> tuple[float, float] | None:
    """Centre (row, col) of exactly one ball in the open play field, else None.

    The 2x4-pixel ball of the 210x160 screen becomes a dim red blob of 1-6
    pixels at 64x64; anything larger or more spread out is not a ball."""
    band = frame[BALL_ROWS, PLAYFIELD_COLS].astype(int)
    r, g, b = band[..., 0], band[..., 1], band[..., 2]
    red = (r >= 40) & (r - g >= 15) & (r - b >= 15)
    ys, xs = np.nonzero(red)
    if not 1 <= len(ys) <= 8 or np.ptp(ys) > 3 or np.ptp(xs) > 3:
        return None
    return BALL_ROWS.start + float(ys.mean()), PLAYFIELD_COLS.start + float(xs.mean())


def w1(a: list[float], b: list[float]) -> float:
    """1-D Wasserstein distance; NaN when either side is empty."""
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(a, b)) if a and b else float("nan")


def positions(frames: np.ndarray) -> dict[str, object]:
    """Per-set facts: single-paddle share and x's, ball share and (y, x)'s, all in frame units."""
    width, height = frames.shape[2], frames.shape[1]
    paddles, balls = [], []
    for f in frames:
        c = check_frame(f)
        if c["paddle_at"] is not None:
            paddles.append(c["paddle_at"] / width)
        at = ball_at(f)
        if at is not None:
            balls.append((at[0] / height, at[1] / width))
    return {"paddle": len(paddles) / len(frames), "paddle_x": paddles,
            "ball": len(balls) / len(frames), "ball_y": [y for y, _ in balls], "ball_x": [x for _, x in balls]}


def compare(fake: dict, real: dict) -> dict[str, float]:
    """Generated (or second real half) against the reference real half."""
    return {
        "paddle": fake["paddle"],
        "paddle_w1": w1(fake["paddle_x"], real["paddle_x"]),
        "ball": fake["ball"],
        "ball_gap": abs(fake["ball"] - real["ball"]),
        "ball_w1_x": w1(fake["ball_x"], real["ball_x"]),
        "ball_w1_y": w1(fake["ball_y"], real["ball_y"]),
    }


class FID:
    """FID against a fixed real half with the `dataset` extractor; the encoder is cached per dataset."""

    def __init__(self, dataset, real_a: np.ndarray, real_b: np.ndarray) -> None:
        from gankit.metrics.registry import get_extractor

        self.extractor = get_extractor("dataset", dataset=dataset, device="cpu")
        self.ref = self.features(real_a)
        self.floor = self.score(real_b)

    def features(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, C) uint8 -> (N, dim) float64."""
        return self.extractor.features(frames[i:i + 256] for i in range(0, len(frames), 256))

    def score(self, frames: np.ndarray) -> float:
        from gankit.metrics.fid import fid

        return float(fid(self.ref, self.features(frames)))


def checkpoints(run: Path, only: str | list[Path] | None) -> list[Path]:
    """`only` may name one checkpoint or list several (benchmarks/breakout_long.py picks them by kimg)."""
    folder = run / "checkpoints"
    if isinstance(only, list):
        return only
    if only:
        path = Path(only) if Path(only).is_file() else folder / only
        return [path]
    found = sorted(p for p in folder.glob("ckpt-*.pt"))
    return found + ([folder / "best.pt"] if (folder / "best.pt").is_file() else [])


def kimg_of(path: Path) -> str:
    m = re.match(r"ckpt-(\d+)\.pt$", path.name)
    return f"{int(m.group(1)) / 1000:.3f}" if m else path.stem


def evaluate_run(run: Path, num: int, seed: int, only: str | list[Path] | None = None,
                 with_fid: bool = True) -> dict:
    from gankit.data import load_dataset
    from gankit.monitor.images import to_uint8
    from gankit.sample import generate, load_generator
    from gankit.train.rundir import read_config

    dataset = load_dataset(read_config(run)["data"])
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(dataset), min(2 * num, len(dataset)), replace=False)
    half = len(idx) // 2
    real_a = np.asarray(dataset.images[np.sort(idx[:half])])
    real_b = np.asarray(dataset.images[np.sort(idx[half:2 * half])])
    ref = positions(real_a)
    result = {"real_vs_real": compare(positions(real_b), ref), "real": {"paddle": ref["paddle"], "ball": ref["ball"]},
              "checkpoints": {}}
    fid = FID(dataset, real_a, real_b) if with_fid else None
    if fid is not None:
        result["real_vs_real"]["fid"] = fid.floor
    for path in checkpoints(run, only):
        fake = to_uint8(generate(load_generator(run, checkpoint=path), half, seed=seed))
        row = compare(positions(fake), ref)
        if fid is not None:
            row["fid"] = fid.score(fake)
        result["checkpoints"][kimg_of(path)] = row
    return result


def print_table(result: dict) -> None:
    cols = ("paddle", "paddle_w1", "ball", "ball_gap", "ball_w1_x", "ball_w1_y", "fid")
    print(f"{'kimg':>8s} " + " ".join(f"{c:>9s}" for c in cols))
    rows = {"real/real": result["real_vs_real"], **result["checkpoints"]}
    for name, row in rows.items():
        print(f"{name:>8s} " + " ".join(f"{row.get(c, float('nan')):9.3f}" for c in cols))
    print(f"real frames: single paddle {result['real']['paddle']:.2f}, ball {result['real']['ball']:.2f}")


def finish(result: Any, print_tables: Callable[[Any], None], json_path: Path | None) -> int:
    """The end of each Breakout script: print its table(s), write the figures with --json; exit 0."""
    print_tables(result)
    if json_path:
        json_path.write_text(json.dumps(result, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="run directory (runs/NAME)")
    parser.add_argument("--num", type=int, default=500, help="generated frames per checkpoint (and per real half)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", help="one checkpoint (file or name in checkpoints/) instead of all")
    parser.add_argument("--no-fid", action="store_true", help="skip FID (no encoder training on a new dataset)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    result = evaluate_run(args.run, args.num, args.seed, args.checkpoint, with_fid=not args.no_fid)
    return finish(result, print_table, args.json)


if __name__ == "__main__":
    sys.exit(main())
