"""Small data: presets (the plain DCGAN recipe, `cards64`, `small64` ...) on
the same images under the same budget, scored the way `gankit eval` scores.

Why this exists: with a few thousand images a DCGAN discriminator memorises
the training set, its accuracy on real images climbs to ~100% and the
generator stops learning (the trading-cards failure of issues 5 and 21).
This script trains each recipe (a preset name from `gankit presets`) with
``gankit.train(TrainConfig.from_preset(...))`` for the same number of images
shown (--kimg) or wall minutes (--minutes), on --data (any gankit dataset,
e.g. the sprites of benchmarks/build_sprites.py) or, without --data, on a set
anyone can make offline: 2,000 64x64 RGB frames mixed from five Atari games,
built once with `gankit.data.atari.collect_atari` and cached under --data-dir.

Per run (one table row) it reports: recipe, seed, budget, status (a recipe
whose training fails keeps its row, scored from its last good checkpoint or
"-", and the next recipe still trains), kimg reached, the state scored
(the best one, at its kimg, when the run kept one, as `small64` does; else
the last), training minutes, images/s (kimg x 1000 / training seconds, from the run's
records), KID (mean ± std over subsets, x1000) and FID with the `dataset`
extractor, precision and recall, the memorisation copy score when the
dataset has a `gankit data split` ("-" otherwise), D's accuracy on real
images at its highest over the second half of training, and an 8x8 grid of
the EMA generator (``RUN/grid64.png``).  The generator is the one `gankit eval
RUN` scores (best checkpoint, else the newest; EMA weights); the real side is
--eval-num images of the dataset (at most its size), the same number generated.
It also prints the older per-recipe lines (acc_fake, health events, diversity).

Every recipe gets the same overrides: --width (default 32; 0 keeps each
preset's own widths) and --precision (default auto, i.e. bf16 where native;
``preset`` keeps each preset's own), plus --set; ``--width 0 --precision
preset`` trains the presets as shipped.

    python benchmarks/small_data.py --jobs 2            # Atari mix, 100 kimg each, ~18 min on 2 CPU cores
    python benchmarks/small_data.py --data data/sprites64 --recipes small64,cards64,dcgan --minutes 20 \
        --seed 0 --tag m20s0 --threads 2
    python benchmarks/small_data.py --summarise-only --data data/sprites64 --recipes small64,cards64,dcgan \
        --tag m20s0 --table docs-table.md            # figures and table again, no training

Runs go to --out/RECIPE-TAG; the figures to --out/small_data-TAG.json.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankit.monitor.health import HealthThresholds

sys.path.insert(0, str(Path(__file__).resolve().parent))
import small_data_eval as figures  # noqa: E402

GAMES = ("Breakout", "Pong", "MsPacman", "SpaceInvaders", "Seaquest")
ACC_REAL_LIMIT = 0.95  # issue 5: with cards64, D's accuracy on real images stays below this
COLLAPSE_RATIO = HealthThresholds().collapse_ratio


# ----------------------------------------------------------------- the data
def build_dataset(out: Path, per_game: int, every: int, seed: int) -> Path:
    """Collect ``per_game`` frames of each game, shuffle them together and write
    one dataset to ``out``; reuse ``out`` when it holds the same mix, refuse to
    touch it when it holds anything else."""
    from gankit.data import load_dataset, write_dataset
    from gankit.data.atari import collect_atari
    from gankit.errors import UsageError

    params = {"games": list(GAMES), "per_game": per_game, "every": every, "seed": seed}
    if out.exists():
        try:
            found = load_dataset(out).manifest.get("params")
        except UsageError as err:
            raise SystemExit(f"--data-dir: {err}; remove it or choose another folder") from None
        if found != params:
            raise SystemExit(f"--data-dir: {out} holds another mix ({found}); choose another folder")
        print(f"dataset: reusing {out} ({per_game * len(GAMES)} images)")
        return out
    parts = []
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-parts-") as scratch:
        for i, game in enumerate(GAMES):
            print(f"dataset: {per_game} frames of {game} (every {every} emulator frames)", flush=True)
            # the ball-following agent for Breakout/Pong (later-game frames), random play elsewhere
            ds = collect_atari(game, per_game, 64, Path(scratch) / game, every=every, policy="agent",
                               seed=seed + i, progress=False)
            parts.append(np.array(ds.images))  # a copy: the scratch files go away
    images = np.concatenate(parts)
    images = images[np.random.default_rng(seed).permutation(len(images))]
    write_dataset(out, images, source="atari-mix", params=params)
    print(f"dataset: wrote {out} ({len(images)} images)")
    return out


# ---------------------------------------------------------------- training
def _parse_set(text: str) -> dict[str, Any]:
    """'ada=true,r1=0.1' -> {'ada': True, 'r1': 0.1} (typed by the TrainConfig field)."""
    from gankit.config import TrainConfig

    defaults = TrainConfig()
    out: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in text.split(";" if ";" in text else ","))):
        key, _, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not hasattr(defaults, key):
            raise SystemExit(f"--set: unknown config key {key!r}")
        kind = type(getattr(defaults, key))
        out[key] = value.lower() in ("1", "true", "yes", "on") if kind is bool else kind(value)
    return out


def run_name(recipe: str, tag: str) -> str:
    return f"{recipe}-{tag}" if tag else recipe


def train_one(recipe: str, data: str, out: str, budget: dict[str, float], threads: int, seed: int,
              extra: dict[str, Any], tag: str) -> str:
    """Train one recipe (a preset name, plus overrides) and return its run directory."""
    import gankit
    from gankit.config import TrainConfig
    from gankit.errors import TrainingFailed

    torch.set_num_threads(threads)
    cfg = TrainConfig.from_preset(recipe, data=data, out=out, name=run_name(recipe, tag), seed=seed,
                                  threads=threads, epochs=0, kimg=budget.get("kimg", 0.0),
                                  minutes=budget.get("minutes", 0.0), snapshot_kimg=budget["snapshot_kimg"],
                                  num_samples=64, tensorboard=False, **extra)
    try:
        return str(gankit.train(cfg))
    except TrainingFailed as err:  # its row says so, and the other recipes still train
        print(f"\n{recipe}: training failed: {err}", file=sys.stderr, flush=True)
        return str(Path(out) / run_name(recipe, tag))


def _train_job(args: tuple) -> str:
    return train_one(*args)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="an existing gankit dataset to train on; None: the Atari mix")
    p.add_argument("--data-dir", default="data/mixed2k", help="the Atari mix's folder (built there once, then reused)")
    p.add_argument("--per-game", type=int, default=400, help="Atari mix: frames per game (5 games)")
    p.add_argument("--every", type=int, default=8, help="Atari mix: keep one emulator frame in this many")
    p.add_argument("--out", default="runs/small_data", help="parent of the run directories")
    p.add_argument("--recipes", default="dcgan,cards64", help="presets to compare, comma-separated")
    p.add_argument("--kimg", type=float, default=100.0, help="budget: thousands of images shown per recipe")
    p.add_argument("--minutes", type=float, default=0.0, help="budget: wall minutes per recipe (instead of --kimg)")
    p.add_argument("--width", type=int, default=32,
                   help="G and D base width for every recipe (0: each preset's own, 64: ~4x slower on a CPU)")
    p.add_argument("--precision", default="auto",
                   help="precision for every recipe (auto: bf16 where native; preset: each preset's own)")
    p.add_argument("--set", default="", help="config overrides for every recipe, e.g. 'ada=true,r1=0.1' "
                                               "(separate with ';' when a value holds commas)")
    p.add_argument("--tag", default="", help="suffix of the run names (runs/small_data/RECIPE-TAG)")
    p.add_argument("--snapshot-kimg", type=float, default=4.0, help="sample grid every K thousand images")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (and for the evaluation)")
    p.add_argument("--jobs", type=int, default=1, help="recipes trained at once (separate processes)")
    p.add_argument("--seed", type=int, default=0, help="training seed (also the evaluation's latents and subsets)")
    p.add_argument("--data-seed", type=int, default=0, help="Atari mix: seed of the emulators and the shuffle")
    p.add_argument("--eval-num", type=int, default=figures.EVAL_NUM,
                   help="real images scored (at most the dataset's size); as many are generated")
    p.add_argument("--table", default=None, metavar="FILE", help="also write the markdown table to FILE")
    p.add_argument("--summarise-only", action="store_true", help="skip training; read the runs already in --out")
    return p


def _recipes(p: argparse.ArgumentParser, text: str) -> list[str]:
    """The preset names of --recipes; an unknown one exits 2 with the list of presets."""
    from gankit.presets import PRESETS

    recipes = [r.strip() for r in text.split(",") if r.strip()]
    unknown = [r for r in recipes if r not in PRESETS]
    if unknown or not recipes:
        p.error(f"--recipes: unknown preset(s) {', '.join(unknown) or '(none given)'}; "
                f"choose from {', '.join(sorted(PRESETS))}")
    return recipes


def _dataset(p: argparse.ArgumentParser, args: argparse.Namespace) -> Path:
    if args.data is None:
        return build_dataset(Path(args.data_dir), args.per_game, args.every, args.data_seed)
    from gankit.data import load_dataset
    from gankit.errors import UsageError

    try:
        return Path(load_dataset(args.data).path)
    except UsageError as err:
        p.error(f"--data: {err}")
    raise AssertionError("unreachable")  # p.error exits


def _budget_label(cfg: dict[str, Any]) -> str:
    """'20 min' or '60 kimg': the budget a run was given (from its config.yaml)."""
    if float(cfg.get("minutes") or 0):
        return f"{float(cfg['minutes']):g} min"
    return f"{float(cfg.get('kimg') or 0):g} kimg"


def _train(args: argparse.Namespace, recipes: list[str], data: Path) -> list[str]:
    extra: dict[str, Any] = {} if args.precision == "preset" else {"precision": args.precision}
    if args.width:
        extra.update(width_g=args.width, width_d=args.width)
    extra.update(_parse_set(args.set))
    budget = {"minutes": args.minutes} if args.minutes else {"kimg": args.kimg}
    budget["snapshot_kimg"] = args.snapshot_kimg
    jobs = [(r, str(data), args.out, budget, args.threads, args.seed, extra, args.tag) for r in recipes]
    start = time.time()
    if args.jobs > 1:
        with mp.get_context("spawn").Pool(min(args.jobs, len(jobs))) as pool:
            runs = pool.map(_train_job, jobs)
    else:
        runs = [train_one(*job) for job in jobs]
    print(f"\ntrained {len(runs)} recipe(s) in {(time.time() - start) / 60:.1f} min; budget {budget}, overrides "
          f"{extra}")
    return runs


def _score(recipes: list[str], runs: list[str], data: Path,
           args: argparse.Namespace) -> tuple[dict[str, dict[str, Any]], list[list[str]]]:
    """Each run's figures (for the JSON file) and table row; a run without a
    training record (it failed at once) gets a row of "-"."""
    from gankit.train.rundir import read_config

    extractor = None  # trained (or read from its cache) only when some run has something to score
    results: dict[str, dict[str, Any]] = {}
    rows = []
    for r, run in zip(recipes, runs):
        run_dir = Path(run)
        cfg = read_config(run_dir) or {}  # the budget and seed the run had (--summarise-only may not repeat them)
        budget, seed = _budget_label(cfg), int(cfg.get("seed", args.seed))
        s = figures.summarise(run_dir, data, args.seed)
        if s is None:
            rows.append(figures.empty_row(r, seed, budget, run_dir))
            continue
        extractor = extractor or figures.dataset_extractor(data)
        s.update(figures.quality(run_dir, data, extractor, args.eval_num, args.seed), budget=budget, seed=seed)
        results[r] = s
        rows.append(figures.table_row(r, seed, budget, s))
    return results, rows


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    recipes = _recipes(p, args.recipes)
    if args.eval_num < 1:
        p.error("--eval-num: give a positive number of images")
    torch.set_num_threads(args.threads)
    data = _dataset(p, args)
    if args.summarise_only:
        runs = [str(Path(args.out) / run_name(r, args.tag)) for r in recipes]
        missing = [r for r in runs if not (Path(r) / "metrics.jsonl").is_file()]
        if missing:
            p.error(f"--summarise-only: no finished run at {', '.join(missing)} (check --out and --tag)")
    else:
        from gankit.train.rundir import holds_run

        taken = [str(Path(args.out) / run_name(r, args.tag)) for r in recipes
                 if holds_run(Path(args.out) / run_name(r, args.tag))]
        if taken:  # checked before the first recipe trains, not when the second one would start
            p.error(f"--tag: {', '.join(taken)} already hold(s) a run; pick another --tag (or --out), "
                    "or add --summarise-only to score them")
        runs = _train(args, recipes, data)
    torch.set_num_threads(args.threads)  # the training runs set their own
    results, rows = _score(recipes, runs, data, args)
    for r, s in results.items():
        figures.report(r, s)
    (Path(args.out) / f"{run_name('small_data', args.tag)}.json").write_text(json.dumps(results, indent=2))
    print(f"\ngoal: acc_real < {ACC_REAL_LIMIT} at every log of the second half, and generated images at least "
          f"{COLLAPSE_RATIO:.0%} as varied as real ones (the health monitor's mode-collapse line)")
    for r, s in results.items():
        met = s["acc_real_2nd_half_max"] < ACC_REAL_LIMIT and s["diversity_fake"] > COLLAPSE_RATIO * s["diversity_real"]
        print(f"{r}: acc_real_2nd_half_max={s['acc_real_2nd_half_max']:.3f} acc_real_2nd_half_mean="
              f"{s['acc_real_2nd_half_mean']:.3f} diversity={s['diversity_fake']:.3f}/{s['diversity_real']:.3f} "
              f"events={len(s['events'])} goal={'met' if met else 'not met'}")
    table = figures.markdown_table(rows)
    print(f"\n{table}", end="")
    if args.table:
        Path(args.table).parent.mkdir(parents=True, exist_ok=True)
        Path(args.table).write_text(table)
        print(f"wrote {args.table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
