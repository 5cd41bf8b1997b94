"""Using a trained generator: `gankit sample`, `gankit interpolate` and
`gankit.load_generator(run)`.

The generator is rebuilt from the checkpoint's own config and image shape, so
a run directory (or a single checkpoint file) is all that is needed.  The
EMA generator is used unless ``ema=False`` / ``--no-ema``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from gankit.config import TrainConfig
from gankit.cli import positive_int
from gankit.errors import UsageError
from gankit.models import config_generator
from gankit.train import checkpoint as ckpt


CHECKPOINT_HELP = ("best (the best evaluated state, checkpoints/best.pt), last (the newest), a file, or a name "
                   "in checkpoints/ (default: best when the run has one, else last)")


def find_checkpoint(run: str | Path, checkpoint: str | Path | None = None) -> Path:
    """A checkpoint file from a run directory.

    ``checkpoint`` may be a path, a file name inside ``checkpoints/``, ``best``
    or ``last``.  None means the run's best state (``best.pt``, kept by the
    evaluation score during training) when it has one, else the newest."""
    run = Path(run)
    if run.is_file():
        return run
    if not run.is_dir():
        raise UsageError(f"RUN: no such run directory {run}")
    folder = run / "checkpoints"
    if checkpoint in (None, "best"):
        if (folder / ckpt.BEST).is_file():
            return folder / ckpt.BEST
        if checkpoint == "best":
            raise UsageError(f"--checkpoint: {run} has no best.pt (it is written when training evaluates, "
                             "--eval-every-kimg K); use --checkpoint last")
    elif checkpoint != "last":
        path = Path(checkpoint)
        if not path.is_file():
            path = folder / str(checkpoint)
        if not path.is_file():
            raise UsageError(f"--checkpoint: no such checkpoint {checkpoint}")
        return path
    found = ckpt.latest_checkpoint(folder)
    if found is None:
        raise UsageError(f"RUN: no checkpoint in {folder}")
    return found


def load_generator(run: str | Path, checkpoint: str | Path | None = None, ema: bool = True,
                   device: str | torch.device = "cpu") -> nn.Module:
    """The trained generator in eval mode: z (B, G.latent) -> images (B, C, H, W) in [-1, 1]."""
    path = find_checkpoint(run, checkpoint)
    state = ckpt.load_checkpoint(path)
    cfg = TrainConfig.from_dict(state["config"])
    G = config_generator(cfg, tuple(state["shape"]))
    try:
        G.load_state_dict(state["G_ema" if ema else "G"])
    except RuntimeError as err:
        raise UsageError(f"checkpoint {path} does not match its own config: {str(err).splitlines()[0]}") from None
    return G.to(device).eval().requires_grad_(False)


@torch.no_grad()
def generate(G: nn.Module, num: int, seed: int = 0, batch: int = 256) -> torch.Tensor:
    """``num`` images from latents drawn with ``seed``: (num, C, H, W) in [-1, 1] on the CPU."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(num, G.latent, generator=gen)
    device = next(G.parameters()).device
    return torch.cat([G(z[i:i + batch].to(device)).float().cpu() for i in range(0, num, batch)])


def _save_images(images: torch.Tensor, out: Path) -> list[Path]:
    from PIL import Image

    from gankit.monitor.images import make_grid, to_uint8

    if out.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"):
        out.parent.mkdir(parents=True, exist_ok=True)
        make_grid(images).save(out)
        return [out]
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, arr in enumerate(to_uint8(images)):
        path = out / f"{i:05d}.png"
        Image.fromarray(arr if images.shape[1] == 3 else arr[..., 0]).save(path)
        paths.append(path)
    return paths


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation: keeps |z| typical of a Gaussian latent along the path."""
    an, bn = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((an * bn).sum(-1, keepdim=True).clamp(-1, 1))
    so = torch.sin(omega)
    if float(so.abs().min()) < 1e-6:
        return (1 - t) * a + t * b
    return torch.sin((1 - t) * omega) / so * a + torch.sin(t * omega) / so * b


@torch.no_grad()
def interpolate(G: nn.Module, points: int = 4, steps: int = 16, seed: int = 0, count: int = 1) -> torch.Tensor:
    """A closed walk through ``points`` random latents: (points*steps, count, C, H, W)."""
    gen = torch.Generator().manual_seed(seed)
    keys = torch.randn(points, count, G.latent, generator=gen)
    device = next(G.parameters()).device
    frames = []
    for p in range(points):
        a, b = keys[p], keys[(p + 1) % points]
        for s in range(steps):
            frames.append(G(slerp(a, b, s / steps).to(device)).float().cpu())
    return torch.stack(frames)


def add_parser(sub: argparse._SubParsersAction) -> None:
    from gankit.cli import HelpFormatter

    s = sub.add_parser("sample", help="write images from a trained generator", formatter_class=HelpFormatter)
    s.add_argument("run", help="run directory (or a checkpoint file)")
    s.add_argument("--num", type=positive_int, default=64, help="number of images")
    s.add_argument("--out", default="samples", help="a folder (one PNG per image) or a .png file (one grid)")
    s.add_argument("--seed", type=int, default=0, help="latent seed: the same seed gives the same images")
    s.add_argument("--checkpoint", default=None, help=CHECKPOINT_HELP)
    s.add_argument("--no-ema", action="store_true", help="use the raw generator instead of its EMA")
    s.add_argument("--device", default="cpu", help="cpu or cuda")
    s.set_defaults(func=run_sample, _parser=s)

    i = sub.add_parser("interpolate", help="animated walk through latent space", formatter_class=HelpFormatter)
    i.add_argument("run", help="run directory (or a checkpoint file)")
    i.add_argument("--out", default="walk.gif", help="output GIF")
    i.add_argument("--points", type=positive_int, default=4, help="random latents visited (the walk is a loop)")
    i.add_argument("--steps", type=positive_int, default=16, help="frames between two latents")
    i.add_argument("--grid", type=positive_int, default=4, help="walks shown side by side (a grid of this many)")
    i.add_argument("--seed", type=int, default=0, help="latent seed")
    i.add_argument("--checkpoint", default=None, help=CHECKPOINT_HELP)
    i.add_argument("--no-ema", action="store_true", help="use the raw generator instead of its EMA")
    i.add_argument("--fps", type=positive_int, default=12, help="GIF frames per second")
    i.set_defaults(func=run_interpolate, _parser=i)


def run_sample(args: argparse.Namespace) -> int:
    G = load_generator(args.run, args.checkpoint, ema=not args.no_ema, device=args.device)
    paths = _save_images(generate(G, args.num, args.seed), Path(args.out))
    print(f"wrote {args.num} images to {args.out}" + ("" if len(paths) > 1 else " (one grid)"))
    return 0


def run_interpolate(args: argparse.Namespace) -> int:
    from gankit.monitor.images import make_grid

    G = load_generator(args.run, args.checkpoint, ema=not args.no_ema)
    frames = interpolate(G, args.points, args.steps, args.seed, args.grid)
    images = [make_grid(f) for f in frames]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(out, save_all=True, append_images=images[1:], duration=int(1000 / args.fps), loop=0)
    print(f"wrote {len(images)} frames to {out}")
    return 0
