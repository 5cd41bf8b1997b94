"""What a path typed on the command line holds: a dataset, a run, a
checkpoint, a plain folder of images, or a folder of runs.

Commands that take one kind and get another say what they were given, what
they expected and the command that makes the right thing (`gankit data folder
imgs --out data/imgs`), instead of failing later on a missing file.  Only
names are looked at (no images decoded), so it costs nothing before a command
starts.  This sits beside config and errors at the bottom of the layers.
"""
from __future__ import annotations

from pathlib import Path

from gankit.errors import UsageError
from gankit.runpaths import RunDir

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
SCAN_LIMIT = 2000  # entries looked at when counting images under a folder


def kind_of(path: str | Path) -> str:
    """One of: missing, dataset, unfinished-dataset, run, runs, checkpoint, generator (an exported
    .safetensors file), images, file, other."""
    p = Path(path)
    if not p.exists():
        return "missing"
    if p.is_file():
        return {".pt": "checkpoint", ".safetensors": "generator"}.get(p.suffix, "file")
    if (p / "manifest.json").is_file() and (p / "images.npy").is_file():
        return "dataset"
    if (p / "images.npy").is_file():
        return "unfinished-dataset"
    if is_run(p):
        return "run"
    if any(is_run(child) for child in _children(p)):
        return "runs"
    if count_images(p):
        return "images"
    return "other"


def is_run(p: Path) -> bool:
    return RunDir(p).is_run()


def _children(p: Path) -> list[Path]:
    try:
        return sorted(c for c in p.iterdir() if c.is_dir())[:SCAN_LIMIT]
    except OSError:
        return []


def count_images(p: Path) -> int:
    """Image files under ``p`` (recursively, the first SCAN_LIMIT entries looked at)."""
    n = 0
    for i, f in enumerate(p.rglob("*")):
        if i >= SCAN_LIMIT:
            break
        n += f.suffix.lower() in IMAGE_SUFFIXES
    return n


def _run_dataset(run: Path) -> str:
    try:
        import yaml

        return str((yaml.safe_load(RunDir(run).config.read_text()) or {}).get("data") or "")
    except Exception:  # noqa: BLE001 - a hint only; an unreadable config just gives none
        return ""


def expect_dataset(path: str | Path, flag: str = "--data") -> Path:
    """``path`` if it is a gankit dataset; otherwise a UsageError saying what it is."""
    p = Path(path)
    kind = kind_of(p)
    if kind == "dataset":
        return p
    make = f"gankit data folder IMAGES --out {p}` (or `gankit data atari --game Breakout --out {p}`)"
    if kind == "missing":
        raise UsageError(f"{flag}: no such folder {p}", hint=f"make a dataset there: `{make}")
    if kind == "images":
        raise UsageError(f"{flag}: {p} is a folder of images, not a gankit dataset",
                         hint=f"convert it first: `gankit data folder {p} --out data/{p.resolve().name}`")
    if kind == "run":
        data = _run_dataset(p)
        hint = f"that run trained on {data}" if data else f"continue it with `gankit train --resume {p}`"
        raise UsageError(f"{flag}: {p} is a training run, not a dataset", hint=hint)
    if kind == "runs":
        raise UsageError(f"{flag}: {p} is a folder of training runs, not a dataset",
                         hint=f"`gankit runs --out {p}` lists them")
    if kind == "checkpoint":
        raise UsageError(f"{flag}: {p} is a checkpoint file, not a dataset",
                         hint="give a folder made by `gankit data ...`")
    if kind == "unfinished-dataset":
        raise UsageError(f"{flag}: {p} is an unfinished dataset (images.npy but no manifest.json)",
                         hint="an interrupted `gankit data` run leaves this; run that command again")
    raise UsageError(f"{flag}: {p} is not a gankit dataset (no manifest.json and images.npy)",
                     hint=f"make one: `{make}")


def expect_run(path: str | Path, flag: str = "RUN") -> Path:
    """``path`` if it is a run directory, a checkpoint or an exported generator file;
    otherwise a UsageError saying what it is."""
    p = Path(path)
    kind = kind_of(p)
    if kind in ("run", "checkpoint", "generator"):
        return p
    runs_hint = f"`gankit runs --out {p.parent}` lists the runs there"
    if kind == "missing":
        raise UsageError(f"{flag}: no such run directory {p}", hint=runs_hint)
    if kind in ("dataset", "unfinished-dataset"):
        raise UsageError(f"{flag}: {p} is a dataset, not a training run",
                         hint=f"train on it with `gankit train --data {p}`; `gankit runs` lists the runs")
    if kind == "images":
        raise UsageError(f"{flag}: {p} is a folder of images, not a training run",
                         hint=f"to score images: `gankit eval --real DATASET --fake {p}`; `gankit runs` lists the runs")
    if kind == "runs":
        newest = [c for c in _children(p) if is_run(c)][-1]
        raise UsageError(f"{flag}: {p} is a folder of runs; name one of them",
                         hint=f"for example {newest} (`gankit runs --out {p}` lists them)")
    raise UsageError(f"{flag}: {p} is not a training run (no config.yaml or checkpoints/)", hint=runs_hint)
