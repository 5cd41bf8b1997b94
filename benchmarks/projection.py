"""The projection figures of docs/using-a-generator.md.

    python benchmarks/projection.py RUN DATASET HELD_OUT_PNG_DIR [--steps 300,500,1000] [--lr 0.1]

Projects 8 of the generator's own images (seed 11, rounded to uint8 as a PNG
would hold them; their z is known) and the PNG frames in HELD_OUT_PNG_DIR,
and prints the pixel RMSE (in [0, 1] units) and how far the latent found is
from the true one.
"""
from __future__ import annotations

import argparse
import glob
import time

import numpy as np
import torch

import gankit
from gankit.metrics import dataset_encoder
from gankit.project import load_images, project


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run")
    p.add_argument("dataset", help="the run's dataset (for the perceptual loss's encoder)")
    p.add_argument("held_out", help="folder of real PNG frames the run never saw")
    p.add_argument("--steps", default="0,300,500,1000")
    p.add_argument("--lr", type=float, default=0.1)
    args = p.parse_args()
    torch.set_num_threads(1)
    G = gankit.load_generator(args.run)
    extractor = dataset_encoder.load_or_train(args.dataset, log=False)
    z = torch.randn(8, G.latent, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        own = torch.round((G(z) + 1) * 127.5) / 127.5 - 1
    real, _ = load_images(sorted(glob.glob(f"{args.held_out}/*.png")), G.channels, G.height, G.width)
    for steps in map(int, args.steps.split(",")):
        for name, images in (("generated", own), ("held-out", real)):
            start = time.perf_counter()
            r = project(G, images, extractor, steps=steps, lr=args.lr)
            line = f"{name:9} {steps:5} steps: RMSE mean {np.mean(r.rmse):.4f} max {np.max(r.rmse):.4f}"
            if name == "generated":
                line += f", |z - z_true| mean {float((r.z - z).norm(dim=1).mean()):.2f}"
            print(f"{line} ({time.perf_counter() - start:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
