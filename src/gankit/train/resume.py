"""Resuming a run: which run, which checkpoint, and what a resume may change.

The checkpoint, not config.yaml, is what a run continues from: it holds the
learning rates after roll-backs and remedies, the best score, the
augmentation and health-monitor state and the dataset's fingerprint.  A
config given with a resume is compared with the checkpoint's:

- fields that shape the models or the data stream (architecture, loss,
  batch, seed, resolution, ...) cannot change: a run is refused rather than
  continued as something it was not;
- the budget, learning rates, regularisation strengths, logging and hardware
  may change: the change is applied and recorded in log.txt and health.jsonl;
- another dataset is refused unless ``allow_data_change``: the same images
  at another path are accepted (and noted).
"""
from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import Any

from gankit.config import TrainConfig
from gankit.data.dataset import ImageDataset, describe_fingerprint, fingerprint
from gankit.errors import UsageError
from gankit.runpaths import RunDir
from gankit.train import checkpoint as ckpt

# Changing these on resume is applied (and logged): the next step simply uses the new value.
APPLIED = frozenset({
    "epochs", "kimg", "minutes",  # budget
    "lr_g", "lr_d", "lr_steps",  # learning rates
    "r1", "r1_every", "r1_from_kimg", "r1_follows_lr", "label_smoothing", "instance_noise", "diffaugment",
    "ada_target", "ada_kimg", "ada_ops",
    "log_every", "snapshot_kimg", "checkpoint_every", "keep", "tensorboard", "health",
    "auto_remedy", "eval_every_kimg", "eval_metrics", "eval_num", "extractor", "no_ema",
    "device", "threads", "channels_last", "compile", "sync_bn",
})
# Where the run lives and what it trains on are checked elsewhere (the run dir, the fingerprint).
NOT_COMPARED = frozenset({"out", "name", "preset", "data"})


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def run_dir_of(path: Path) -> Path:
    """The run directory of a run path or of a checkpoint file inside RUN/checkpoints."""
    return RunDir.of(path).path


def find_run(target: str, out: str | os.PathLike[str] = "runs") -> Path:
    """``target`` as given: a run directory, a checkpoint file, 'latest' (the most recently
    active run under ``out``, numbered or named) or a run's name under ``out``."""
    out = Path(out)
    if target == "latest":
        runs = [p for p in out.iterdir() if RunDir(p).config.is_file()] if out.is_dir() else []
        if not runs:
            raise UsageError(f"--resume: no runs under {out}")
        return max(runs, key=_last_activity)
    path = Path(target)
    if path.exists():
        return path
    under = out / target
    if path.name == target and under.exists():
        return under
    raise UsageError(f"--resume: no run {target} (looked for {path} and {under})")


def _last_activity(run: Path) -> float:
    """When a run last wrote something that matters: its newest checkpoint, metrics or config."""
    stamps, files = [run.stat().st_mtime], RunDir(run)
    for p in (files.config, files.metrics, files.latest_checkpoint()):
        if p is not None and p.exists():
            stamps.append(p.stat().st_mtime)
    return max(stamps)


def checkpoint_to_resume(path: Path) -> Path | None:
    """The checkpoint a resume of ``path`` continues from, or None (run without one)."""
    if path.is_file():
        return path
    return RunDir(path).latest_checkpoint()


def resume_config(path: str | os.PathLike[str]) -> TrainConfig:
    """The config a run continues with: its newest checkpoint's (with the learning
    rates and remedies it trained with last), else its config.yaml."""
    path = Path(path)
    found = checkpoint_to_resume(path)
    if found is not None:
        return TrainConfig.from_dict(ckpt.load_checkpoint(found)["config"])
    from gankit.train.rundir import read_config

    run = RunDir.of(path)
    if not run.config.is_file():
        raise UsageError(f"--resume: {run} is not a run directory (no {run.CONFIG})")
    return TrainConfig.from_dict(read_config(run.path) or {})


def config_changes(saved: TrainConfig, wanted: TrainConfig) -> list[tuple[str, Any, Any]]:
    """(field, old, new) for every allowed change; UsageError for a forbidden one."""
    changes: list[tuple[str, Any, Any]] = []
    refused: list[tuple[str, Any, Any]] = []
    for f in fields(TrainConfig):
        old, new = getattr(saved, f.name), getattr(wanted, f.name)
        if f.name in NOT_COMPARED or old == new:
            continue
        if f.name == "conditional" and old is None:  # a checkpoint from before labels: decided from the data now
            continue
        (changes if f.name in APPLIED else refused).append((f.name, old, new))
    if refused:
        what = ", ".join(f"{_flag(n)} {old!r} -> {new!r}" for n, old, new in refused)
        raise UsageError(f"{_flag(refused[0][0])}: cannot change when resuming ({what}): the checkpoint holds another "
                         "architecture or data stream; start a new run, or --restart this one from scratch")
    return changes


def data_change(saved: dict[str, Any] | None, saved_path: str, dataset: ImageDataset, allow: bool) -> str | None:
    """None when the dataset is the one the checkpoint trained on; else a note for the
    log (moved, or changed with ``allow``), or UsageError when it changed without ``allow``."""
    if not saved:  # a checkpoint from before fingerprints: nothing to compare
        return None
    now = fingerprint(dataset)
    if list(saved.get("shape", [])) != now["shape"]:
        raise UsageError(f"--data: {dataset.path} holds {describe_fingerprint(now)}, the run trained on "
                         f"{describe_fingerprint(saved)}: another image shape cannot be resumed")
    same = all(saved.get(k) == now[k] for k in ("count", "manifest_sha256"))
    if same:
        if Path(saved_path) == Path(dataset.path):
            return None
        return f"dataset moved: {saved_path} -> {dataset.path} (same images)"
    if not allow:
        raise UsageError(f"--data: {dataset.path} is not the dataset this run trained on (then: {saved_path}, "
                         f"{describe_fingerprint(saved)}; now: {describe_fingerprint(now)}); pass --allow-data-change "
                         "to continue on it anyway")
    return f"dataset changed (--allow-data-change): {saved_path} ({describe_fingerprint(saved)}) -> " \
           f"{dataset.path} ({describe_fingerprint(now)})"
