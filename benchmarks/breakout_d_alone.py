"""Does D ever need the ball?  D trained alone against a frozen generator.

breakout_probe.py finds that a Breakout run's D never weighs the ball.  This
script asks whether that is because D *cannot* see a 1-2 pixel object or
because it *need not*: it freezes the generator of one checkpoint, draws a
fixed set of its frames, and trains that checkpoint's D (or a fresh one with
``--fresh``) as a plain classifier, real against those frames, with the
run's D architecture, Adam at ``--lr`` and batches of 16 + 16.  Every sixth
of the way it reports, on held-out frames, D's accuracy on real and on
generated frames, and the probe's figures: how far erasing the ball (or the
paddle) from real frames moves D's logit, in units of its spread, and the
share of frames whose logit fell.

Options that take cues away from D, to find what else it uses:
``--mask A:B,C:D`` blacks out rows A to B-1 (and C to D-1) of every frame
(the score is rows 0-4, the bricks rows 16-29, the ball flies in 31-53); ``--snap`` moves every generated pixel to the
nearest colour that occurs in real frames (Breakout has ~180);
``--clean N`` blacks out generated pixels whose channels are all <= N;
``--noise S`` adds N(0, S) to D's training inputs.

    python benchmarks/breakout_d_alone.py runs/00000-breakout/checkpoints/ckpt-000080000.pt
    python benchmarks/breakout_d_alone.py CKPT --fresh --mask 0:30
    python benchmarks/breakout_d_alone.py CKPT --fresh --mask 0:31,54:64      # the ball band alone

Measured in docs/presets/breakout.md ("Presence detectors for the ball").
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from breakout_probe import erase_ball, erase_paddle, logit_shift, logits, probe_frames, to_tensor  # noqa: E402


def snap_to_palette(frames: np.ndarray, real: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> the same with each pixel replaced by the nearest colour found in ``real``."""
    palette = torch.from_numpy(np.unique(real.reshape(-1, 3), axis=0)).float()  # (P, 3)
    flat = torch.from_numpy(frames.reshape(-1, 3)).float()
    out = [palette[torch.cdist(flat[i:i + 200_000], palette).argmin(1)] for i in range(0, len(flat), 200_000)]
    return torch.cat(out).numpy().astype(np.uint8).reshape(frames.shape)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", type=Path, help="a checkpoint of a Breakout run (RUN/checkpoints/ckpt-*.pt)")
    parser.add_argument("--fresh", action="store_true", help="train a newly initialised D instead of the checkpoint's")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--lr", type=float, default=4e-4)
    parser.add_argument("--mask", help="A:B[,C:D...], black out rows A to B-1 (...) of every frame")
    parser.add_argument("--snap", action="store_true", help="generated pixels take the nearest real colour")
    parser.add_argument("--clean", type=int, default=0, help="black out generated pixels whose channels are <= N")
    parser.add_argument("--noise", type=float, default=0.0, help="Gaussian noise of this sd on D's training inputs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.checkpoint.is_file():
        parser.error(f"no checkpoint {args.checkpoint}")

    from gankit.config import TrainConfig
    from gankit.data import load_dataset
    from gankit.models import config_discriminator
    from gankit.monitor.images import to_uint8
    from gankit.sample import generate, load_generator
    from gankit.train.checkpoint import load_checkpoint
    from gankit.train.rundir import read_config

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    run = args.checkpoint.parent.parent
    images = np.asarray(load_dataset(read_config(run)["data"]).images)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(images))
    held = min(2000, len(images) // 5)
    train_real, test_real = images[order[held:]], images[order[:held]]
    fake = to_uint8(generate(load_generator(run, checkpoint=args.checkpoint), 6000, seed=args.seed))
    if args.clean:
        fake = np.where(fake.max(axis=3, keepdims=True) <= args.clean, 0, fake).astype(np.uint8)
    if args.snap:
        fake = snap_to_palette(fake, images[:2000])
    probe = probe_frames(test_real, 300)
    for rows in args.mask.split(",") if args.mask else []:
        a, b = (int(v) for v in rows.split(":"))
        for frames in (fake, train_real, test_real, probe):
            frames[:, a:b] = 0
    train_fake, test_fake = fake[:5000], fake[5000:]

    state = load_checkpoint(args.checkpoint)
    D = config_discriminator(TrainConfig.from_dict(state["config"]), tuple(state["shape"]))
    if not args.fresh:
        D.load_state_dict(state["D"])
    opt = torch.optim.Adam(D.parameters(), lr=args.lr, betas=(0.5, 0.999))
    bce = torch.nn.BCEWithLogitsLoss()
    target = torch.cat([torch.ones(16), torch.zeros(16)])
    print(f"{'step':>6s} {'acc real':>9s} {'acc fake':>9s} {'ball sd':>8s} {'lowered':>8s} {'paddle sd':>10s} "
          f"{'lowered':>8s}")

    def report(step: int) -> None:
        D.eval()
        ball, paddle = logit_shift(D, probe, erase_ball), logit_shift(D, probe, erase_paddle)
        acc_real = float((logits(D, test_real[:500]) > 0).mean())
        acc_fake = float((logits(D, test_fake[:500]) < 0).mean())
        print(f"{step:6d} {acc_real:9.2f} {acc_fake:9.2f} {ball['shift_sd']:+8.2f} {ball['lowered']:8.2f} "
              f"{paddle['shift_sd']:+10.2f} {paddle['lowered']:8.2f}", flush=True)
        D.train()

    report(0)
    for step in range(1, args.steps + 1):
        pick_real = rng.integers(0, len(train_real), 16)
        pick_fake = rng.integers(0, len(train_fake), 16)
        x = torch.cat([to_tensor(train_real[pick_real]), to_tensor(train_fake[pick_fake])])
        if args.noise:
            x = x + args.noise * torch.randn_like(x)
        opt.zero_grad()
        bce(D(x), target).backward()
        opt.step()
        if step % max(1, args.steps // 6) == 0:
            report(step)
    return 0


if __name__ == "__main__":
    sys.exit(main())
