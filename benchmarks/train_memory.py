"""Peak memory of training on a large dataset (50,000 frames of 64x64 RGB).

Why: the dataset format is a memory-mapped ``images.npy`` so that a big
dataset never has to fit in RAM; this script checks the claim.  It writes
the dataset in chunks (synthetic frames by default, or real Breakout frames
with ``--source atari``) in one child process, then, in another (Linux keeps
a process's peak RSS across fork and exec, so the parent stays small),
trains gankit's loop for ``--iters`` iterations (monitor, samples and
checkpoints included) and afterwards gathers every batch of one
full epoch, so every page of the memory map has been read.  It reports the
process's peak resident set size (``resource.getrusage().ru_maxrss``), which
counts the file pages of the map that were resident: the worst case.

    python benchmarks/train_memory.py                 # 50k synthetic frames, 50 iterations
    python benchmarks/train_memory.py --source atari  # 50k Breakout frames (collecting takes minutes)

The last line is ``peak RSS: N MB``; the target is under 2048 MB.
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LIMIT_MB = 2048


def write_synthetic(out: Path, frames: int, size: int = 64, chunk: int = 2000) -> Path:
    """Bright rectangles on dark backgrounds, written ``chunk`` frames at a time."""
    import numpy as np

    from gankit.data.dataset import DatasetWriter

    rng = np.random.default_rng(0)
    with DatasetWriter(out, size, size, 3, "synthetic", {"frames": frames}) as writer:
        for start in range(0, frames, chunk):
            n = min(chunk, frames - start)
            batch = np.full((n, size, size, 3), 16, np.uint8)
            ys, xs = rng.integers(0, size - 16, (2, n))
            colours = rng.integers(96, 255, (n, 3), dtype=np.uint8)
            for i in range(n):
                batch[i, ys[i]:ys[i] + 16, xs[i]:xs[i] + 16] = colours[i]
            writer.add(batch)
    return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def measure(data: Path, iters: int, out: Path) -> None:
    """The child process: train, read one whole epoch, print the figures."""
    import torch

    from gankit.config import TrainConfig
    from gankit.train.loop import Trainer

    print(f"after imports: peak RSS {peak_rss_mb():.0f} MB", flush=True)
    cfg = TrainConfig.from_preset("dcgan", data=str(data), out=str(out), name="memory", epochs=0,
                                  kimg=iters * 64 / 1000, log_every=10, precision="auto", channels_last=True,
                                  tensorboard=False)
    trainer = Trainer(cfg)
    t0 = time.perf_counter()
    trainer.run()
    print(f"trained {iters} iterations in {time.perf_counter() - t0:.0f} s "
          f"({trainer.cfg.precision}, batch {cfg.batch}): peak RSS {peak_rss_mb():.0f} MB", flush=True)
    t0 = time.perf_counter()
    batches = trainer.batches
    order = batches.order(2)
    checksum = torch.zeros((), dtype=torch.float64)
    for j in range(batches.iters):
        checksum += batches.get(order[j * batches.batch:(j + 1) * batches.batch]).double().mean()
    print(f"read one full epoch ({batches.iters} batches) in {time.perf_counter() - t0:.0f} s "
          f"(mean pixel {float(checksum) / batches.iters:+.3f})", flush=True)
    print(f"peak RSS: {peak_rss_mb():.0f} MB")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--frames", type=int, default=50_000)
    p.add_argument("--iters", type=int, default=50, help="training iterations (batch 64, DCGAN 64x64)")
    p.add_argument("--source", choices=("synthetic", "atari"), default="synthetic")
    p.add_argument("--data", type=Path, default=None, help="use (or create) the dataset here and keep it")
    p.add_argument("--measure", type=Path, default=None, help=argparse.SUPPRESS)  # child: train and measure
    p.add_argument("--write", type=Path, default=None, help=argparse.SUPPRESS)  # child: write the dataset
    args = p.parse_args(argv)
    if args.frames < 64 or args.iters < 1:
        p.error("--frames must be >= 64 and --iters >= 1")
    with tempfile.TemporaryDirectory(prefix="gankit-memory-") as tmp:
        if args.measure is not None:
            measure(args.measure, args.iters, Path(tmp))
            return 0
        if args.write is not None:
            if args.source == "atari":
                from gankit.data.atari import collect_atari

                collect_atari("Breakout", args.frames, 64, args.write, policy="agent", progress=False)
            else:
                write_synthetic(args.write, args.frames)
            return 0
        data = args.data or Path(tmp) / "data"
        if not (data / "manifest.json").is_file():
            t0 = time.perf_counter()
            subprocess.run([sys.executable, __file__, "--write", str(data), "--frames", str(args.frames),
                            "--source", args.source], check=True)
            print(f"wrote {args.frames} {args.source} frames to {data} in {time.perf_counter() - t0:.0f} s")
        size_mb = (data / "images.npy").stat().st_size / 2**20
        print(f"dataset: {data} ({size_mb:.0f} MB of uint8 frames on disk)", flush=True)
        child = subprocess.run([sys.executable, __file__, "--measure", str(data), "--iters", str(args.iters)],
                               capture_output=True, text=True)
        if child.returncode != 0:
            sys.stderr.write(child.stderr)
            return child.returncode
        sys.stdout.write("".join(line + "\n" for line in child.stdout.splitlines() if "RSS" in line or "read "
                                                                                                       "one" in line))
        peak = float(child.stdout.strip().splitlines()[-1].split()[2])
        print(f"{'within' if peak < LIMIT_MB else 'OVER'} the {LIMIT_MB} MB target")
        print(f"peak RSS: {peak:.0f} MB")
    return 0 if peak < LIMIT_MB else 1


if __name__ == "__main__":
    sys.exit(main())
