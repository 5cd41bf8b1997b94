"""Named starting points for `gankit train --preset NAME`.

A preset is a set of overrides on the TrainConfig defaults; every value can
still be overridden by a flag.  The comments say why each value was chosen.
"""
from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    # The canonical DCGAN recipe (Radford et al.; PyTorch's dcgan example):
    # batch 64, Adam 2e-4 / (0.5, 0.999), BCE.  The baseline the others beat.
    "dcgan": dict(model="dcgan", loss="bce", batch=64, lr_g=2e-4, lr_d=2e-4, epochs=5),
    # Breakout frames on a 2-core CPU in under 10 minutes (`make run`).
    # Measured on 64x64 frames collected by the ball-following agent, scored by
    # benchmarks/breakout_samples.py (share of 200 samples with exactly one
    # paddle; walls, top bar and brick rows were in every sample of every run
    # below), 60 kimg per candidate on one core of an AVX2 EPYC:
    # - the DCGAN recipe above saturates: D(x) 0.999, D(G(z)) 0.003 within two
    #   epochs and the generator still draws noise; with no augmentation at
    #   batch 16 too (D loss 0.0001 by epoch 3);
    # - DiffAugment translation+cutout kept D honest and drew the layout, but
    #   no paddle at all (0/200 at batch 32): cutout erases the 6x2-pixel
    #   paddle in a quarter of the real images, so its absence proves nothing
    #   to D.  Translation alone: 0.22 at batch 32;
    # - batch 16 instead of 32 (twice the generator steps for the same images):
    #   0.48; batch 8: 0.52, and small batches use a CPU less well;
    # - ADA with translation only (mirrored borders, p driven by D's
    #   over-fitting, 20 kimg from 0 to 1 because the run is short) instead of
    #   DiffAugment: 0.58, the crispest paddles: D sees un-shifted frames
    #   whenever it is not over-fitting, so it can check where the paddle is;
    #   p settles near 0.9 without leaking (the walls stay at the frame's
    #   edges in every sample).  ADA's flips and colour stay off: a mirrored score
    #   bar or recoloured bricks would be worth learning for D;
    # - not better here: lr 4e-4 (0.18), LSGAN (0.44), nearest-neighbour
    #   frames (0.56 with fainter paddles), EMA half-life 5 kimg (0.54);
    #   hinge + spectral norm learnt slower at the same compute;
    # - width 32: D's small 8x8 and 4x4 convolutions dominate the step on a
    #   CPU, so a wider D costs about 3x; channels_last is 1.25x faster in fp32,
    #   bf16 autocast where the CPU runs it natively (~1.5x more);
    # - n-critic 2: paddles earlier (0.42 at 36 kimg) but at 5-6 positions
    #   only, 0.46 at 60; width_d 24: 1.4x faster per step, 0.07 at 60 kimg;
    # - budget: 7 minutes, at most 400 kimg.  A 132 kimg run of this preset
    #   (one thread) scored 0.00 up to 36 kimg, 0.33 at 48, then 0.48-0.59 at
    #   every epoch from 60 to 132 kimg: past 60 kimg more compute does not
    #   help, the recipe does.  On the 2-core AVX2 machine here that is 50 kimg (3,100
    #   steps) and `make run` takes 8m46s from a clean clone, setup included.
    # Not good enough yet: walls, top bar, score and brick rows in 200/200
    # samples, but the paddle score varies between 0 and 0.6 from run to run
    # and checkpoint to checkpoint at 50-60 kimg (faint or repeated dashes);
    # an earlier preset on a 3x faster AVX-512 CPU (3,300 steps at batch 32)
    # also drew repeated paddle segments.
    "breakout": dict(model="dcgan", loss="bce", width_g=32, width_d=32, batch=16, lr_g=2e-4, lr_d=2e-4,
                     diffaugment="", ada=True, ada_ops="translation", ada_target=0.6, ada_kimg=20.0,
                     precision="auto", channels_last=True, kimg=400.0, minutes=7.0, log_every=100, ema_kimg=2.0),
    # 64x64 RGB sets of 1k-15k images (the trading-cards case).  Tuned with
    # benchmarks/small_data.py: 2,000 frames mixed from five Atari games, width 32,
    # bf16, 40 kimg (625 steps) per candidate, seeds 0 and 1.  The DCGAN recipe
    # above saturates within two epochs (D right on 100% of real images, grey
    # noise for samples) and never recovers.  What kept D below 95% on real
    # images over the second half, with varied samples:
    # - DiffAugment color,translation,cutout on every image D sees (real and
    #   fake, D and G passes) does most of the work: alone, all five games show
    #   up in the samples, but D still reached 97% on (augmented) real images;
    # - ADA on top, with its published target (r_t 0.6) and 100 kimg for p to
    #   go from 0 to 1: p starts at 0 and rises only while D over-fits (0.2-0.3
    #   after 40 kimg; over 100 kimg it peaked at 0.23 and fell back to 0.15),
    #   far below the ~0.8 where augmentations leak into the samples.  At 20
    #   kimg p hit 1.0.  Flips are among ADA's ops, harmless for cards at that p;
    # - label smoothing 0.1 (real target 0.9): without it D reached 96.8% late
    #   in training even with DiffAugment, ADA and R1 on;
    # - R1 0.3, lazily every 16 D steps (one double backward in 16): highest
    #   acc_real over the second half 0.92 / 0.87 (seed 0 / 1), against
    #   0.93 / 0.93 without R1 and 0.95 / 0.90 with 0.1, and more varied samples
    #   than without; 1.0 held D at 0.86 but blurred the samples.  D keeps its BatchNorm;
    # - lr_d = lr_g = 2e-4: lr_d 1e-4 let G run ahead into a longer early
    #   collapse (diversity ~10% of the real one for ~10 kimg) and D ended no lower;
    # - no spectral norm: it held D near 78%, but at the same compute the
    #   samples stayed faint and blurry (the breakout finding too);
    # - no instance noise (not tried): annealed to 0, it is gone by the late
    #   epochs where small sets over-fit, and the augmentations already make
    #   real and fake overlap;
    # - fp32 (the default): R1's double backward is not loss-scaled, so fp16
    #   could underflow it; bf16 (`--precision auto`) ran all of the above fine;
    # - 100 epochs: 100k-1.5M images for 1k-15k cards; on the 2k set the samples
    #   still improved from 40 to 100 kimg.  Expect mode-collapse warnings around
    #   epochs 5-10 (G's first attempt): they stopped by ~20 kimg in every run.
    "cards64": dict(model="dcgan", loss="bce", batch=64, lr_g=2e-4, lr_d=2e-4, diffaugment="color,translation,cutout",
                    ada=True, ada_target=0.6, ada_kimg=100.0, label_smoothing=0.1, r1=0.3, r1_every=16, epochs=100),
}
