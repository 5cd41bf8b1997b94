"""How long the monitor's progress GIF takes to write, and what its palette costs in colour.

Why: on a 1.4k-image set an epoch lasts ~15 s, and the monitor rewrote
progress.gif (up to 60 frames of an 8x8 sample grid) after most epochs.
With PIL's default palette (median cut, per frame) that took ~10 s on a
busy 2-core CPU, a third of the run.  gankit now gives each frame a
fast-octree palette (`gankit.monitor.images.GIF_QUANTIZE`).  This script
writes the same frames both ways in alternating rounds (a neighbour that
slows one round slows both) and prints the median time ratio and each
palette's mean colour error against the RGB frames.

    python benchmarks/gif_writing.py                  # 60 frames of 64 random sprite-like images
    python benchmarks/gif_writing.py --run RUN        # a run's own frames (RUN/samples/frames)
"""
from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gankit.monitor.images import GIF_QUANTIZE, MAX_GIF_FRAMES, FrameStore, save_gif, with_header


def _frames(run: Path | None, count: int, tmp: Path) -> list[Image.Image]:
    """The run's GIF frames with their captions, or ``count`` frames of 64 shaded blobs on white."""
    store = FrameStore(run / "samples" / "frames") if run else FrameStore(tmp)
    if not run:
        g = torch.Generator().manual_seed(0)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
        for step in range(count):
            colour = torch.rand(64, 3, 1, 1, generator=g) * 2 - 1
            radius = 0.4 + 0.4 * torch.rand(64, 1, 1, 1, generator=g)
            inside = (ys ** 2 + xs ** 2).view(1, 1, 64, 64) < radius ** 2
            shade = 0.3 * xs.view(1, 1, 64, 64) + 0.1 * torch.randn(64, 3, 64, 64, generator=g)
            store.add(torch.where(inside, (colour + shade).clamp(-1, 1), torch.ones(1)), step, step * 1.4, step + 1)
    out = []
    for f in store.frames:
        with Image.open(store.folder / f["file"]) as im:
            out.append(with_header(im.convert("RGB"), f"epoch {f['epoch']} | {f['kimg']:.1f} kimg"))
    return out


def _median_cut(frames: list[Image.Image], path: io.BytesIO) -> None:
    """What the monitor did before: PIL picks each RGB frame's palette (median cut)."""
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], duration=400, loop=0,
                   optimize=False, disposal=1)


def _error(frames: list[Image.Image], method: Image.Quantize) -> float:
    """Mean absolute difference (0-255 levels) between each frame and its 256-colour version."""
    return float(np.mean([np.abs(np.asarray(f.quantize(256, method=method).convert("RGB"), float)
                                 - np.asarray(f, float)).mean() for f in frames]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, help="a run folder whose samples/frames to write")
    p.add_argument("--frames", type=int, default=MAX_GIF_FRAMES, help="synthetic frames (default: the GIF's cap)")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        frames = _frames(args.run, args.frames, Path(tmp))
        ratios, new_s, old_s = [], [], []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            _median_cut(frames, io.BytesIO())
            t1 = time.perf_counter()
            save_gif(frames, Path(tmp) / "p.gif", 400)
            t2 = time.perf_counter()
            old_s.append(t1 - t0)
            new_s.append(t2 - t1)
            ratios.append((t1 - t0) / (t2 - t1))
    print(f"{len(frames)} frames of {frames[0].width}x{frames[0].height}, {args.rounds} rounds, "
          f"torch threads {torch.get_num_threads()}")
    print(f"median cut (before): {statistics.median(old_s):.2f} s a GIF; "
          f"fast octree (now): {statistics.median(new_s):.3f} s; median ratio {statistics.median(ratios):.0f}x")
    print(f"mean colour error, levels of 255: median cut {_error(frames[:10], Image.Quantize.MEDIANCUT):.2f}, "
          f"fast octree {_error(frames[:10], GIF_QUANTIZE):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
