"""How far FID is biased at small N, and why KID is the headline on small sets.

FID's estimate from N images a side is biased upward by a term that shrinks
like 1/N (Chong & Forsyth 2020, "Effectively unbiased FID"): two disjoint
halves of one real set score above 0, and a fixed degradation scores higher
at N = 500 than at N = 2000.  KID's estimate is unbiased at every N; only its
spread grows.  This script measures both on one data set:

- ``real vs real``: two disjoint random halves of the data set, N images each
  (the true distance is 0: every FID above 0 is bias);
- ``degraded``: N images of half B, each with Gaussian pixel noise (sigma 8 of
  255) and a 1-pixel shift, against N images of half A: a fixed "generator"
  that is close to real but not equal.

For N = 250, 500, 1000, 2000 and all of half a data set (as far as it has
them) it draws ``--repeats`` random subsets, and prints the mean ± std over
draws of FID and KID (x1000), precision and recall, and the FID bias:
FID(N) minus FID extrapolated to infinite N by a straight-line fit of FID
against 1/N.  With ``--plot PNG`` it draws FID and KID against N.

    python benchmarks/fid_bias.py data/breakout --plot docs/fid-bias.png
    python benchmarks/fid_bias.py data/sprites64 --json out.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from gankit.data import load_dataset
from gankit.metrics.fid import fid
from gankit.metrics.kid import kid
from gankit.metrics.prdc import prdc
from gankit.metrics.registry import get_extractor

SIZES = (250, 500, 1000, 2000)


def degrade(images: np.ndarray, seed: int) -> np.ndarray:
    """(N, H, W, C) uint8 -> noisy (sigma 8) and shifted by one pixel right (edge repeated)."""
    rng = np.random.default_rng(seed)
    shifted = np.concatenate([images[:, :, :1], images[:, :, :-1]], axis=2)
    return np.clip(shifted + rng.normal(0, 8, images.shape), 0, 255).round().astype(np.uint8)


def features(extractor, images: np.ndarray, batch: int = 256) -> np.ndarray:
    chunks = (torch.from_numpy(np.ascontiguousarray(images[s:s + batch])).permute(0, 3, 1, 2)
              for s in range(0, len(images), batch))
    return extractor.features(chunks)


def scores(a: np.ndarray, b: np.ndarray, seed: int) -> dict[str, float]:
    pr = prdc(a, b)
    kid_mean, kid_std = kid(a, b, seed=seed)
    return {"fid": fid(a, b), "kid_x1000": 1000 * kid_mean, "kid_std_x1000": 1000 * kid_std,
            "precision": pr["precision"], "recall": pr["recall"]}


def measure(dataset: str, extractor_name: str = "dataset", repeats: int = 3, seed: int = 0,
            sizes: tuple[int, ...] = SIZES) -> dict:
    ds = load_dataset(dataset)
    extractor = get_extractor(extractor_name, dataset=ds, log=True)
    half = len(ds) // 2
    pick = np.random.default_rng(seed).permutation(len(ds))
    a_idx, b_idx = np.sort(pick[:half]), np.sort(pick[half:2 * half])
    feats_a = features(extractor, np.asarray(ds.images[a_idx]))
    images_b = np.asarray(ds.images[b_idx])
    sets = {"real vs real": features(extractor, images_b), "degraded": features(extractor, degrade(images_b, seed))}
    sizes = [n for n in sizes if n < half] + [half]
    rows: dict[str, list[dict]] = {name: [] for name in sets}
    rng = np.random.default_rng(seed + 1)
    for name, feats_b in sets.items():
        for n in sizes:
            draws = [scores(feats_a[rng.choice(half, n, replace=False)], feats_b[rng.choice(half, n, replace=False)],
                            seed + r) for r in range(1 if n == half else repeats)]
            row = {"n": n, **{k: float(np.mean([d[k] for d in draws])) for k in draws[0]},
                   "fid_spread": float(np.std([d["fid"] for d in draws]))}
            rows[name].append(row)
        inv = np.array([1 / r["n"] for r in rows[name]])
        slope, limit = np.polyfit(inv, np.array([r["fid"] for r in rows[name]]), 1)
        for r in rows[name]:
            r["fid_bias"] = r["fid"] - limit
        rows[name].append({"n": "inf (fit)", "fid": float(limit), "slope": float(slope)})
    return {"dataset": str(dataset), "extractor": extractor.id, "images": len(ds), "repeats": repeats, "sets": rows}


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_fid, ax_kid) = plt.subplots(1, 2, figsize=(10, 4))
    for name, rows in result["sets"].items():
        measured = [r for r in rows if isinstance(r["n"], int)]
        n = np.array([r["n"] for r in measured])
        line = ax_fid.plot(n, [r["fid"] for r in measured], "o-", label=f"{name}")[0]
        ax_fid.axhline(rows[-1]["fid"], color=line.get_color(), ls=":", lw=1, label=f"{name}: N -> inf (1/N fit)")
        ax_kid.errorbar(n, [r["kid_x1000"] for r in measured], yerr=[r["kid_std_x1000"] for r in measured],
                        fmt="o-", capsize=3, label=name)
    for ax, title in ((ax_fid, "FID (mean over draws)"), (ax_kid, "KID x1000 (mean ± std over subsets)")):
        ax.set_xscale("log")
        ax.set_xlabel("images a side (N)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax_kid.axhline(0, color="k", lw=0.8)
    fig.suptitle(f"{Path(result['dataset']).name}: {result['extractor']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("--extractor", default="dataset")
    parser.add_argument("--repeats", type=int, default=3, help="random draws per N (one at the full half)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sizes", type=lambda t: tuple(int(v) for v in t.split(",")), default=SIZES,
                        help="comma-separated N below the full half")
    parser.add_argument("--json", help="also write the table here")
    parser.add_argument("--plot", help="draw FID and KID against N into this PNG")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    result = measure(args.dataset, args.extractor, args.repeats, args.seed, args.sizes)
    print(f"{result['dataset']} ({result['images']} images): extractor {result['extractor']}, "
          f"{result['repeats']} draws per N")
    print(f"{'set':<13} {'N':>9} {'FID':>16} {'FID bias':>9} {'KID x1000':>15} {'precision':>9} {'recall':>7}")
    for name, rows in result["sets"].items():
        for r in rows:
            if not isinstance(r["n"], int):
                print(f"{name:<13} {r['n']:>9} {r['fid']:>16.4f}")
                continue
            fid_text = f"{r['fid']:.4f} ± {r['fid_spread']:.4f}"
            kid_text = f"{r['kid_x1000']:.2f} ± {r['kid_std_x1000']:.2f}"
            print(f"{name:<13} {r['n']:>9} {fid_text:>16} {r['fid_bias']:>9.4f} {kid_text:>15} "
                  f"{r['precision']:>9.3f} {r['recall']:>7.3f}")
    if args.plot:
        plot(result, args.plot)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    print(f"({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
