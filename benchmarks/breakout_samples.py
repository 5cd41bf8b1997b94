"""Do a run's samples look like Breakout?  Counted, not eyeballed.

Why this exists: issue 3 asks that `make run` draw grey walls and score bar,
the coloured brick rows and a paddle in at least 9 of 10 frames, with the
paddle not always in the same place.  Walls and bricks come early; the
paddle (a 6x2-pixel red dash at 64x64) is what separates a working Breakout
GAN from a blurry poster, and it is easy to fool yourself looking at a grid.
This script draws --num samples from the run's EMA generator and checks each
frame for the parts below; the same checks on as many real frames of the
run's dataset are printed beside them as the baseline (late-game frames have
broken brick rows, so "bricks" is below 100% on real frames too).

- walls: the left and right walls are grey (within 40 of Breakout's 142 on
  every channel, little colour) along rows 10-50;
- top bar: the grey bar under the score, rows 6-8;
- bricks: at least four of Breakout's six brick colours appear in the brick
  band (rows 16-29), each in 3+ pixels;
- paddle: exactly one red dash, 3 to 12 pixels wide, in rows 54-61 between
  the walls;
- positions: how many distinct columns the single paddles start at.

Only 64x64 RGB frames collected the way `make run` collects them (area
resize of the whole 210x160 screen) fit these pixel positions.

    python benchmarks/breakout_samples.py runs/00000-breakout
    python benchmarks/breakout_samples.py runs/00000-breakout --num 500 --grid grid.png
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

GREY = 142
BRICK_COLOURS = np.array([(200, 72, 72), (198, 108, 58), (180, 122, 48), (162, 162, 42), (72, 160, 72),
                          (66, 72, 200)])
PADDLE_ROWS = slice(54, 62)
PLAYFIELD_COLS = slice(4, 60)


def _grey(region: np.ndarray) -> bool:
    """Mostly Breakout's wall grey: right level, (nearly) no colour."""
    pixels = region.reshape(-1, 3).astype(int)
    level_ok = np.abs(pixels - GREY).max(axis=1) < 40
    return level_ok.mean() > 0.8


def paddle_starts(frame: np.ndarray) -> list[int]:
    """Columns where red dashes 3-12 pixels wide start in the paddle band."""
    band = frame[PADDLE_ROWS, PLAYFIELD_COLS].astype(int)
    r, g, b = band[..., 0], band[..., 1], band[..., 2]
    red = ((r > 70) & (r - g > 35) & (r - b > 35)).any(axis=0)  # (W,): a red pixel in that column
    starts, col = [], 0
    while col < len(red):
        if red[col]:
            end = col
            while end < len(red) and red[end]:
                end += 1
            if 3 <= end - col <= 12:
                starts.append(col)
            col = end
        else:
            col += 1
    return starts


def check_frame(frame: np.ndarray) -> dict[str, bool | int | None]:
    """frame: (64, 64, 3) uint8.  Which parts of a Breakout screen it shows."""
    walls = _grey(frame[10:50, 0:2]) and _grey(frame[10:50, 62:64])
    top_bar = _grey(frame[6:9, 4:60])
    band = frame[16:30, PLAYFIELD_COLS].reshape(-1, 1, 3).astype(int)
    near = np.abs(band - BRICK_COLOURS[None]).max(axis=2) < 45  # (pixels, 6)
    colours = int((near.sum(axis=0) >= 3).sum())
    starts = paddle_starts(frame)
    return dict(walls=walls, top_bar=top_bar, bricks=colours >= 4, paddle=len(starts) == 1,
                paddle_at=starts[0] if len(starts) == 1 else None)


def summarise(frames: np.ndarray) -> dict[str, float]:
    checks = [check_frame(f) for f in frames]
    out = {key: float(np.mean([c[key] for c in checks])) for key in ("walls", "top_bar", "bricks", "paddle")}
    out["all"] = float(np.mean([c["walls"] and c["top_bar"] and c["bricks"] and c["paddle"] for c in checks]))
    out["positions"] = len({c["paddle_at"] for c in checks if c["paddle_at"] is not None})
    return out


def generated_frames(run: Path, num: int, seed: int) -> np.ndarray:
    """(num, H, W, 3) uint8 frames from the run's EMA generator."""
    from gankit.monitor.images import to_uint8
    from gankit.sample import generate, load_generator

    return to_uint8(generate(load_generator(run), num, seed=seed))


def real_frames(run: Path, num: int, seed: int) -> np.ndarray:
    """num frames drawn at random from the dataset the run trained on."""
    from gankit.data import load_dataset
    from gankit.train.rundir import read_config

    images = load_dataset(read_config(run)["data"]).images
    idx = np.sort(np.random.default_rng(seed).choice(len(images), min(num, len(images)), replace=False))
    return np.asarray(images[idx])


def save_grid(frames: np.ndarray, path: Path, scale: int = 3) -> None:
    import torch

    from gankit.monitor.images import make_grid

    images = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1  # back to (B, C, H, W) in [-1, 1]
    grid = make_grid(images)
    grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST).save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="run directory (runs/NAME)")
    parser.add_argument("--num", type=int, default=200, help="frames to check, generated and real")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grid", type=Path, help="also write the first 32 generated frames, x3, here")
    args = parser.parse_args(argv)

    fake = generated_frames(args.run, args.num, args.seed)
    real = real_frames(args.run, args.num, args.seed)
    if fake.shape[1:] != (64, 64, 3):
        parser.error(f"the run makes {fake.shape[1:]} frames; this check knows 64x64 RGB Breakout only")
    rows = {"generated": summarise(fake), "real": summarise(real)}
    print(f"{'':10s} {'walls':>6s} {'top_bar':>7s} {'bricks':>6s} {'paddle':>6s} {'all':>6s} {'positions':>9s}")
    for name, s in rows.items():
        print(f"{name:10s} {s['walls']:6.2f} {s['top_bar']:7.2f} {s['bricks']:6.2f} {s['paddle']:6.2f} "
              f"{s['all']:6.2f} {s['positions']:9d}")
    print(f"paddle in generated frames: {rows['generated']['paddle']:.2f} (real {rows['real']['paddle']:.2f})")
    if args.grid:
        save_grid(fake[:32], args.grid)
        print(f"grid: {args.grid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
