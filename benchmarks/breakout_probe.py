"""What a Breakout run's discriminator looks at, measured by taking parts away.

G learns to draw only what D punishes it for leaving out.  So when samples
lack a part that real frames have (the ball of issue 16: a share of 0.1-0.3
against 0.73 real), the first question is whether D notices the part at all.
For each checkpoint this script takes real frames that show exactly one ball
and one paddle (the judges of breakout_quality.py and breakout_samples.py),
erases the ball, or the paddle, by painting it in the play field's colour,
and reports how D's logit moves:

- shift: the mean change of the logit (negative: D finds the frame less real
  without the part), and the same in units of the logit's standard deviation
  over the untouched frames, so checkpoints whose logits have different
  scales compare;
- lowered: the share of frames whose logit fell.

D runs in eval mode (BatchNorm's running statistics), so a frame's logit does
not depend on the others in its batch.  It also reports how bright G draws
the ball: over frames with any reddish pixel in the ball's field, the median
of the largest red excess (R - max(G, B)) against the same on real frames.

    python benchmarks/breakout_probe.py runs/00000-breakout                      # every checkpoint
    python benchmarks/breakout_probe.py runs/00000-breakout --checkpoint best.pt,ckpt-000072000.pt --num 1000
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from breakout_quality import BALL_ROWS, ball_at, checkpoints, finish, kimg_of  # noqa: E402
from breakout_samples import PADDLE_ROWS, PLAYFIELD_COLS, paddle_starts  # noqa: E402

REDDISH = 8  # red excess over green and blue that marks a (dim) ball pixel; real balls reach 40-100


def _red_excess(region: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 -> (...,) int: how much redder than its other channels a pixel is."""
    px = region.astype(int)
    return px[..., 0] - np.maximum(px[..., 1], px[..., 2])


def _paint(frame: np.ndarray, rows: slice, cols: slice, mask: np.ndarray) -> np.ndarray:
    """A copy of frame with the masked pixels of frame[rows, cols] set to that region's median colour."""
    out = frame.copy()
    region = out[rows, cols]
    region[mask] = np.median(region.reshape(-1, 3), axis=0).astype(np.uint8)
    return out


def erase_ball(frame: np.ndarray) -> np.ndarray:
    """frame (64, 64, 3) uint8 with one ball -> the same frame without it (its dim halo included)."""
    centre = ball_at(frame)
    if centre is None:
        raise ValueError("erase_ball: the frame shows no single ball")
    rows = np.arange(BALL_ROWS.start, BALL_ROWS.stop)[:, None]
    cols = np.arange(PLAYFIELD_COLS.start, PLAYFIELD_COLS.stop)[None, :]
    near = (np.abs(rows - centre[0]) <= 3) & (np.abs(cols - centre[1]) <= 3)
    mask = near & (_red_excess(frame[BALL_ROWS, PLAYFIELD_COLS]) > REDDISH // 2)
    return _paint(frame, BALL_ROWS, PLAYFIELD_COLS, mask)


def erase_paddle(frame: np.ndarray) -> np.ndarray:
    """frame (64, 64, 3) uint8 -> the same frame with no red left in the paddle band."""
    mask = _red_excess(frame[PADDLE_ROWS, PLAYFIELD_COLS]) > REDDISH
    return _paint(frame, PADDLE_ROWS, PLAYFIELD_COLS, mask)


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) in [-1, 1], as in training."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


@torch.no_grad()
def logits(D: nn.Module, frames: np.ndarray, batch: int = 64) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N,) D's logits, images scaled to [-1, 1] as in training."""
    out = []
    for i in range(0, len(frames), batch):
        out.append(D(to_tensor(frames[i:i + batch])).reshape(-1).double().numpy())
    return np.concatenate(out)


def logit_shift(D: nn.Module, frames: np.ndarray, erase) -> dict[str, float]:
    """How D's logit moves when `erase` takes a part out of each frame."""
    before = logits(D, frames)
    after = logits(D, np.stack([erase(f) for f in frames]))
    diff = after - before
    spread = float(before.std()) or 1.0
    return {"shift": float(diff.mean()), "shift_sd": float(diff.mean() / spread),
            "lowered": float((diff < 0).mean()), "logit_sd": float(before.std())}


def ball_contrast(frames: np.ndarray) -> dict[str, float]:
    """How often and how brightly frames show red in the ball's field."""
    excess = _red_excess(frames[:, BALL_ROWS, PLAYFIELD_COLS]).reshape(len(frames), -1).max(axis=1)
    reddish = excess > REDDISH
    return {"reddish": float(reddish.mean()),
            "excess": float(np.median(excess[reddish])) if reddish.any() else 0.0}


def load_discriminator(path: Path) -> nn.Module:
    from gankit.config import TrainConfig
    from gankit.models import config_discriminator
    from gankit.train.checkpoint import load_checkpoint

    state = load_checkpoint(path)
    if state.get("classes"):
        raise SystemExit(f"{path}: a class-conditional run; this probe reads unconditional Breakout runs")
    D = config_discriminator(TrainConfig.from_dict(state["config"]), tuple(state["shape"]))
    D.load_state_dict(state["D"])
    return D.eval()


def probe_frames(frames: np.ndarray, num: int) -> np.ndarray:
    """The first `num` frames that show exactly one ball and one paddle."""
    keep = [f for f in frames if ball_at(f) is not None and len(paddle_starts(f)) == 1]
    if not keep:
        raise SystemExit("no real frame shows exactly one ball and one paddle")
    return np.stack(keep[:num])


def probe_run(run: Path, num: int, seed: int, only: list[Path] | None = None) -> dict:
    from gankit.data import load_dataset
    from gankit.monitor.images import to_uint8
    from gankit.sample import generate, load_generator
    from gankit.train.rundir import read_config

    dataset = load_dataset(read_config(run)["data"])
    idx = np.sort(np.random.default_rng(seed).choice(len(dataset), min(4 * num, len(dataset)), replace=False))
    real = np.asarray(dataset.images[idx])
    frames = probe_frames(real, num)
    result: dict = {"frames": len(frames), "real": ball_contrast(real[:num]), "checkpoints": {}}
    for path in checkpoints(run, only):
        D = load_discriminator(path)
        fake = to_uint8(generate(load_generator(run, checkpoint=path), num, seed=seed))
        result["checkpoints"][kimg_of(path)] = {
            "ball": logit_shift(D, frames, erase_ball), "paddle": logit_shift(D, frames, erase_paddle),
            "drawn": ball_contrast(fake)}
    return result


def print_table(result: dict) -> None:
    real = result["real"]
    print(f"{result['frames']} real frames with one ball and one paddle; real frames: red in the ball's field "
          f"{real['reddish']:.2f}, median red excess {real['excess']:.0f}")
    print(f"{'kimg':>8s} {'ball shift':>11s} {'(sd)':>7s} {'lowered':>8s} {'paddle shift':>13s} {'(sd)':>7s} "
          f"{'lowered':>8s} {'G red':>6s} {'G excess':>9s}")
    for name, row in result["checkpoints"].items():
        b, p, g = row["ball"], row["paddle"], row["drawn"]
        print(f"{name:>8s} {b['shift']:11.3f} {b['shift_sd']:7.2f} {b['lowered']:8.2f} {p['shift']:13.3f} "
              f"{p['shift_sd']:7.2f} {p['lowered']:8.2f} {g['reddish']:6.2f} {g['excess']:9.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="run directory (runs/NAME)")
    parser.add_argument("--num", type=int, default=500, help="real frames probed (and generated frames drawn)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", help="checkpoints (names in checkpoints/, comma-separated) instead of all")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    folder = args.run / "checkpoints"
    if not folder.is_dir():
        parser.error(f"{args.run}: not a run directory (no checkpoints/)")
    only = [folder / name for name in args.checkpoint.split(",")] if args.checkpoint else None
    missing = [p.name for p in only or [] if not p.is_file()]
    if missing:
        parser.error(f"--checkpoint: no {', '.join(missing)} in {folder}")
    torch.set_num_threads(1)
    return finish(probe_run(args.run, args.num, args.seed, only), print_table, args.json)


if __name__ == "__main__":
    sys.exit(main())
