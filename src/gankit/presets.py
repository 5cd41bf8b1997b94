"""Named starting points for `gankit train --preset NAME`.

A preset is a set of overrides on the TrainConfig defaults; every value can
still be overridden by a flag.  `REASONS` gives one line of why for each value
(shown by `gankit presets NAME` and `gankit train --preset NAME --help`); the
measurements behind them are in docs/presets/NAME.md.
"""
from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "dcgan": dict(model="dcgan", loss="bce", batch=64, lr_g=2e-4, lr_d=2e-4, epochs=5),
    "breakout": dict(model="dcgan", loss="bce", width_g=32, width_d=16, d_head=256, coord_conv=True, batch=16,
                     lr_g=4e-4, lr_d=4e-4, diffaugment="translation_x", mbstd=4,
                     precision="auto", channels_last=True, kimg=80.0, minutes=8.0, log_every=100, ema_kimg=2.0,
                     eval_every_kimg=20.0, eval_metrics="fid", eval_num=500, r1=0.2, r1_from_kimg=80.0),
    # the breakout recipe on the original notebook's model; measurements in docs/presets/seed-breakout.md
    "seed-breakout": dict(model="seed", loss="bce", width_g=32, width_d=16, d_head=256, coord_conv=True, batch=16,
                          lr_g=4e-4, lr_d=4e-4, diffaugment="translation_x", mbstd=4,
                          precision="auto", channels_last=True, kimg=60.0, minutes=13.0, log_every=100,
                          ema_kimg=2.0, eval_every_kimg=60.0, eval_metrics="fid", eval_num=500),
    "cards64": dict(model="dcgan", loss="bce", batch=64, lr_g=2e-4, lr_d=2e-4, diffaugment="color,translation,cutout",
                    ada=True, ada_target=0.6, ada_kimg=100.0, label_smoothing=0.1, r1=0.3, r1_every=16, epochs=100),
    # FastGAN-style model for 100-5,000 images; measurements in docs/presets/small64.md
    "small64": dict(model="fastgan", loss="hinge", width_g=16, width_d=16, batch=8, lr_g=2e-4, lr_d=2e-4,
                    diffaugment="color,translation", ada=True, ada_target=0.6, ada_kimg=100.0, precision="auto",
                    epochs=100, eval_every_kimg=10.0, eval_metrics="kid", eval_num=500),
}

# preset -> what it is for, in one line (`gankit presets`, `gankit train --help`)
SUMMARIES: dict[str, str] = {
    "dcgan": "the textbook DCGAN recipe, the baseline the others beat",
    "breakout": "Breakout frames on a 2-core CPU in under 10 minutes (`make run`)",
    "seed-breakout": "Breakout frames from the original notebook's model (`--model seed`) in under 15 minutes",
    "cards64": "64x64 RGB sets of 1k-15k images (the trading-cards case)",
    "small64": "64x64 RGB sets of 100-5,000 images: the FastGAN-style model (`--model fastgan`)",
}

# preset -> value -> why, in one line; the measurements are in docs/presets/
REASONS: dict[str, dict[str, str]] = {
    "dcgan": {
        "model": "transposed-convolution G and strided D of Radford et al.",
        "loss": "non-saturating binary cross-entropy on D's logits, as in the paper",
        "batch": "the paper's batch size",
        "lr_g": "Adam 2e-4 with beta1 0.5, the paper's setting",
        "lr_d": "the same as G's: the recipe keeps the two balanced by construction",
        "epochs": "a short first look; pass --epochs, --kimg or --minutes for more",
    },
    "breakout": {
        "model": "dcgan (transposed-conv G): the model every measurement in docs/presets/breakout.md used",
        "loss": "bce: LSGAN (0.44) and hinge + spectral norm (slower) did not beat it",
        "width_g": "32: wider networks cost about 3x a step on a CPU, where small convolutions dominate",
        "width_d": "16: D runs three times a step, so halving it made the step 1.58x faster and learnt no slower per "
                   "image",
        "d_head": "an MLP on D's features lets D ask for exactly one paddle (a linear head scores two as the sum of "
                  "one)",
        "coord_conv": "each conv sees the pixel's row and column: G moves one paddle instead of fading copies (~11% of "
                      "the step)",
        "batch": "16: twice the G steps of batch 32 for the same images (paddle score 0.48 against 0.22)",
        "lr_g": "4e-4 levelled off above 0.9 where 3e-4 sat at 0.90 (width_d 16, d_head 256)",
        "lr_d": "the same as G's: changing lr_d alone (1e-4; 4e-4 with lr_g 2e-4) was worse",
        "diffaugment": "sideways shifts only: vertical shifts push the paddle row out of ~18% of real frames, blinding "
                       "D to it",
        "mbstd": "D sees the spread within groups of 4, so it can tell G smears the paddle the same way in every "
                 "sample",
        "precision": "bf16 only where the CPU runs it natively (emulated bf16 is slower than fp32)",
        "channels_last": "1.25x faster in fp32 on the CPU",
        "kimg": "80, what the slow 2-core machine reaches in 8 minutes: a faster one stops here, before D wins (~130 "
                "kimg)",
        "minutes": "8 minutes keep `make run` under 10 from a clean clone (78 kimg, paddle 0.97 on 2 cores)",
        "log_every": "a console line every 100 steps: ~50 lines in 8 minutes (the default 50 gives ~100)",
        "ema_kimg": "2 kimg; a half-life of 5 kimg scored lower (0.54)",
        "eval_every_kimg": "FID every 20 kimg keeps the best state in best.pt, which `gankit sample` uses",
        "eval_metrics": "FID alone ranks the states; the other metrics are for `gankit eval`",
        "eval_num": "500 images: enough to rank states of one run (same latents each time), ~2 s each",
        "r1": "0.2 from 80 kimg on: on 3 seeds to 800 kimg D stayed at 0.55-0.75 on real images, where "
              "without it it passed 0.90 at ~225 kimg (docs/presets/breakout.md)",
        "r1_from_kimg": "80: past the 80-kimg cap, so `make run` trains as before; R1 from the start slowed the "
                        "paddle (0.76 against 0.95 at 84 kimg)",
    },
    "seed-breakout": {
        "model": "seed: the original notebook's Linear + upsample/3x3-conv G and strided-conv D, as users know it",
        "loss": "bce, the notebook's loss and the breakout preset's",
        "width_g": "32, as in breakout; G's 3x3 convolutions at full size already make the step ~2x dcgan's",
        "width_d": "16, as in breakout: D runs three times a step",
        "d_head": "an MLP on D's features lets D ask for exactly one paddle (a linear head scores two as the sum of "
                  "one)",
        "coord_conv": "each conv sees the pixel's row and column: one paddle moved, not copies faded in and out",
        "batch": "16: twice the G steps of batch 32 for the same images",
        "lr_g": "4e-4, the breakout preset's rate",
        "lr_d": "the same as G's",
        "diffaugment": "sideways shifts only: vertical shifts push the paddle row out of real frames, blinding D to it",
        "mbstd": "D sees the spread within groups of 4 and can tell G draws the same paddle in every sample",
        "precision": "bf16 only where the CPU runs it natively (emulated bf16 is slower than fp32)",
        "channels_last": "faster in fp32 on the CPU",
        "kimg": "60: paddle 0.58 (0.41 at 24), ~12 minutes on an idle 2-core machine (0.5-0.6x breakout's images/s)",
        "minutes": "13: a guard, so a slower machine still ends within 15 minutes (the kimg limit is the budget)",
        "log_every": "a console line every 100 steps",
        "ema_kimg": "2 kimg, as in breakout",
        "eval_every_kimg": "once per 60 kimg: FID ranked the paddle-less 12-kimg state best, so early states must not "
                           "compete",
        "eval_metrics": "FID alone ranks the states; the other metrics are for `gankit eval`",
        "eval_num": "500 images, as in breakout: ~2 s an evaluation",
    },
    "cards64": {
        "model": "dcgan at 64x64 RGB",
        "loss": "bce, so label smoothing applies",
        "batch": "the DCGAN batch; small sets still give 15-230 steps per epoch",
        "lr_g": "2e-4, the DCGAN rate",
        "lr_d": "equal to G's: lr_d 1e-4 let G run ahead into a longer early collapse",
        "diffaugment": "colour, shift and cutout on everything D sees do most of the work against over-fitting",
        "ada": "adaptive augmentation rises only while D over-fits (p 0.2-0.3 after 40 kimg)",
        "ada_target": "the published r_t target 0.6",
        "ada_kimg": "100 kimg for p to go 0 to 1; at 20 kimg p hit 1.0 and augmentations leak",
        "label_smoothing": "real target 0.9: without it D reached 96.8% on real images late in training",
        "r1": "0.3 held D's accuracy on real images lowest (0.92/0.87) with varied samples; 1.0 blurred them",
        "r1_every": "lazy R1: one double backward in 16 D steps",
        "epochs": "100 epochs: 100k-1.5M images for 1k-15k cards; samples still improved from 40 to 100 kimg",
    },
    "small64": {
        "model": "fastgan: skip-layer gates in G, a D that must reconstruct real images (Liu et al. 2021)",
        "loss": "hinge, as published for this model",
        "width_g": "16: width 32 trained at a third of the images per second on a CPU (11 against 34 img/s)",
        "width_d": "16, matching G: D runs three times a step and its decoders once",
        "batch": "8, as published: four times the G steps per image of 32 at 0.85-0.95x the img/s on a CPU; "
                 "half the KID of batch 32's kept state at 150 kimg on two seeds",
        "lr_g": "2e-4, the published rate",
        "lr_d": "2e-4, equal to G's as published",
        "diffaugment": "colour and shifts, the published policy; D's decoders then learn to describe augmented images",
        "ada": "adaptive augmentation on top, rising as D starts to memorise: D's accuracy on real images at most "
               "0.89/0.92 against 0.94 at 232 kimg; its KID gain there (4.7/5.5 against 8.4/8.2) is within the "
               "swing between states",
        "ada_target": "the published r_t target 0.6",
        "ada_kimg": "100 kimg for p to go 0 to 1, as in cards64: p was 0.30-0.42 at 232 kimg",
        "precision": "bf16 where the hardware runs it natively, fp32 elsewhere",
        "epochs": "100 passes: 10k-500k images for 100-5,000 pictures; pass --minutes for a time cap",
        "eval_every_kimg": "KID every 10 kimg keeps the best state in best.pt: past ~130 kimg KID swings 2-4x "
                           "between states 11 kimg apart; in 550-kimg runs the picked state scored 2.4-2.7x lower "
                           "than the last",
        "eval_metrics": "KID, the small-set metric: it picked better states than FID (correlation with an "
                        "independent 1,548-image KID 0.82-0.89 against 0.65-0.77)",
        "eval_num": "500 images (same latents each time): about a second a state on a CPU",
    },
}

DOCS = {"breakout": "docs/presets/breakout.md", "seed-breakout": "docs/presets/seed-breakout.md",
        "cards64": "docs/presets/cards64.md", "small64": "docs/presets/small64.md"}


def describe_presets() -> str:
    """'breakout (what it is for), ...' for help texts."""
    return "; ".join(f"{name}: {SUMMARIES[name]}" for name in sorted(PRESETS))
