"""Other EMA half-lives for a finished run, without training it again.

Why this exists: the generator EMA's half-life (`--ema-kimg`) is a value every
preset has to choose, and trying each one by retraining costs a whole run per
value.  A run trained with a checkpoint per epoch (`--keep` large enough to
keep them all) already holds the raw generator every ~epoch; an EMA of those
states is what training with another half-life would have sampled from, up
to the steps between two checkpoints (EDM2 makes the same point with its
post-hoc EMA).  The recursion is the trainer's own (`gankit.train.ema`):
start from the first checkpoint's generator, then for each later one
``ema <- lerp(ema, G, 1 - 0.5 ** (images / half_life))``, buffers (BatchNorm
statistics) taken from the newest raw generator, as the trainer does.  With
a checkpoint after every step it reproduces the run's own ``G_ema``.

Each averaged generator is scored as `small_data.py` scores a run (the
`dataset` extractor: KID mean ± std over subsets, FID, precision and recall;
as many generated images as real ones, at most --num), beside the run's own
EMA ("run") at the same checkpoint; --grids writes an 8x8 grid of each.

    python benchmarks/posthoc_ema.py /tmp/sd/small64-m60s0 --half 3,5,10,20 --at 50,100,end
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import cast

import torch

from small_data_eval import GRID_SIDE, dataset_extractor, write_grid

State = dict[str, torch.Tensor]


def ema_step(ema: State | None, state: State, images: int, half_life_kimg: float, params: set[str]) -> State:
    """The EMA after the raw generator ``state``, reached ``images`` images after
    the previous one; None starts the EMA at ``state`` (the trainer's step 0).
    The entries named in ``params`` (the model's parameters) are averaged; the
    rest, buffers such as BatchNorm statistics, are taken from ``state``, as the
    trainer does."""
    if ema is None:
        return {k: v.detach().clone() for k, v in state.items()}
    keep = 0.5 ** (images / (half_life_kimg * 1000.0)) if half_life_kimg > 0 else 0.0
    for k, v in state.items():
        if k in params:
            ema[k].lerp_(v.detach(), 1.0 - keep)
        else:
            ema[k] = v.detach().clone()
    return ema


def posthoc_ema(states: Iterable[tuple[int, State]], half_life_kimg: float, params: set[str]) -> State:
    """The EMA over raw generator states (images seen, state dict), in training order."""
    ema: State | None = None
    last = 0
    for images, state in states:
        ema = ema_step(ema, state, images - last, half_life_kimg, params)
        last = images
    if ema is None:
        raise ValueError("posthoc_ema: no states")
    return ema


def _checkpoints(run: Path) -> list[tuple[int, Path]]:
    from gankit.runpaths import list_checkpoints

    found = [(int(p.stem.split("-")[1]), p) for p in list_checkpoints(run / "checkpoints")]
    if len(found) < 2:
        sys.exit(f"posthoc_ema: {run} has {len(found)} checkpoint(s); train with a large --keep "
                 "so that every epoch's is kept")
    return found


def _targets(text: str, images: list[int]) -> list[int]:
    """--at values (kimg, or 'end') -> the images-seen of the nearest checkpoints."""
    out = []
    for item in text.split(","):
        item = item.strip().lower()
        out.append(images[-1] if item == "end" else min(images, key=lambda i: abs(i - float(item) * 1000)))
    return sorted(set(out))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("--half", default="3,5,10", help="half-lives in kimg, comma-separated")
    p.add_argument("--at", default="end", help="checkpoints to score: kimg values or 'end', comma-separated")
    p.add_argument("--num", type=int, default=1548, help="images a side (at most the dataset's size)")
    p.add_argument("--seed", type=int, default=0, help="latents of the generated images")
    p.add_argument("--grids", type=Path, default=None, help="folder for an 8x8 grid per generator")
    p.add_argument("--data", type=Path, default=None, help="the real images (default: the run's own dataset)")
    args = p.parse_args(argv)

    from gankit.data import load_dataset
    from gankit.metrics.evaluate import evaluate
    from gankit.metrics.image_sets import GeneratorImages
    from gankit.sample import generate, load_generator
    from gankit.train import checkpoint as ckpt
    from gankit.train.rundir import read_config

    found = _checkpoints(args.run)
    try:
        halves = [float(h) for h in args.half.split(",")]
        targets = _targets(args.at, [n for n, _ in found])
    except ValueError as err:
        p.error(f"--half and --at take numbers (--at also 'end'), comma-separated: {err}")
    data = args.data or Path((read_config(args.run) or {})["data"])
    real = load_dataset(data)
    extractor = dataset_extractor(data)
    count = min(args.num, len(real))
    G = load_generator(args.run, found[-1][1], ema=True)
    params = {name for name, _ in G.named_parameters()}

    def score(name: str, images: int, state: State) -> None:
        G.load_state_dict(state)
        m = evaluate(real, GeneratorImages(G, count, seed=args.seed), ["fid", "kid", "pr"], extractor,
                     num_real=count, seed=args.seed).metrics
        print(f"| {images / 1000:.1f} | {name} | {m['kid_mean'] * 1000:.1f} ± {m['kid_std'] * 1000:.1f} | "
              f"{m['fid']:.2f} | {m['precision']:.3f} | {m['recall']:.3f} |", flush=True)
        if args.grids:
            args.grids.mkdir(parents=True, exist_ok=True)
            write_grid(generate(G, GRID_SIDE * GRID_SIDE, seed=args.seed + 1),
                       args.grids / f"{args.run.name}-{images // 1000}k-{name}.png")

    own = (read_config(args.run) or {}).get("ema_kimg")
    print(f"{args.run}: {len(found)} checkpoints, {count} images a side; the run's own half-life ('run'): {own} kimg\n")
    print("| kimg | EMA half-life (kimg) | KID x1000 | FID | precision | recall |\n|---|---|---|---|---|---|")
    emas: dict[float, State | None] = {h: None for h in halves}
    last = 0
    for images, path in found:  # one pass over the checkpoints for every half-life
        state = ckpt.load_checkpoint(path)
        for h in halves:
            emas[h] = ema_step(emas[h], state["G"], images - last, h, params)
        last = images
        if images in targets:
            score("run", images, state["G_ema"])
            for h in halves:
                score(f"{h:g}", images, cast(State, emas[h]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
