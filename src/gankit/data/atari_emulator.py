"""The emulator side of `gankit data atari`: play one game, keep every
``every``-th frame, crop and resize it, and hand batches to a sink, in this
process or in N spawned workers (worker i seeded ``seed + i``, frames
concatenated in worker order, so the output depends only on the arguments).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from gankit.data.atari_policies import STICKY_PROBABILITY, make_policy
from gankit.data.imageops import RESIZE_FILTERS, check_crop
from gankit.data.writer import DatasetWriter

FLUSH = 256  # frames buffered before they are written / reported


def ale_modules() -> tuple[Any, Any]:
    import ale_py
    import gymnasium

    gymnasium.register_envs(ale_py)
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
    return gymnasium, ale_py


@dataclass
class Job:
    """What one emulator collects (picklable for spawned workers)."""

    game: str
    frames: int
    size: tuple[int, int]
    every: int
    policy: str
    seed: int
    grayscale: bool
    crop: tuple[int, int, int, int] | None
    resize: str


def make_ale(job: Job) -> Any:
    gym, _ = ale_modules()
    sticky = STICKY_PROBABILITY if job.policy == "sticky" else 0.0
    env = gym.make(f"ALE/{job.game}-v5", frameskip=1, repeat_action_probability=sticky, full_action_space=False)
    env.reset(seed=job.seed)
    return env


def collect(job: Job, sink: Callable[[np.ndarray], object], progress: Callable[[int], object]) -> dict[str, Any]:
    """Play ``job.game`` and pass batches of kept frames (B, h, w, C) to ``sink``."""
    env = make_ale(job)
    ale = env.unwrapped.ale
    rng = np.random.default_rng(job.seed)
    policy, used = make_policy(job.policy, job.game, ale, rng)
    src_h, src_w = ale.getScreenDims()
    rows, cols = check_crop(job.crop, src_h, src_w)
    h, w = job.size
    channels = 1 if job.grayscale else 3
    resample = RESIZE_FILTERS[job.resize]
    screen = np.empty((src_h, src_w, 3), np.uint8)
    batch = np.empty((FLUSH, h, w, channels), np.uint8)
    kept = filled = step = 0
    returns: list[float] = []
    episode_return = reward_total = 0.0
    while kept < job.frames:
        reward = ale.act(policy(ale, step))
        step += 1
        episode_return += reward
        if step % job.every == 0:
            ale.getScreenRGB(screen)
            img = Image.fromarray(screen[rows, cols])
            if job.grayscale:
                img = img.convert("L")
            if img.size != (w, h):
                img = img.resize((w, h), resample)
            batch[filled] = np.asarray(img).reshape(h, w, channels)
            filled += 1
            kept += 1
            if filled == FLUSH or kept == job.frames:
                sink(batch[:filled])
                progress(filled)
                filled = 0
        if ale.game_over():
            returns.append(episode_return)
            reward_total += episode_return
            episode_return = 0.0
            ale.reset_game()
    env.close()
    return {
        "steps": step,
        "episodes_finished": len(returns),
        "episode_returns": returns,
        "reward_total": reward_total + episode_return,
        "policy_used": used,
        "source_frame": [int(src_h), int(src_w)],
    }


_COUNTERS: Any = None


def _init_worker(counters: Any) -> None:
    global _COUNTERS
    _COUNTERS = counters


def _worker(job: Job, index: int, scratch: str) -> dict[str, Any]:
    """Spawned-process entry: collect into a raw scratch file."""

    def bump(n: int) -> None:
        _COUNTERS[index] += n

    with open(scratch, "wb") as f:
        return collect(job, lambda b: f.write(b.tobytes()), bump)


def split_frames(frames: int, workers: int) -> list[int]:
    base, extra = divmod(frames, workers)
    return [base + (1 if i < extra else 0) for i in range(workers)]


def progress_bar(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", unit_scale=True, file=sys.stderr, disable=not enabled, smoothing=0.1)


def run_parallel(jobs: list[Job], writer: DatasetWriter, bar: Any, label: int | None) -> list[dict[str, Any]]:
    ctx = mp.get_context("spawn")
    counters = ctx.Array("q", len(jobs), lock=False)
    scratch = []
    for i in range(len(jobs)):
        fd, path = tempfile.mkstemp(dir=writer.out, prefix=f".atari-worker{i}.", suffix=".raw")
        os.close(fd)
        scratch.append(path)
    try:
        with ProcessPoolExecutor(len(jobs), mp_context=ctx, initializer=_init_worker, initargs=(counters,)) as pool:
            futures = [pool.submit(_worker, job, i, scratch[i]) for i, job in enumerate(jobs)]
            while not all(f.done() for f in futures):
                time.sleep(0.2)
                bar.update(sum(counters[:]) - bar.n)
            stats = [f.result() for f in futures]
        bar.update(sum(counters[:]) - bar.n)
        frame_shape = (writer.height, writer.width, writer.channels)
        for job, path in zip(jobs, scratch):
            raw = np.memmap(path, dtype=np.uint8, mode="r", shape=(job.frames, *frame_shape))
            for i in range(0, job.frames, 4096):
                writer.add(np.asarray(raw[i : i + 4096]), label)
            del raw
        return stats
    finally:
        for path in scratch:
            if os.path.exists(path):
                os.unlink(path)
