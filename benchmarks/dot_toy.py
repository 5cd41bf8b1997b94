"""Can gankit's DCGAN discriminator learn a one-pixel object beside a large one?

Issue 16's probe (breakout_probe.py) found that the Breakout D never looks
at the ball, a 1-2 pixel object, while it weighs the paddle from the start.
This toy isolates that: D is trained, as a plain classifier, to tell black
32x32 frames with a one-pixel red dot (at a random place) from frames
without it.  With ``--bar`` every frame, both kinds, also carries a bright
grey 2x8 bar at a random place, which tells nothing about the class.

    python benchmarks/dot_toy.py --dot 0.04    # as dim as Breakout's ball at 64x64 (red 133 of 255)
    python benchmarks/dot_toy.py --dot 1.0     # full brightness

Printed: D's training accuracy, averaged over each block of 100 steps, for
D with and without BatchNorm, with and without the bar.  0.5 is chance.
Measured and discussed in docs/presets/breakout.md ("Presence detectors").
"""
from __future__ import annotations

import argparse

import torch

from gankit.models.dcgan import DCGANDiscriminator


def frames(n: int, size: int, gen: torch.Generator, dot: bool, bar: bool, value: float) -> torch.Tensor:
    """(n, 3, size, size) in [-1, 1]: black, a grey bar when ``bar``, a red dot of ``value`` when ``dot``."""
    x = torch.full((n, 3, size, size), -1.0)
    for i in range(n):
        r, c = torch.randint(0, size - 2, (2,), generator=gen).tolist()
        if bar:
            x[i, :, r : r + 2, max(0, c - 4) : c + 4] = 0.8
        if dot:
            while True:  # keep the dot off the bar's rows
                r2, c2 = torch.randint(0, size, (2,), generator=gen).tolist()
                if abs(r2 - r) > 3:
                    break
            x[i, 0, r2, c2] = value
    return x


def train(norm: str, bar: bool, value: float, steps: int, lr: float, batch: int = 32) -> list[float]:
    """Training accuracy per block of 100 steps."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    D = DCGANDiscriminator(32, 32, 3, 8, norm=norm, head=16)
    opt = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    bce = torch.nn.BCEWithLogitsLoss()
    half = batch // 2
    y = torch.cat([torch.ones(half), torch.zeros(half)])
    hits = []
    for _ in range(steps):
        x = torch.cat([frames(half, 32, gen, True, bar, value), frames(half, 32, gen, False, bar, value)])
        logits = D(x)
        opt.zero_grad()
        bce(logits, y).backward()
        opt.step()
        hits.append(((logits > 0).float() == y).float().mean().item())
    return [sum(hits[k : k + 100]) / len(hits[k : k + 100]) for k in range(0, steps, 100)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=4e-4,
                        help="Adam rate (the breakout preset's); at 2e-3 nothing is learnt beside the bar")
    parser.add_argument("--dot", type=float, default=1.0, help="the dot's red value in [-1, 1] (background -1)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"accuracy per 100 steps, dot red {args.dot}, lr {args.lr}")
    for bar in (False, True):
        for norm in ("batch", "none"):
            acc = train(norm, bar, args.dot, args.steps, args.lr)
            print(f"bar {'yes' if bar else 'no ':3}  norm {norm:5}  " + " ".join(f"{a:.2f}" for a in acc), flush=True)


if __name__ == "__main__":
    main()
