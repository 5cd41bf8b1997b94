"""Shape counted from pixels: figure-ground statistics for images drawn on a plain background.

Why this exists: at equal images, variants of `small64` whose sample grids
differ by eye (figures with two or three colours and closed outlines, against
sprays of thin fragments in four colours) scored within the noise of each
other on KID (docs/presets/small64.md).  The `dataset` extractor is learned and
its fine rankings are not known to be right (docs/small-data.md).  For sets
whose pictures stand on one background colour (sprites, icons, emoji), the
things a viewer sees can be counted instead, with no learned part:

- ``area``: the share of the picture that is figure (not background);
- ``parts``: the figure's 8-connected pieces of at least ``MIN_PART`` pixels;
- ``specks``: the pieces smaller than that (stray pixels);
- ``main``: the largest piece's share of the pieces' pixels (specks left
  out; 1.0 for one solid shape, low for a spray of fragments);
- ``outline``: boundary pixels of the pieces (specks left out) over the
  square root of their pixels (a disc ~3.5, a sprite ~7.6, a spray of
  fragments far more);
- ``colours``: how many colour families (4 levels a channel, 64 in all) cover
  90% of the figure's pixels.

A generated set is compared with held-out real images statistic by
statistic: the 1-D earth mover's distance between the two distributions in
units of the real set's standard deviation (0 = the same distribution);
``shape`` averages it over area, parts, main and outline.
The floor is the same distance between an equal-sized sample of the
training images and the held-out ones.  Shape-destroyed copies of the
held-out images (blur, 8-px patch shuffles, colour blobs, from
`gankit.metrics.shape_negatives`) are printed beside them as a calibration.

    python benchmarks/figure_ground.py --data data/sprites64 RUN [RUN ...] [--num 1548] [--json out.json]

A RUN is a training run folder (its best-else-newest checkpoint, EMA weights,
as `gankit eval RUN` scores it).  The dataset needs a `gankit data split`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage, stats

STATS = ("area", "parts", "specks", "main", "outline", "colours")
SHAPE = ("area", "parts", "main", "outline")  # what a silhouette is; specks and colours are cleanliness
MIN_PART = 8  # pixels; smaller pieces are specks (a 64-px sprite's eye is ~4-9 px, so it may count as either)
FIGURE_LEVEL = 40  # a pixel is figure when a channel differs from the background by more than this (of 255)
COVER = 0.9  # colour families counted until they hold this share of the figure
EIGHT = np.ones((3, 3), bool)  # 8-connectivity


def background_colour(img: np.ndarray) -> np.ndarray:
    """The median colour of the one-pixel border (H, W, C uint8 -> C)."""
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    return np.median(border, axis=0)


def figure_mask(img: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels that differ from the background colour."""
    diff = np.abs(img.astype(np.int16) - background_colour(img).astype(np.int16))
    return diff.max(axis=-1) > FIGURE_LEVEL


def image_stats(img: np.ndarray) -> dict[str, float]:
    """The statistics of one image (H, W, C uint8)."""
    mask = figure_mask(img)
    n = int(mask.sum())
    if n == 0:
        return {"area": 0.0, "parts": 0.0, "specks": 0.0, "main": 0.0, "outline": 0.0, "colours": 0.0}
    labels, count = ndimage.label(mask, structure=EIGHT)
    sizes = np.bincount(labels.ravel())[1:]
    pieces = np.isin(labels, 1 + np.flatnonzero(sizes >= MIN_PART))
    inner = ndimage.binary_erosion(pieces, structure=np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool),
                                   border_value=0)
    fams = (img[mask] // 64).astype(np.int64)  # (n, C) in 0..3
    codes = fams[:, 0] * 16 + fams[:, 1] * 4 + fams[:, 2] if img.shape[-1] == 3 else fams[:, 0]
    share = np.sort(np.bincount(codes))[::-1].cumsum() / n
    return {
        "area": n / mask.size,
        "parts": float((sizes >= MIN_PART).sum()),
        "specks": float((sizes < MIN_PART).sum()),
        "main": float(sizes.max()) / max(1, int(pieces.sum())) if sizes.max() >= MIN_PART else 0.0,
        "outline": float((pieces & ~inner).sum()) / np.sqrt(max(1, int(pieces.sum()))),
        "colours": float(np.searchsorted(share, COVER - 1e-9) + 1),
    }


def set_stats(images: np.ndarray) -> dict[str, np.ndarray]:
    """Each statistic over a set (N, H, W, C uint8) -> {name: (N,) array}."""
    rows = [image_stats(img) for img in images]
    return {k: np.array([r[k] for r in rows]) for k in STATS}


def distances(fake: dict[str, np.ndarray], real: dict[str, np.ndarray]) -> dict[str, float]:
    """Per statistic: earth mover's distance between the two sets in units of
    the real set's standard deviation (of 1 when the real set has none);
    ``shape`` averages those of SHAPE."""
    out = {}
    for k in STATS:
        spread = float(real[k].std()) or 1.0
        out[k] = float(stats.wasserstein_distance(fake[k], real[k])) / spread
    out["shape"] = float(np.mean([out[k] for k in SHAPE]))
    return out


def summary(values: dict[str, np.ndarray]) -> dict[str, float]:
    """Medians, plus the share of images in pieces (``main`` < 0.8) and with specks."""
    out = {f"median_{k}": float(np.median(values[k])) for k in STATS}
    out["share_fragmented"] = float((values["main"] < 0.8).mean())
    out["share_specks"] = float((values["specks"] > 0).mean())
    return out


def _generated(run: Path, num: int, seed: int) -> np.ndarray:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from gankit.monitor.images import to_uint8
    from gankit.sample import generate
    from small_data_eval import load_run_generator

    G, _ = load_run_generator(run)
    return to_uint8(generate(G, num, seed=seed))


def _destroyed(images: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    import torch

    from gankit.metrics.shape_negatives import blur, colour_blobs, shuffle_patches

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255)
    out = {}
    for name, fn in (("blur", blur), ("shuffle", shuffle_patches), ("blobs", colour_blobs)):
        g = torch.Generator().manual_seed(seed)
        y = torch.cat([fn(x[i:i + 1], g) for i in range(len(x))])  # one draw per image
        out[name] = np.ascontiguousarray(y.clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).numpy())
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="*", type=Path, help="training run folders")
    p.add_argument("--data", type=Path, required=True, help="the dataset (with a `gankit data split`)")
    p.add_argument("--num", type=int, default=1548, help="generated images per run (default 1548)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write every figure here")
    args = p.parse_args(argv)

    from gankit.data import load_dataset
    from gankit.data.split import read_split

    ds = load_dataset(args.data)
    split = read_split(ds)
    if split is None:
        p.error(f"--data: {args.data} has no split; run `gankit data split {args.data} --holdout 0.1`")
    images = np.asarray(ds.images)
    held = images[split.heldout]
    rng = np.random.default_rng(args.seed)
    train = images[np.sort(rng.choice(split.training, len(held), replace=False))]
    real = set_stats(held)

    sets: dict[str, dict[str, np.ndarray]] = {"real (training sample)": set_stats(train)}
    sets.update({name: set_stats(x) for name, x in _destroyed(held, args.seed).items()})
    for run in args.runs:
        sets[run.name] = set_stats(_generated(run, args.num, args.seed))

    report: dict[str, Any] = {"held out": {"num": len(held), **summary(real)}}
    head = ["set", "n", *(f"d {k}" for k in STATS), "d shape", "in pieces", "with specks", "colours (median)"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    ref = summary(real)
    print(f"| real (held out) | {len(held)} | " + " | ".join("0" for _ in STATS) +
          f" | 0 | {ref['share_fragmented']:.2f} | {ref['share_specks']:.2f} | {ref['median_colours']:.0f} |")
    for name, values in sets.items():
        d, s = distances(values, real), summary(values)
        report[name] = {"num": len(values["area"]), **s, **{f"d_{k}": v for k, v in d.items()}}
        print(f"| {name} | {len(values['area'])} | " + " | ".join(f"{d[k]:.2f}" for k in STATS) +
              f" | **{d['shape']:.2f}** | {s['share_fragmented']:.2f} | {s['share_specks']:.2f} | "
              f"{s['median_colours']:.0f} |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
