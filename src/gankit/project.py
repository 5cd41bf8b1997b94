"""`gankit project RUN IMAGE...`: find the latent z whose image looks most like a given one.

Why: projection answers "can my generator draw this?" for a real image, and
gives a starting point for editing it (interpolate from it, truncate it).
The generators here map z straight to pixels (no mapping network), so the
search runs in z itself, with Adam, from the best of a few random latents.

The loss is pixels plus a perceptual term built from the project's own
`dataset` extractor (a small encoder trained on the run's dataset, see
gankit.metrics.dataset_encoder), no downloaded network: the channel-normalised
activations of each of its blocks are compared, LPIPS-style, so an
image a pixel or two off still scores as close.  A weak prior keeps |z|
where training drew it (about sqrt(latent)), so the answer stays a latent
the generator knows.
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from gankit.errors import UsageError
from gankit.runpaths import RunDir

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")


@dataclass
class Projection:
    z: torch.Tensor  # (N, latent) the latents found
    images: torch.Tensor  # (N, C, H, W) in [-1, 1]: G(z)
    rmse: list[float]  # per image: root mean squared pixel error, in [0, 1] units (1 = black vs white)
    features: list[float]  # per image: the perceptual distance (0 = same features)


def _feature_maps(encoder: Any, x: torch.Tensor) -> list[torch.Tensor]:
    """Activations after each block of the dataset encoder, unit length over channels."""
    maps = []
    h = 2 * x - 1  # the encoder's own input convention (see Encoder.forward)
    for layer in encoder.body:
        h = layer(h)
        if isinstance(layer, nn.LeakyReLU):
            maps.append(h / (h.square().sum(dim=1, keepdim=True) + 1e-8).sqrt())
    return maps


class Loss(nn.Module):
    """Per-image distance between images (N, C, H, W) in [-1, 1] and fixed targets."""

    def __init__(self, extractor: Any, targets: torch.Tensor, feature_weight: float = 1.0):
        super().__init__()
        from gankit.metrics.dataset_encoder import resize
        from gankit.metrics.registry import to_unit_nchw

        self.extractor, self.weight = extractor, feature_weight
        self.prep = lambda x: resize(to_unit_nchw(x, extractor.channels, x.device), extractor.size)
        self.targets = targets
        with torch.no_grad():
            self.target_maps = _feature_maps(extractor.encoder, self.prep(targets))

    def parts(self, images: torch.Tensor, which: slice = slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
        """(pixel MSE in [-1, 1] units, perceptual distance), each (N,), against the targets
        ``which`` selects (one target broadcasts against many images)."""
        pixels = (images - self.targets[which]).square().flatten(1).mean(1)
        maps = _feature_maps(self.extractor.encoder, self.prep(images))
        feats = cast(torch.Tensor, sum((m - t[which]).square().sum(1).mean(dim=(1, 2))
                                       for m, t in zip(maps, self.target_maps)))
        return pixels, feats / len(maps)

    def forward(self, images: torch.Tensor, which: slice = slice(None)) -> torch.Tensor:
        pixels, feats = self.parts(images, which)
        return pixels + self.weight * feats


def project(G: nn.Module, targets: torch.Tensor, extractor: nn.Module, steps: int = 500, lr: float = 0.1,
            z_init: torch.Tensor | None = None, candidates: int = 64, seed: int = 0,
            feature_weight: float = 1.0, prior_weight: float = 1e-3) -> Projection:
    """Latents whose images match ``targets`` (N, C, H, W) in [-1, 1]; all images optimised at once."""
    device = next(G.parameters()).device
    targets = targets.to(device)
    extractor = extractor.to(device).eval().requires_grad_(False)
    loss_fn = Loss(extractor, targets, feature_weight)
    n = len(targets)
    if z_init is None:
        z_init = _best_start(G, loss_fn, n, candidates, seed)
    z = z_init.detach().clone().float().to(device).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps))
    for _ in range(steps):
        # the prior: |z|^2 / latent is ~1 for the Gaussian training latents
        prior = (z.square().mean(1) - 1).square()
        loss = (loss_fn(G(z)) + prior_weight * prior).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        images = G(z)
        pixels, feats = loss_fn.parts(images)
    rmse = (pixels.sqrt() / 2).tolist()  # [-1, 1] -> [0, 1] units
    return Projection(z.detach().cpu(), images.cpu(), rmse, feats.tolist())


@torch.no_grad()
def _best_start(G: Any, loss_fn: Loss, n: int, candidates: int, seed: int) -> torch.Tensor:
    """For each target, the best of ``candidates`` random latents (a good start avoids poor local minima)."""
    device = next(G.parameters()).device
    pool = torch.randn(candidates, G.latent, generator=torch.Generator().manual_seed(seed)).to(device)
    images = G(pool)
    return torch.stack([pool[int(loss_fn(images, slice(i, i + 1)).argmin())] for i in range(n)])


def load_images(paths: list[str], channels: int, height: int, width: int) -> tuple[torch.Tensor, list[str]]:
    """Image files -> (N, channels, height, width) in [-1, 1] (resized if needed) and notes on resizing."""
    from PIL import Image, UnidentifiedImageError

    out, notes = [], []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise UsageError(f"IMAGE: no such file {p}")
        try:
            with Image.open(path) as src:
                img = src.convert("RGB" if channels == 3 else "L")
                if img.size != (width, height):
                    notes.append(f"{path.name}: resized from {img.width}x{img.height} to {width}x{height}")
                    img = img.resize((width, height), Image.Resampling.BICUBIC)
                arr = np.asarray(img, dtype=np.float32)
        except (UnidentifiedImageError, OSError) as err:
            raise UsageError(f"IMAGE: cannot read {p} as an image: {err}") from None
        arr = arr[..., None] if arr.ndim == 2 else arr
        out.append(torch.from_numpy(arr).permute(2, 0, 1) / 127.5 - 1)
    return torch.stack(out), notes


def dataset_of(run: str, data: str | None) -> str:
    """The dataset the perceptual loss's encoder is trained on: --data, else the one RUN learnt."""
    if data:
        if not Path(data).is_dir():
            raise UsageError(f"--data: no such dataset folder {data}")
        return data
    path = Path(run)
    found = None
    if path.suffix == ".safetensors":
        from gankit.models.generator_file import read_header

        found = read_header(path).get("source", {}).get("data")
    else:
        files = RunDir.of(path)  # a run directory, or the run of a checkpoint file
        if files.config.is_file():
            from gankit.train.rundir import read_config

            found = (read_config(files.path) or {}).get("data")
    if not found or not Path(found).is_dir():
        where = f" ({found})" if found else ""
        raise UsageError(f"--data: the dataset that {run} learnt is not found here{where}; pass --data DATASET")
    return str(found)


def initial_latents(resume: str | None, stems: list[str], latent: int) -> torch.Tensor | None:
    """--resume-latent: a .npy of shape (latent,) or (N, latent), or a folder of <image name>.npy."""
    if resume is None:
        return None
    path = Path(resume)
    z: np.ndarray | None
    try:
        if path.is_dir():
            z = np.stack([np.load(path / f"{s}.npy", allow_pickle=False).reshape(-1) for s in stems])
        else:
            z = np.load(path, allow_pickle=False).reshape(-1, latent) if path.is_file() else None
    except (OSError, ValueError) as err:
        raise UsageError(f"--resume-latent: cannot read {resume}: {err}") from None
    if z is None:
        raise UsageError(f"--resume-latent: no such file or folder {resume}")
    if z.shape != (len(stems), latent):
        raise UsageError(f"--resume-latent: expected {len(stems)} latent(s) of size {latent}, got shape {z.shape}")
    return torch.from_numpy(z.astype(np.float32))


DESCRIPTION = """Find the latent z whose generated image is closest to each IMAGE (pixels plus
features of the encoder trained on the run's dataset), and write
<image>-projection.png (target | projection), <image>.npy and distances.json.

  gankit project runs/00003-breakout frame.png --steps 500
  gankit project runs/00003-breakout frame.png --steps 500 --resume-latent projections
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    from gankit.cli_helpers import HelpFormatter, add_generator_flags, positive_int

    p = sub.add_parser("project", help="find the latents that reproduce given images", description=DESCRIPTION,
                       formatter_class=HelpFormatter)
    p.add_argument("run", help="run directory, checkpoint or .safetensors generator file")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (resized to the generator's size)")
    # 500: where the breakout generator's own images came back within 0.01 RMSE (docs/using-a-generator.md)
    p.add_argument("--steps", type=positive_int, default=500, help="optimisation steps")
    p.add_argument("--out", default="projections",
                   help="folder for <image>-projection.png, <image>.npy, distances.json")
    p.add_argument("--data", default=None, help="dataset for the perceptual loss's encoder (default: the run's)")
    p.add_argument("--resume-latent", default=None, metavar="NPY|DIR",
                   help="start from these latents: a .npy, or a previous --out folder")
    # 0.1: faster than 0.05 in every measurement there
    p.add_argument("--lr", type=float, default=0.1, help="Adam learning rate on z")
    p.add_argument("--feature-weight", type=float, default=1.0, help="weight of the perceptual term (pixels: 1)")
    p.add_argument("--candidates", type=positive_int, default=64, help="random latents tried as starting points")
    p.add_argument("--seed", type=int, default=0, help="seed of those random latents")
    add_generator_flags(p, device="cpu")
    p.set_defaults(func=run, _parser=p)


def run(args: argparse.Namespace) -> int:
    from gankit.device import resolve_device
    from gankit.metrics.registry import get_extractor
    from gankit.monitor.images import make_grid, upscale
    from gankit.sample import load_generator

    args.device = resolve_device(args.device)
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise UsageError(f"--lr: expected a positive number, got {args.lr}")
    G: Any = load_generator(args.run, None if Path(args.run).suffix == ".safetensors" else args.checkpoint,
                       ema=not args.no_ema, device=args.device)
    targets, notes = load_images(args.images, G.channels, G.height, G.width)
    stems = [Path(p).stem for p in args.images]
    if len(set(stems)) != len(stems):
        raise UsageError("IMAGE: two images share a file name; their outputs would overwrite each other")
    z0 = initial_latents(args.resume_latent, stems, G.latent)
    extractor = get_extractor("dataset", dataset=dataset_of(args.run, args.data), device=args.device, log=True)
    for note in notes:
        print(note)
    result = project(G, targets, extractor, args.steps, args.lr, z0, args.candidates, args.seed, args.feature_weight)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {}
    for i, stem in enumerate(stems):
        pair = upscale(make_grid(torch.stack([targets[i], result.images[i]])))  # target | projection
        pair.save(out / f"{stem}-projection.png")
        np.save(out / f"{stem}.npy", result.z[i].numpy())
        psnr = -20 * math.log10(max(result.rmse[i], 1e-8))
        record[stem] = {"image": str(args.images[i]), "rmse": result.rmse[i], "psnr_db": psnr,
                        "feature_distance": result.features[i], "steps": args.steps}
        print(f"{stem}: pixel RMSE {result.rmse[i]:.4f} (PSNR {psnr:.1f} dB), "
              f"feature distance {result.features[i]:.4f} -> {out / (stem + '-projection.png')}, {stem}.npy")
    (out / "distances.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {len(stems)} projection(s) to {out} (target | projection; latents as .npy; distances.json)")
    return 0
