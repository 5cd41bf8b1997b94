"""The figures of `small_data.py`, one row per finished run.

Why a module of its own: the benchmark's table must be computed the way
`gankit eval` computes its scores (the run's best-else-newest checkpoint, EMA
weights, the `dataset` extractor, `gankit.metrics.evaluate.evaluate`), so a
row here and `gankit eval RUN` on the same run agree; this file only gathers
those library calls, the run's own records (kimg, training seconds, D's
accuracy on real images) and a sample grid, and lays the rows out as a
markdown table.
"""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import torch

GRID_SIDE = 8  # the grid per row: 8x8 images of the EMA generator
EVAL_NUM = 1000  # images a side when --eval-num is not given (at most the dataset's size)
COLUMNS = ("recipe", "seed", "budget", "status", "kimg", "scored state", "minutes", "img/s", "KID x1000", "FID",
           "precision", "recall", "copy score", "acc_real max (2nd half)", "grid")


def _nearest_real(fake: torch.Tensor, real: np.ndarray) -> float:
    """Mean over fakes of the RMS distance to the nearest training image."""
    x = fake.flatten(1)
    best = torch.full((x.shape[0],), math.inf)
    for i in range(0, len(real), 500):
        r = torch.from_numpy(np.array(real[i:i + 500])).permute(0, 3, 1, 2).float().div(127.5).sub(1).flatten(1)
        best = torch.minimum(best, torch.cdist(x, r).min(dim=1).values)
    return float((best / math.sqrt(x.shape[1])).mean())


def load_run_generator(run_dir: Path) -> tuple[torch.nn.Module, Path]:
    """The generator `gankit eval RUN` scores: the best checkpoint (else the newest), EMA weights."""
    from gankit.sample import find_checkpoint, load_generator

    ckpt = find_checkpoint(run_dir)
    return load_generator(run_dir, ckpt, ema=True), ckpt


def write_grid(fake: torch.Tensor, path: Path) -> Path:
    """An 8-column grid of ``fake`` (B, C, H, W in [-1, 1]) with the monitor's own tiling."""
    from gankit.monitor.images import make_grid

    make_grid(fake, cols=GRID_SIDE).save(path)
    return path


def run_status(run_dir: Path) -> str:
    """'finished', 'failed', 'stopped' ... as the run's summary.json says ('unclosed' without one)."""
    try:
        return str(json.loads((run_dir / "summary.json").read_text()).get("status") or "unclosed")
    except (OSError, ValueError):
        return "unclosed"


def summarise(run_dir: Path, data: Path, seed: int) -> dict[str, Any] | None:
    """Figures for one run, read back from its files and its EMA generator;
    None when it has no training record (it failed before its first log)."""
    from gankit.data import load_dataset
    from gankit.monitor.events import load_events, load_records, train_records
    from gankit.monitor.health import diversity
    from gankit.sample import generate

    records = train_records(load_records(run_dir / "metrics.jsonl"))
    if not records:
        return None
    second = [r for r in records if r["images_seen"] > records[-1]["images_seen"] / 2] or records[-1:]
    events = load_events(run_dir / "health.jsonl")
    summary_file = run_dir / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    G, ckpt = load_run_generator(run_dir)
    fake = generate(G, GRID_SIDE * GRID_SIDE, seed=seed + 1)
    ds = load_dataset(data)
    pick = np.random.default_rng(seed).choice(len(ds), min(len(ds), 64), replace=False)
    real = torch.from_numpy(np.array(ds.images[np.sort(pick)])).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    ada = [r["ada_p"] for r in records if "ada_p" in r]
    seconds = float(records[-1]["time"])
    kimg = float(summary.get("kimg") or records[-1]["kimg"])
    best = summary.get("best") or {}
    return {
        "run": str(run_dir),
        "checkpoint": str(ckpt),
        # a run that kept a best state (--eval-every-kimg) is scored there, not at its last state
        "scored_kimg": float(best["kimg"]) if ckpt.name == "best.pt" and "kimg" in best else None,
        "kimg": kimg,
        "steps": records[-1]["step"],
        "seconds": seconds,
        "minutes": round(seconds / 60, 1),
        "images_per_s": kimg * 1000 / seconds if seconds > 0 else float("nan"),
        "acc_real_2nd_half_mean": statistics.fmean(r["acc_real"] for r in second),
        "acc_real_2nd_half_max": max(r["acc_real"] for r in second),
        "acc_fake_2nd_half_mean": statistics.fmean(r["acc_fake"] for r in second),
        "d_x_end": records[-1]["d_x"],
        "d_g_z_end": records[-1]["d_g_z1"],
        "ada_p_end": ada[-1] if ada else None,
        "events": [f"{e.kind}@{e.kimg:.1f}kimg" for e in events],
        "verdict": summary.get("verdict", ""),
        "status": run_status(run_dir),
        "grid64": str(write_grid(fake, run_dir / "grid64.png")),
        "diversity_fake": diversity(fake),
        "diversity_real": diversity(real),
        "nearest_real": _nearest_real(fake, ds.images),
    }


def quality(run_dir: Path, data: Path, extractor: Any, num: int, seed: int) -> dict[str, float]:
    """KID, FID, precision/recall (and the copy score where the dataset has a
    `gankit data split`) of the run's generator, as `gankit eval` computes them."""
    from gankit.data import load_dataset
    from gankit.data.split import read_split
    from gankit.metrics.evaluate import evaluate
    from gankit.metrics.image_sets import GeneratorImages

    real = load_dataset(data)
    G, _ = load_run_generator(run_dir)
    count = min(num, len(real))  # the same number of generated images as real ones
    metrics = ["fid", "kid", "pr"] + (["memorization"] if read_split(real) is not None else [])
    fake = GeneratorImages(G, count, seed=seed)
    result = evaluate(real, fake, metrics, extractor, num_real=count, seed=seed)
    return {**result.metrics, "eval_num_real": result.num_real, "eval_num_fake": result.num_fake}


def dataset_extractor(data: Path) -> Any:
    """The project's `dataset` extractor for ``data`` (trained once, cached beside the dataset)."""
    from gankit.data import load_dataset
    from gankit.metrics.registry import get_extractor

    return get_extractor("dataset", dataset=load_dataset(data), device=torch.device("cpu"), log=True)


def _num(value: Any, fmt: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def table_row(recipe: str, seed: int, budget: str, s: dict[str, Any]) -> list[str]:
    """One markdown row: ``s`` is `summarise` merged with `quality`."""
    kid = f"{s['kid_mean'] * 1000:.1f} ± {s['kid_std'] * 1000:.1f}"
    def fmt(k: float) -> str:
        return f"{k:.1f}" if k >= 1 else f"{k:.3f}"  # tiny test budgets stay readable

    kimg = fmt(s["kimg"])
    scored = "last" if s.get("scored_kimg") is None else f"best, {fmt(s['scored_kimg'])} kimg"
    return [recipe, str(seed), budget, s["status"], kimg, scored, f"{s['minutes']:.1f}", _num(s["images_per_s"], ".1f"),
            kid, _num(s["fid"], ".2f"), _num(s["precision"], ".3f"), _num(s["recall"], ".3f"),
            _num(s.get("memorization"), ".3f"), _num(s["acc_real_2nd_half_max"], ".3f"), s["grid64"]]


def empty_row(recipe: str, seed: int, budget: str, run_dir: Path) -> list[str]:
    """The row of a run with nothing to score (no training record)."""
    cells = [recipe, str(seed), budget, run_status(run_dir)]
    return cells + ["-"] * (len(COLUMNS) - len(cells))


def markdown_table(rows: list[list[str]]) -> str:
    """The rows under a header of COLUMNS, as a GitHub markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n"


def report(name: str, s: dict[str, Any]) -> None:
    print(f"\n== {name}: {s['run']}  ({s['kimg']:.1f} kimg, {s['steps']} G steps, {s['minutes']} min)")
    print(f"   acc_real 2nd half: mean {s['acc_real_2nd_half_mean']:.3f}, max {s['acc_real_2nd_half_max']:.3f}; "
          f"acc_fake 2nd half mean {s['acc_fake_2nd_half_mean']:.3f}; "
          f"end D(x) {s['d_x_end']:.3f} D(G(z)) {s['d_g_z_end']:.3f}"
          + (f"; ada p {s['ada_p_end']:.3f}" if s["ada_p_end"] is not None else ""))
    print(f"   health events: {', '.join(s['events']) or 'none'}")
    print(f"   verdict: {s['verdict']}")
    print(f"   grid: {s['grid64']} (8x8, {s['checkpoint']}, EMA)")
    print(f"   diversity (mean pairwise RMS, [-1,1] scale): generated {s['diversity_fake']:.3f} vs real "
          f"{s['diversity_real']:.3f}; nearest training image {s['nearest_real']:.3f}")
