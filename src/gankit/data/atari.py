"""Atari frames from the Arcade Learning Environment: `gankit data atari`.

The ALE comes through gymnasium + ale-py, whose wheel ships the ROMs, so no
download is needed.  The environment is made the gymnasium way
(``ALE/<Game>-v5`` with ``frameskip=1``) for seeding and the action set, then
driven through its ``ALEInterface`` directly: one emulator frame per step, no
observation copies we do not keep.  That and PIL's C resize are what make
``--every 1`` fast (the emulator alone runs ~12k frames/s per core).

`atari_policies` decides what the frames show (``--policy agent`` follows
the ball in Breakout and Pong, so later-game frames appear); `atari_emulator`
plays and keeps the frames, in ``--workers N`` spawned processes (worker i
seeded ``seed + i``, frames in worker order, so the output depends only on
the arguments).  This module checks the arguments and writes the dataset.

``--game Breakout,Pong,...`` collects ``--frames`` frames of each game in
turn, at the same size, into one labelled dataset: the classes are the game
names in the order given.
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

from gankit.data.atari_emulator import Job, ale_modules, collect, make_ale, progress_bar, run_parallel, split_frames
from gankit.data.atari_policies import POLICIES, STICKY_PROBABILITY
from gankit.data.dataset import ImageDataset, load_dataset
from gankit.data.imageops import RESIZE_FILTERS, check_crop
from gankit.data.writer import DatasetWriter, check_target
from gankit.errors import UsageError
from gankit.parsing import parse_list, parse_size

__all__ = ["POLICIES", "collect_atari", "game_names", "parse_games", "resolve_game"]


def game_names() -> list[str]:
    """Every game with an ``ALE/<Game>-v5`` environment, e.g. "MsPacman"."""
    gym, ale_py = ale_modules()
    from ale_py.registration import rom_id_to_name

    names = {rom_id_to_name(rom) for rom in ale_py.roms.get_all_rom_ids()}
    return sorted(n for n in names if f"ALE/{n}-v5" in gym.envs.registry)


def resolve_game(name: str) -> str:
    """Accept "Breakout", "breakout", "ms_pacman", "ALE/Pong-v5"; return the
    canonical name or raise `UsageError` listing the valid ones."""
    key = str(name).strip()
    if key.startswith("ALE/"):
        key = key[4:].rsplit("-v", 1)[0]
    key = key.replace("_", "").replace("-", "").replace(" ", "").lower()
    names = game_names()
    for valid in names:
        if valid.lower() == key:
            return valid
    raise UsageError(f"--game: unknown game {name!r}; valid names: {', '.join(names)}")


def parse_games(game: str | Sequence[str]) -> list[str]:
    """"Breakout,pong" or ["Breakout", "Pong"] -> canonical names, each once."""
    names = [resolve_game(p) for p in parse_list(game, "--game")]
    if not names:
        raise UsageError("--game: no game named")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"--game: {', '.join(twice)} named twice")
    return names


def collect_atari(
    game: str | Sequence[str],
    frames: int,
    size: int | str | tuple[int, int],
    out: str | os.PathLike[str],
    every: int = 1,
    policy: str = "agent",
    seed: int = 0,
    grayscale: bool = False,
    crop: Sequence[int] | None = None,
    resize: str = "area",
    workers: int = 1,
    progress: bool = True,
    existing: str = "refuse",
) -> ImageDataset:
    """Collect ``frames`` kept frames of ``game`` into the dataset folder ``out``.

    A dataset already in ``out`` is refused unless ``existing`` is "overwrite"
    or "append" (same size and channels).

    ``size`` is 64, "64", "84x64" or (h, w); ``crop`` is (top, bottom, left,
    right) source pixels removed before resizing.  Several games ("Breakout,Pong"
    or a list) give ``frames`` frames each and a dataset labelled by game.
    Returns the loaded dataset.
    """
    check_target(out, existing)  # before the emulator starts
    names = parse_games(game)
    hw = parse_size(size if isinstance(size, (int, str)) else "x".join(map(str, size)))
    crop_t = _check_args(frames, every, workers, policy, resize, crop)
    workers = min(workers, frames)
    plans = [_plan(Job(name, frames, hw, every, policy, seed, grayscale, crop_t, resize), workers) for name in names]
    params = _params(names, hw, plans[0][0], frames, workers)
    classes = names if len(names) > 1 else None
    start = time.perf_counter()
    with progress_bar(frames * len(names), progress) as bar, \
            DatasetWriter(Path(out), *hw, 1 if grayscale else 3, "atari", params, classes=classes,
                          existing=existing) as writer:
        per_game = {}
        for label, jobs in enumerate(plans):
            tag = label if classes else None
            if workers == 1:
                per_game[names[label]] = [collect(jobs[0], partial(writer.add, labels=tag), bar.update)]
            else:
                per_game[names[label]] = run_parallel(jobs, writer, bar, tag)
        seconds = time.perf_counter() - start
        info = _summary([s for stats in per_game.values() for s in stats], frames * len(names), seconds)
        if classes:
            info["per_game"] = {n: _summary(stats, frames, None) for n, stats in per_game.items()}
        writer.close(extra={"atari": info})
    return load_dataset(out)


def _check_args(frames: int, every: int, workers: int, policy: str, resize: str,
                crop: Sequence[int] | None) -> tuple[int, int, int, int] | None:
    """UsageError naming the first bad flag; returns the crop as a 4-tuple (or None)."""
    checks = {"--frames": frames >= 1, "--every": every >= 1, "--workers": workers >= 1}
    for flag, ok in checks.items():
        if not ok:
            raise UsageError(f"{flag}: must be a positive integer")
    if policy not in POLICIES:
        raise UsageError(f"--policy: expected one of {', '.join(POLICIES)}, got {policy!r}")
    if resize not in RESIZE_FILTERS:
        raise UsageError(f"--resize: expected one of {', '.join(RESIZE_FILTERS)}, got {resize!r}")
    crop_t = tuple(int(c) for c in crop) if crop is not None else None
    if crop_t is not None and (len(crop_t) != 4 or min(crop_t) < 0):
        raise UsageError("--crop: expected four non-negative integers top,bottom,left,right")
    return crop_t  # type: ignore[return-value]


def _plan(base: Job, workers: int) -> list[Job]:
    """One job per worker for one game, after checking the crop against the
    real screen (before any slow work)."""
    probe = make_ale(base)
    check_crop(base.crop, *probe.unwrapped.ale.getScreenDims())
    probe.close()
    return [Job(**{**asdict(base), "frames": n, "seed": base.seed + i})
            for i, n in enumerate(split_frames(base.frames, workers))]


def _params(names: list[str], hw: tuple[int, int], job: Job, frames: int, workers: int) -> dict[str, Any]:
    """The manifest's record of the arguments (and the emulator's version)."""
    import ale_py

    params: dict[str, Any] = {
        "game": ",".join(names),
        "env_id": ",".join(f"ALE/{n}-v5" for n in names),
        "frames": frames,
        "size": list(hw),
        "every": job.every,
        "policy": job.policy,
        "seed": job.seed,
        "grayscale": job.grayscale,
        "crop": list(job.crop) if job.crop else None,
        "resize": job.resize,
        "workers": workers,
        "frameskip": 1,
        "repeat_action_probability": STICKY_PROBABILITY if job.policy == "sticky" else 0.0,
        "ale_py_version": ale_py.__version__,
    }
    if len(names) > 1:
        params["games"] = names
    return params


def _summary(stats: list[dict[str, Any]], frames: int, seconds: float | None) -> dict[str, Any]:
    """The manifest's "atari" record of what the emulators did."""
    returns = [r for s in stats for r in s["episode_returns"]]
    info: dict[str, Any] = {
        "policy_used": ",".join(dict.fromkeys(s["policy_used"] for s in stats)),
        "source_frame": stats[0]["source_frame"],
        "emulator_steps": sum(s["steps"] for s in stats),
        "episodes_finished": len(returns),
        "episode_returns": returns,
        "reward_total": sum(s["reward_total"] for s in stats),
    }
    if seconds is not None:
        info["seconds"] = round(seconds, 3)
        info["frames_per_second"] = round(frames / max(seconds, 1e-9), 1)
    return info
