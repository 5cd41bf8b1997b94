"""Does a feature extractor see shape, or only colour?  A calibration table.

Why: on small sets of creatures on a plain background, a generator that paints
blobs in the right colours scored precision 0.94 with the `dataset` extractor
(issue 21): the metric could not tell blobs from creatures.  This script
builds sets that keep each real image's colours but destroy its shapes, and
scores them against real images the way `gankit eval` scores a generator:

- ``real (held out)``: the other half of the data set (the floor);
- ``blur``: a heavy Gaussian blur (sigma = 1/16 of the side);
- ``shuffle8``: each image cut into 8x8-pixel patches put back in random order;
- ``blobs``: each image's own colour histogram painted as a round blob on its
  most common colour (same pixel colours, no shape at all);
- ``noise``: uniform noise (the ceiling of wrongness);
- ``wrong colours``: the real images with their channels rotated (RGB -> GBR):
  every shape kept, every colour wrong; an extractor that sees shape only
  would miss it, so it must stay far from real too.

The `dataset` encoder is trained on half A only (a temporary copy of it), as
a generator's images are never among the images the encoder learnt from;
``--train-on all`` trains it on the whole data set, as `gankit eval` does.
``--recipe '{"steps": 300}'`` overrides values of the encoder's recipe.

The real set is split in two halves with a fixed seed: features of half A are
the reference, every test set is made from half B, so no image is compared
with itself.  For each set it prints precision and recall (k=3), KID (x1000,
mean ± std over subsets) and FID, and density
(Naeem et al. 2020), which trusts no single real outlier's ball.  A shape-aware extractor gives the three
colour-keeping sets a precision far below the held-out real half (goal:
below 0.2).

    python benchmarks/extractor_calibration.py data/sprites64
    python benchmarks/extractor_calibration.py data/breakout --num 1000 --json out.json
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gankit.data import load_dataset
from gankit.metrics.fid import fid
from gankit.metrics.kid import kid
from gankit.metrics.prdc import prdc
from gankit.metrics.registry import get_extractor


def blur(images: np.ndarray) -> np.ndarray:
    """(N, H, W, C) uint8 -> the same, Gaussian-blurred with sigma = side/16 (edges repeated)."""
    sigma = max(images.shape[1], images.shape[2]) / 16
    radius = int(3 * sigma)
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(t ** 2) / (2 * sigma ** 2))
    k = k / k.sum()
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()  # (N, C, H, W)
    C = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(C, 1, 1, 1), groups=C)
    x = F.conv2d(x, k.view(1, 1, -1, 1).repeat(C, 1, 1, 1), groups=C)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def shuffle_patches(images: np.ndarray, patch: int, rng: np.random.Generator) -> np.ndarray:
    """Each image's patch x patch tiles in a random order (sides must divide by ``patch``)."""
    N, H, W, C = images.shape
    rows, cols = H // patch, W // patch
    tiles = images.reshape(N, rows, patch, cols, patch, C).transpose(0, 1, 3, 2, 4, 5).reshape(N, rows * cols,
                                                                                              patch, patch, C)
    order = np.argsort(rng.random((N, rows * cols)), axis=1)
    tiles = np.take_along_axis(tiles, order[:, :, None, None, None], axis=1)
    return tiles.reshape(N, rows, cols, patch, patch, C).transpose(0, 1, 3, 2, 4, 5).reshape(N, H, W, C)


def colour_blobs(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each image's own pixels re-placed as a round blob: the most common colour
    fills the background, the others fill discs around a random centre, most
    common nearest the centre.  The colour histogram is kept exactly."""
    N, H, W, C = images.shape
    out = np.empty_like(images)
    yy, xx = np.mgrid[0:H, 0:W]
    for i in range(N):
        pixels = images[i].reshape(-1, C)
        colours, inverse, counts = np.unique(pixels, axis=0, return_inverse=True, return_counts=True)
        rank = np.argsort(-counts, kind="stable")  # colour ids, most common first
        background, others = rank[0], rank[1:]
        cy, cx = rng.uniform(0.35, 0.65) * H, rng.uniform(0.35, 0.65) * W
        distance = np.hypot(yy - cy, (xx - cx) * H / W).ravel()
        by_distance = np.argsort(distance, kind="stable")
        filled = np.full(H * W, background)
        start = 0
        for colour in others:
            filled[by_distance[start:start + counts[colour]]] = colour
            start += counts[colour]
        del inverse
        out[i] = colours[filled].reshape(H, W, C)
    return out


def corrupted_sets(images: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "blur": blur(images),
        "shuffle8": shuffle_patches(images, 8, rng),
        "blobs": colour_blobs(images, rng),
        "noise": rng.integers(0, 256, images.shape, dtype=np.uint8),
        "wrong colours": np.roll(images, -1, axis=-1) if images.shape[-1] == 3 else 255 - images,
    }


def features(extractor, images: np.ndarray, batch: int = 256) -> np.ndarray:
    """(N, H, W, C) uint8 -> (N, dim) float features."""
    chunks = (torch.from_numpy(np.ascontiguousarray(images[s:s + batch])).permute(0, 3, 1, 2)
              for s in range(0, len(images), batch))
    return extractor.features(chunks)


def _extractor(ds, half_a: np.ndarray, name: str, recipe: dict | None, train_on: str):
    """The extractor and the seconds its training took (0: cached or not trained)."""
    if name != "dataset":
        return get_extractor(name, dataset=ds, log=True), 0.0
    from gankit.data.dataset import write_dataset
    from gankit.metrics import dataset_encoder

    full = {**dataset_encoder.RECIPE, **(recipe or {})}
    start = time.perf_counter()
    if train_on == "all":
        return dataset_encoder.load_or_train(ds, recipe=full), time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        reference = write_dataset(Path(tmp) / "half-a", half_a, source="calibration")
        return dataset_encoder.load_or_train(reference, recipe=full), time.perf_counter() - start


def calibrate(dataset: str, extractor_name: str = "dataset", num: int = 1000, seed: int = 0,
              recipe: dict | None = None, train_on: str = "reference") -> dict[str, dict]:
    ds = load_dataset(dataset)
    n = min(num, len(ds) // 2)
    pick = np.random.default_rng(seed).permutation(len(ds))
    half_a = np.asarray(ds.images[np.sort(pick[:n])])
    half_b = np.asarray(ds.images[np.sort(pick[n:2 * n])])
    extractor, train_seconds = _extractor(ds, half_a, extractor_name, recipe, train_on)
    reference = features(extractor, half_a)
    sets = {"real (held out)": half_b, **corrupted_sets(half_b, seed)}
    table = {}
    for name, images in sets.items():
        feats = features(extractor, images)
        scores = prdc(reference, feats)
        kid_mean, kid_std = kid(reference, feats, seed=seed)
        table[name] = {"precision": scores["precision"], "recall": scores["recall"], "density": scores["density"],
                       "kid_x1000": 1000 * kid_mean, "kid_std_x1000": 1000 * kid_std,
                       "fid": fid(reference, feats)}
    return {"dataset": str(dataset), "extractor": extractor.id, "images_per_set": n, "sets": table,
            "train_on": train_on, "recipe": recipe or {}, "train_seconds": round(train_seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("--extractor", default="dataset")
    parser.add_argument("--num", type=int, default=1000, help="images per set (at most half the data set)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the table here")
    parser.add_argument("--recipe", type=json.loads, default=None, help="JSON: values replacing the encoder recipe's")
    parser.add_argument("--train-on", choices=("reference", "all"), default="reference",
                        help="the encoder learns half A only (default) or the whole data set")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    result = calibrate(args.dataset, args.extractor, args.num, args.seed, args.recipe, args.train_on)
    print(f"{result['dataset']}: extractor {result['extractor']} (trained on {result['train_on']} in "
          f"{result['train_seconds']:.0f} s), {result['images_per_set']} images per set")
    print(f"{'set':<17} {'precision':>9} {'recall':>7} {'density':>7} {'KID x1000':>16} {'FID':>9}")
    for name, row in result["sets"].items():
        kid_text = f"{row['kid_x1000']:.2f} ± {row['kid_std_x1000']:.2f}"
        print(f"{name:<17} {row['precision']:>9.3f} {row['recall']:>7.3f} {row['density']:>7.3f} {kid_text:>16} "
              f"{row['fid']:>9.3f}")
    print(f"({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
