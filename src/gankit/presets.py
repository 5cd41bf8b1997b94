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
    #   over-fitting, 20 kimg from 0 to 1) instead of DiffAugment: 0.58 on
    #   that machine, but on a second one (AVX-512 Xeon, same settings) 0.10;
    #   p climbs to ~0.97 by 50 kimg, because D keeps winning, not over-fitting;
    # - not better: lr 4e-4 (0.18), LSGAN (0.44), nearest-neighbour frames
    #   (0.56, fainter), EMA half-life 5 kimg (0.54), hinge + spectral norm
    #   (slower), n-critic 2 (0.46, 5-6 positions), width_d 24 (0.07);
    # - width 32: D's small 8x8 and 4x4 convolutions dominate the step on a
    #   CPU, so a wider D costs about 3x; channels_last is 1.25x faster in fp32;
    # - mbstd 4 (ProGAN's minibatch standard deviation before D's last layer):
    #   the failure is G smearing the paddle over two or three places, or
    #   drawing it faintly, the same way in every sample; with the group's
    #   spread as a feature, D can tell.  Second machine, 50 kimg: with ADA
    #   0.50 / 0.00 (seeds 0 / 1), DiffAugment translation 0.36 / 0.37;
    #   without mbstd (ADA) 0.10 / 0.39;
    # - tried with mbstd, all worse at 50 kimg: lr_d 1e-4 (0.00), lr_d 4e-4
    #   (0.14), ADA target 0.8 (0.00), n-critic 2 (0.41), a 2-layer MLP in
    #   front of G (0.01).  Without mbstd: R1 1.0 (0.00), a per-patch head on
    #   D's 8x8 map (0.00), D without BatchNorm (0.00, washed-out grey), real
    #   and fake in one D batch (saturated);
    # - D was blind to the paddle: erasing it from 512 real frames moved D's
    #   logit by 0.08 (sd 0.12), and among generated samples D scored those
    #   with a paddle no higher.  Cause: DiffAugment's vertical shift (up to 8
    #   rows, zero border) pushes the paddle row out of ~18% of the real
    #   frames, so a frame without a paddle is sometimes real.  translation_x
    #   (sideways only): 0.65 / 0.56 at 50 kimg (paddles at 9-11 positions);
    #   frames from the random policy instead (nearly intact bricks, simpler
    #   images): 0.00 / 0.00, one frame for every z; no augmentation at all:
    #   saturated again; a global-max "presence" branch on D's first
    #   features: 0.45 / 0.40;
    # - coord_conv (every conv also sees the pixel's row and column): G moves
    #   one paddle instead of fading copies.  With translation_x: 0.59 / 0.56
    #   at 50 kimg, paddles at 34-38 of the 51 positions real frames show,
    #   and they appear by 24 kimg (0.51 / 0.33, where translation_x alone
    #   had 0.00 / 0.01).  It costs ~11% of the step (91 vs 102 images/s,
    #   `gankit bench --preset breakout`), so it was compared on the budget
    #   `make run` has, 11 minutes on one core (~7 on two): 0.60 / 0.66 at
    #   39-40 kimg (seeds 0 / 1, 39-40 positions, D right on 86-88%) against
    #   0.48 at 43 kimg for translation_x alone (10 positions, D right on
    #   95%, and 0.62 at 36 kimg: it swings); batch 8 instead of 16: 0.34;
    # - budget: 7 minutes, at most 400 kimg: 38-46 kimg on the 2-core machines
    #   here; `make run` from a clean clone: 8m38s, 37.5 kimg, paddle 0.55 at
    #   21 positions; on a later day 8m30s, 45.9 kimg, paddle 0.46 at 25.
    # - D's last layer is linear, so it scores two far-apart paddles as the
    #   sum of one (tests/test_models.py) and can only ask G for more or
    #   fewer: the mean paddle count of the samples sits at ~1.0 (0.64 one,
    #   0.16 two, 0.20 none or broken).  Tried on the budget, seed 0 / 1:
    #   d_head 256 (an MLP there): doubles 0.07 instead of 0.16-0.18, but
    #   missing or broken paddles up to 0.38-0.45, so 0.53 / 0.51; with a
    #   per-patch head on D's 8x8 map as well 0.65 (patch head alone 0.58);
    #   with G self-attention at 16x16 (`attention`) 0.68 / 0.45, attention
    #   in D too 0.60 (30 kimg, it is slow); a 2-layer mapping MLP in front
    #   of G 0.41.  On this budget none is a clear gain over the spread
    #   between two seeds.  But given more images, d_head removes the
    #   plateau: `--d-head 256 --minutes 0 --kimg 84` (27 minutes on one
    #   core) scored 0.34, 0.48, 0.68, 0.76, 0.85, 0.92 at 24, 36, ... 84 kimg
    #   (seed 0, paddles at 48 of 51 positions), seed 1: 0.41, 0.64, 0.67, 0.74,
    #   0.82, 0.89 (50 positions; 17 minutes on two cores), where the
    #   linear head stays at 0.62-0.70 from 48 to 96 kimg.  Too slow for
    #   `make run` at width_d 32 (38-46 kimg there), so:
    # - speed: the whole-map layers as matrix products and two written-out
    #   reductions (models/common.py) made the step ~1.25x faster; then
    #   width_d 16 instead of 32 (D runs three times a step, G once) makes
    #   the step 1.58x faster: 212 against 134 images/s on two cores
    #   (`gankit bench --preset breakout`), ~89 kimg in `make run`'s 7 minutes.  Per image it
    #   learns no slower (d_head 256, lr 2e-4, seed 0: 0.63, 0.61, 0.81, 0.87
    #   at 36, 48, 60, 72 kimg against 0.48, 0.68, 0.76, 0.85 at width_d 32);
    # - lr 3e-4 for both (d_head 256, 1 core, --kimg 56 or 84, seed 0 / 1):
    #   at width_d 32, 0.51 / 0.54 at 24 kimg (0.34 / 0.41 at 2e-4) and
    #   0.68 / 0.84 at 56; at width_d 16, seed 0: 0.52, 0.82, 0.87, 0.90,
    #   0.90, 0.90 at 24, 36, ... 84 kimg (two far-apart paddles 0.01, a
    #   broken, too narrow one 0.07 of 400), seed 1: 0.47, 0.83, 0.89, 0.94,
    #   0.89, 0.93.  Not better at width_d 32: lr 4e-4 (0.59 at 56), lr_d
    #   4e-4 with lr_g 2e-4 (0.60), linear decay of both to 0 over the second
    #   half (0.67 / 0.81, and D won at the end);
    # - lr 4e-4 for both at width_d 16, seed 0: 0.41, 0.64, 0.93, 0.95, 0.96,
    #   0.95 at 24, 36, ... 84 kimg, paddles at 49 of the 51 positions.
    #   Chosen: it levels off above 0.9 where 3e-4 sat at 0.90 on this seed.
    #   `make run` from a clean clone, two cores, 7 minutes: 67.5 kimg, 8m14s
    #   in all, paddle 0.76, 0.82, 0.83 at 48, 60, 67.5 kimg, still rising;
    #   so the budget is 8 minutes: 71.9 kimg on a slower day, 9m25s in all,
    #   paddle 0.84 at 46 positions (seed 0; 2-thread runs follow another
    #   path than 1-thread ones).  This preset on one core, seeds 1 / 2:
    #   0.62 / 0.73 at 48, 0.85 / 0.89 at 72, 0.88 / 0.90 at 84, 0.90 / 0.91
    #   at 96 kimg.
    # - the spread between seeds is as large as any change tried since
    #   (one core, 72 kimg, score at 24 / 36 / 48 / 60 / 72 kimg):
    #   lr 3e-4, seed 2: 0.29, 0.53, 0.49, 0.57, 0.62 (seeds 0 / 1 had 0.90 /
    #   0.89); lr_g 4e-4 with lr_d 3e-4, seed 0: 0.56, 0.74, 0.87, 0.88, 0.91;
    #   lr 5e-4, seeds 1 / 2: 0.68 / 0.58 at 72; Adam (0, 0.99) as in
    #   StyleGAN2, seeds 0 / 1 / 2: 0.94 / 0.91 / 0.70 at 72 (the preset:
    #   0.96 / 0.85 / 0.89); R1 0.1, seed 1: 0.42, 0.60, 0.65, 0.77, 0.87.
    #   None kept.  torch.compile: 1.2x per step after ~85 s of compiling,
    #   no net gain in 8 minutes; two 1-thread DDP processes: 0.8x.
    # - the Adam update as one fused kernel (~5% of the step) and the
    #   install without the test extras.  `make run` from a clean clone with
    #   8.3 minutes: 9m43s in all (too close to 10), 77.3 kimg, paddle 0.94 /
    #   0.94 / 0.95 at 60 / 72 / 77.3 kimg at 49-50 positions; so 8 minutes.
    # Result, `make run` from a clean clone with 8 minutes: 9m20s in all,
    # 78.3 kimg, walls, top bar, score and brick rows in every sample, a
    # single paddle in 0.97 of them at 48 of the 51 places.  Seeds differ:
    # one core at 72 kimg gave 0.85-0.96; every seed tried reaches 0.90 by
    # 96 kimg (`--minutes 0 --kimg 96`, ~10 minutes on 2 cores).
    "breakout": dict(model="dcgan", loss="bce", width_g=32, width_d=16, d_head=256, coord_conv=True, batch=16,
                     lr_g=4e-4, lr_d=4e-4, diffaugment="translation_x", mbstd=4,
                     precision="auto", channels_last=True, kimg=400.0, minutes=8.0, log_every=100, ema_kimg=2.0),
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
