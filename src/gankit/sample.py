"""Using a trained generator: `gankit sample`, `gankit interpolate` and
`gankit.load_generator(run)`.

The generator is rebuilt from the checkpoint's own config and image shape, so
a run directory (or a single checkpoint file) is all that is needed.  The
EMA generator is used unless ``ema=False`` / ``--no-ema``.  A ``.safetensors``
file written by `gankit export` works wherever a run does (it holds one
generator, so ``checkpoint`` and ``ema`` do not apply to it).

Truncation trades diversity for typical-looking images; see `truncate`.
A conditional generator (``G.num_classes`` > 0, ``G.classes`` its class names)
draws the class asked for (``--class``, ``classes=``), one row per class with
``--per-class``, or classes drawn uniformly from the seed.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from gankit import cli_helpers
from gankit.cli_helpers import positive_int
from gankit.config import TrainConfig
from gankit.device import resolve_device
from gankit.errors import UsageError
from gankit.inputs import expect_run
from gankit.models import config_generator
from gankit.models.common import class_count, latent_size
from gankit.runpaths import RunDir
from gankit.train import checkpoint as ckpt

SAFETENSORS = ".safetensors"  # gankit export's weights-only generator file


CHECKPOINT_HELP = cli_helpers.CHECKPOINT_HELP  # also read by the commands that import it from here


def find_checkpoint(run: str | Path, checkpoint: str | Path | None = None) -> Path:
    """A checkpoint file from a run directory.

    ``checkpoint`` may be a path, a file name inside ``checkpoints/``, ``best``
    or ``last``.  None means the run's best state (``best.pt``, kept by the
    evaluation score during training) when it has one, else the newest."""
    run = expect_run(run)
    if run.is_file():
        return run
    return RunDir(run).pick_checkpoint(checkpoint)


def load_generator(run: str | Path, checkpoint: str | Path | None = None, ema: bool = True,
                   device: str | torch.device = "cpu") -> nn.Module:
    """The trained generator in eval mode: z (B, latent_size(G)) -> images (B, C, H, W) in [-1, 1]."""
    if isinstance(device, str):
        device = resolve_device(device, "device")
    if Path(run).suffix == SAFETENSORS:
        from gankit.models.generator_file import load_generator_file

        return load_generator_file(run, device)  # no pickle: weights and a JSON header only
    path = find_checkpoint(run, checkpoint)
    state = ckpt.load_checkpoint(path)
    cfg = TrainConfig.from_dict(state["config"])
    classes = list(state.get("classes") or [])  # conditional runs only; older checkpoints have none
    G = config_generator(cfg, tuple(state["shape"]), len(classes))
    try:
        G.load_state_dict(state["G_ema" if ema else "G"])
    except RuntimeError as err:
        raise UsageError(f"checkpoint {path} does not match its own config: {str(err).splitlines()[0]}") from None
    G.classes = classes  # type: ignore[assignment]  # names for --class and grids
    return G.to(device).eval().requires_grad_(False)


def class_names(G: nn.Module) -> list[str]:
    """The generator's class names (index order); [] for an unconditional one."""
    names = list(getattr(G, "classes", None) or (getattr(G, "header", None) or {}).get("classes") or [])
    K = class_count(G)
    return names if len(names) == K else [str(i) for i in range(K)]


def pick_class(G: nn.Module, value: str | int, flag: str = "--class") -> int:
    """A class name or index of ``G`` -> its index; UsageError listing the valid ones."""
    from gankit.data.dataset import resolve_class

    if not class_count(G):
        raise UsageError(f"{flag}: this generator is unconditional (trained without labels); drop {flag}")
    return resolve_class(class_names(G), value, flag)


def class_labels(G: nn.Module, num: int, classes: int | Sequence[int] | None = None,
                 gen: torch.Generator | None = None) -> torch.Tensor | None:
    """(num,) int64 classes to draw, or None for an unconditional generator.
    ``classes``: None (uniform draws from ``gen``), one index, or ``num`` indices."""
    K = class_count(G)
    if not K:
        if classes is not None:
            raise UsageError("classes: this generator is unconditional (trained without labels)")
        return None
    if classes is None:
        return torch.randint(K, (num,), generator=gen)
    y = torch.full((num,), int(classes), dtype=torch.int64) if isinstance(classes, int) else \
        torch.as_tensor(list(classes), dtype=torch.int64)
    if y.shape != (num,):
        raise UsageError(f"classes: expected one class per image ({num}), got {len(y)}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= K):
        raise UsageError(f"classes: indices must be in 0..{K - 1} ({', '.join(class_names(G))})")
    return y


def call(G: nn.Module, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """G(z), or G(z, y) for a conditional generator, on G's device; float on the CPU."""
    device = next(G.parameters()).device
    out = G(z.to(device)) if y is None else G(z.to(device), y.to(device))
    return out.float().cpu()


def truncate(z: torch.Tensor, psi: float, G: nn.Module | None = None) -> torch.Tensor:
    """The truncation trick: latents pulled towards the typical ones by ``psi``
    (1: unchanged, 0: every latent becomes the mean latent).

    A generator with its own ``truncate(z, psi)`` (one with a mapping network:
    lerp towards the mean w) decides itself.  For the plain-z generators every
    component z_i ~ N(0, 1) is mapped through the normal CDF to u, squeezed
    to the central ``psi`` of the probability mass and mapped back:
    z_i' = Phi^-1(1/2 + psi (Phi(z_i) - 1/2)).  That is exactly a draw from the
    normal truncated at +-Phi^-1((1 + psi) / 2) (BigGAN's resampling beyond a
    threshold, 1.04 at psi = 0.7), but computed from the same z, so one seed
    changes smoothly as psi moves, and psi = 0 gives z = 0, the mean.
    """
    if not 0.0 <= psi <= 1.0:
        raise UsageError(f"--truncation: psi must be between 0 and 1, got {psi}")
    if psi == 1.0:
        return z
    own = getattr(G, "truncate", None) if G is not None else None
    if callable(own):
        return own(z, psi)
    u = torch.special.ndtr(z.double())  # double: keeps the tails (|z| up to ~8) invertible
    return torch.special.ndtri(0.5 + (u - 0.5) * psi).to(z.dtype)


def seed_latents(G: nn.Module, seeds: list[int], truncation: float = 1.0) -> torch.Tensor:
    """One latent per seed, (len(seeds), latent): seed s gives the first image
    of `gankit sample --seed s`, whatever else is drawn beside it."""
    z = torch.stack([torch.randn(latent_size(G), generator=torch.Generator().manual_seed(s)) for s in seeds])
    return truncate(z, truncation, G)


@torch.no_grad()
def generate(G: nn.Module, num: int, seed: int = 0, batch: int = 256, truncation: float = 1.0,
             classes: int | Sequence[int] | None = None) -> torch.Tensor:
    """``num`` images from latents drawn with ``seed``: (num, C, H, W) in [-1, 1] on the CPU.
    ``truncation`` < 1 trades diversity for typical images (see `truncate`).
    ``classes`` (conditional generators): one class index for all, one per image, or
    None for classes drawn uniformly with ``seed`` (after the latents)."""
    gen = torch.Generator().manual_seed(seed)
    z = truncate(torch.randn(num, latent_size(G), generator=gen), truncation, G)
    y = class_labels(G, num, classes, gen)
    return torch.cat([call(G, z[i:i + batch], None if y is None else y[i:i + batch]) for i in range(0, num, batch)])


@torch.no_grad()
def per_class_grid(G: nn.Module, per_class: int, seed: int = 0, truncation: float = 1.0) -> torch.Tensor:
    """(classes * per_class, C, H, W): row r is class r, column c latent c of ``seed`` in every row."""
    K = len(class_names(G))
    if not K:
        raise UsageError("--per-class: this generator is unconditional (trained without labels)")
    z = truncate(torch.randn(per_class, latent_size(G), generator=torch.Generator().manual_seed(seed)), truncation, G)
    return torch.cat([call(G, z, torch.full((per_class,), k, dtype=torch.int64)) for k in range(K)])


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
def interpolate(G: nn.Module, points: int = 4, steps: int = 16, seed: int = 0, count: int = 1,
                truncation: float = 1.0, classes: int | Sequence[int] | None = None) -> torch.Tensor:
    """A closed walk through ``points`` random latents: (points*steps, count, C, H, W).
    A conditional generator keeps each walk's class (``classes``; None: drawn with ``seed``)."""
    gen = torch.Generator().manual_seed(seed)
    keys = truncate(torch.randn(points, count, latent_size(G), generator=gen), truncation, G)
    y = class_labels(G, count, classes, gen)
    frames = []
    for p in range(points):
        a, b = keys[p], keys[(p + 1) % points]
        for s in range(steps):
            frames.append(call(G, slerp(a, b, s / steps), y))
    return torch.stack(frames)


@torch.no_grad()
def class_walk(G: nn.Module, start: int, end: int, steps: int = 16, seed: int = 0, count: int = 1,
               truncation: float = 1.0) -> torch.Tensor:
    """Fixed latents while the conditioning moves from class ``start`` to ``end`` and
    back: (2*steps, count, C, H, W).  The class input is a mix (1 - t) one_hot(start)
    + t one_hot(end), so every class-dependent gain and bias of G moves linearly."""
    K = class_count(G)
    z = truncate(torch.randn(count, latent_size(G), generator=torch.Generator().manual_seed(seed)), truncation, G)
    one = torch.eye(K)
    ts = [s / steps for s in range(steps)] + [1 - s / steps for s in range(steps)]  # there and back: a loop
    return torch.stack([call(G, z, ((1 - t) * one[start] + t * one[end]).expand(count, K)) for t in ts])


def add_parser(sub: argparse._SubParsersAction) -> None:
    from gankit.cli_helpers import HelpFormatter

    s = sub.add_parser("sample", help="write images from a trained generator", formatter_class=HelpFormatter)
    s.add_argument("run", help="run directory (or a checkpoint file)")
    s.add_argument("--num", type=positive_int, default=64, help="number of images")
    s.add_argument("--out", default="samples", help="a folder (one PNG per image) or a .png file (one grid)")
    s.add_argument("--seed", type=int, default=0, help="latent seed: the same seed gives the same images")
    cli_helpers.add_generator_flags(s)
    s.add_argument("--truncation", type=psi_value, default=1.0, metavar="PSI",
                   help="truncation psi in [0, 1]: lower gives more typical, less varied images (1: off)")
    s.add_argument("--truncation-sweep", type=positive_int, nargs="?", const=6, default=None, metavar="COLS",
                   help="one grid: a row per latent, COLS columns with psi from 1.0 down to 0.0 (COLS: 6)")
    s.add_argument("--class", dest="cls", default=None, metavar="NAME",
                   help="conditional runs: draw this class (name or index; default: classes drawn at random)")
    s.add_argument("--per-class", type=positive_int, default=None, metavar="N",
                   help="conditional runs: one grid, a row of N images per class (the same latents in each row)")
    s.set_defaults(func=run_sample, _parser=s)

    i = sub.add_parser("interpolate", help="animated walk through latent space", formatter_class=HelpFormatter)
    i.add_argument("run", help="run directory (or a checkpoint file)")
    i.add_argument("--out", default="walk.gif", help="output GIF")
    i.add_argument("--points", type=positive_int, default=4, help="random latents visited (the walk is a loop)")
    i.add_argument("--steps", type=positive_int, default=16, help="frames between two latents")
    i.add_argument("--grid", type=positive_int, default=4, help="walks shown side by side (a grid of this many)")
    i.add_argument("--seed", type=int, default=0, help="latent seed")
    i.add_argument("--fps", type=positive_int, default=12, help="GIF frames per second")
    cli_helpers.add_generator_flags(i)
    i.add_argument("--truncation", type=psi_value, default=1.0, metavar="PSI", help="truncation psi in [0, 1] (1: off)")
    i.add_argument("--class", dest="cls", default=None, metavar="NAME",
                   help="conditional runs: walk through latents of this class (default: a random class per walk)")
    i.add_argument("--class-from", default=None, metavar="NAME",
                   help="conditional runs: keep the latents fixed and morph the class from this one ...")
    i.add_argument("--class-to", default=None, metavar="NAME", help="... to this one and back")
    i.set_defaults(func=run_interpolate, _parser=i)


def psi_value(text: str) -> float:
    """argparse type for a truncation psi: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
    return value


@torch.no_grad()
def truncation_sweep(G: nn.Module, num: int, seed: int = 0, cols: int = 6, cls: int | None = None) -> torch.Tensor:
    """(num * cols, C, H, W): row r is latent r of ``seed`` at psi = 1.0 ... 0.0 (``cols`` steps);
    a conditional generator draws class ``cls`` (None: class 0)."""
    z = torch.randn(num, latent_size(G), generator=torch.Generator().manual_seed(seed))
    psis = [1.0 - c / max(1, cols - 1) for c in range(cols)] if cols > 1 else [1.0]
    rows = torch.stack([truncate(z, psi, G) for psi in psis], dim=1)  # (num, cols, latent)
    y = class_labels(G, num * cols, cls if cls is not None else (0 if class_count(G) else None))
    return call(G, rows.reshape(num * cols, -1), y)


def _grid(images: torch.Tensor, cols: int):  # -> PIL.Image
    """A grid with exactly ``cols`` columns (make_grid picks its own)."""
    import numpy as np
    from PIL import Image

    from gankit.monitor.images import to_uint8

    arr = to_uint8(images)  # (B, H, W, 3)
    b, h, w, _ = arr.shape
    rows, pad = -(-b // cols), 2
    canvas = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 40, np.uint8)
    for i, tile in enumerate(arr):
        y, x = pad + (i // cols) * (h + pad), pad + (i % cols) * (w + pad)
        canvas[y:y + h, x:x + w] = tile
    return Image.fromarray(canvas)


def run_sample(args: argparse.Namespace) -> int:
    G = load_generator(args.run, args.checkpoint, ema=not args.no_ema, device=resolve_device(args.device))
    cls = pick_class(G, args.cls) if args.cls is not None else None
    if args.per_class and (args.truncation_sweep or cls is not None):
        raise UsageError("--per-class: draws every class; drop --class / --truncation-sweep")
    if args.truncation_sweep:
        out = Path(args.out)
        out = out if out.suffix.lower() == ".png" else out / "truncation-sweep.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        _grid(truncation_sweep(G, args.num, args.seed, args.truncation_sweep, cls), args.truncation_sweep).save(out)
        print(f"wrote {out}: {args.num} rows, psi from 1.0 to 0.0 in {args.truncation_sweep} columns")
        return 0
    if args.per_class:
        out = Path(args.out)
        out = out if out.suffix.lower() == ".png" else out / "per-class.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        names = class_names(G)
        _grid(per_class_grid(G, args.per_class, args.seed, args.truncation), args.per_class).save(out)
        print(f"wrote {out}: {len(names)} rows ({', '.join(names)}), {args.per_class} images each")
        return 0
    images = generate(G, args.num, args.seed, truncation=args.truncation, classes=cls)
    paths = _save_images(images, Path(args.out))
    what = f" of class {class_names(G)[cls]}" if cls is not None else ""
    print(f"wrote {args.num} images{what} to {args.out}" + ("" if len(paths) > 1 else " (one grid)"))
    return 0


def run_interpolate(args: argparse.Namespace) -> int:
    from gankit.monitor.images import make_grid, save_gif

    G = load_generator(args.run, args.checkpoint, ema=not args.no_ema, device=resolve_device(args.device))
    if (args.class_from is None) != (args.class_to is None):
        raise UsageError("--class-from/--class-to: give both (the walk goes from one class to the other)")
    if args.class_from is not None:
        if args.cls is not None:
            raise UsageError("--class: drop it with --class-from/--class-to")
        a, b = pick_class(G, args.class_from, "--class-from"), pick_class(G, args.class_to, "--class-to")
        frames = class_walk(G, a, b, args.steps, args.seed, args.grid, args.truncation)
    else:
        cls = pick_class(G, args.cls) if args.cls is not None else None
        frames = interpolate(G, args.points, args.steps, args.seed, args.grid, args.truncation, cls)
    images = [make_grid(f) for f in frames]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".gif":
        save_gif(images, out, int(1000 / args.fps))
    else:  # another animated format PIL writes from the name (.webp, .png)
        images[0].save(out, save_all=True, append_images=images[1:], duration=int(1000 / args.fps), loop=0)
    print(f"wrote {len(images)} frames to {out}")
    return 0
