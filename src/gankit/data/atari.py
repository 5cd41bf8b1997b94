"""Atari frames from the Arcade Learning Environment: `gankit data atari`.

The ALE comes through gymnasium + ale-py, whose wheel ships the ROMs, so no
download is needed.  The environment is made the gymnasium way
(``ALE/<Game>-v5`` with ``frameskip=1``) for seeding and the action set, then
driven through its ``ALEInterface`` directly: one emulator frame per step, no
observation copies we do not keep.  That and PIL's C resize are what make
``--every 1`` fast (the emulator alone runs ~12k frames/s per core).

Policies decide what the frames show:

- ``random``: a uniformly random action held for 4 frames (an agent's usual
  decision rate), no sticky actions;
- ``sticky``: the same with ALE's sticky actions (repeat probability 0.25);
- ``agent``: Breakout and Pong are played by following the ball with the
  paddle (positions read from the RAM), launching the ball after a lost life,
  so later-game frames (broken bricks, higher scores) appear, not only the
  first seconds of play.  Other games fall back to ``random``.

``--workers N`` runs N emulators in spawned processes; worker i is seeded
``seed + i`` and the frames are concatenated in worker order, so the output
depends only on the arguments.

``--game Breakout,Pong,...`` collects ``--frames`` frames of each game in
turn, at the same size, into one labelled dataset: the classes are the game
names in the order given.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from gankit.data.dataset import DatasetWriter, ImageDataset, check_target, load_dataset
from gankit.data.imageops import RESIZE_FILTERS, check_crop, parse_size
from gankit.errors import UsageError

POLICIES = ("agent", "random", "sticky")
AGENT_GAMES = ("Breakout", "Pong")
STICKY_PROBABILITY = 0.25
HOLD_FRAMES = 4  # random policies pick a new action every HOLD_FRAMES frames
FLUSH = 256  # frames buffered before they are written / reported


def _ale_modules() -> tuple[Any, Any]:
    import ale_py
    import gymnasium

    gymnasium.register_envs(ale_py)
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
    return gymnasium, ale_py


def game_names() -> list[str]:
    """Every game with an ``ALE/<Game>-v5`` environment, e.g. "MsPacman"."""
    gym, ale_py = _ale_modules()
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


# --- policies: callables (ale, step) -> action ---------------------------------


class RandomPolicy:
    """A uniformly random minimal-set action, held for HOLD_FRAMES frames."""

    def __init__(self, actions: Sequence[Any], rng: np.random.Generator) -> None:
        self.actions = list(actions)
        self.rng = rng
        self.action = self.actions[0]

    def __call__(self, ale: Any, step: int) -> Any:
        if step % HOLD_FRAMES == 0:
            self.action = self.actions[int(self.rng.integers(len(self.actions)))]
        return self.action


class FollowBall:
    """Moves the paddle towards the ball, aiming at a random offset that is
    redrawn now and then (so rebounds vary), with a few random actions.

    RAM addresses and pixel offsets were measured against the rendered frame
    (ball and paddle centres in screen pixels):
    Breakout: ball x = ram[99] - 48.5, ball y = ram[101] (0: no ball in play),
    paddle centre x = ram[72] - 39.  Pong: ball y = ram[54] - 12.4,
    own (right) paddle centre y = ram[51] - 2; "RIGHT" moves it up.
    """

    def __init__(self, game: str, ale: Any, rng: np.random.Generator) -> None:
        from ale_py import Action

        self.game, self.rng, self.A = game, rng, Action
        self.actions = list(ale.getMinimalActionSet())
        self.offset = 0.0

    def __call__(self, ale: Any, step: int) -> Any:
        A = self.A
        if step % 64 == 0:
            self.offset = float(self.rng.uniform(-5.0, 5.0))
        if self.rng.random() < 0.03:
            return self.actions[int(self.rng.integers(len(self.actions)))]
        ram = ale.getRAM()
        if self.game == "Breakout":
            if ram[101] == 0:  # ball not in play: press FIRE (released every other frame)
                return A.FIRE if step % 2 == 0 else A.NOOP
            ball, paddle = int(ram[99]) - 48.5 + self.offset, int(ram[72]) - 39.0
            more, less = A.RIGHT, A.LEFT
        else:  # Pong: vertical paddle
            ball, paddle = int(ram[54]) - 12.4 + self.offset, int(ram[51]) - 2.0
            more, less = A.LEFT, A.RIGHT
        if ball > paddle + 2:
            return more
        if ball < paddle - 2:
            return less
        return A.NOOP


def make_policy(policy: str, game: str, ale: Any, rng: np.random.Generator) -> tuple[Callable[[Any, int], Any], str]:
    """The policy callable and the name of what it really does."""
    if policy == "agent" and game in AGENT_GAMES:
        return FollowBall(game, ale, rng), "agent"
    return RandomPolicy(ale.getMinimalActionSet(), rng), ("sticky" if policy == "sticky" else "random")


# --- collection -----------------------------------------------------------------


@dataclass
class _Job:
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


def _make_ale(job: _Job) -> Any:
    gym, _ = _ale_modules()
    sticky = STICKY_PROBABILITY if job.policy == "sticky" else 0.0
    env = gym.make(f"ALE/{job.game}-v5", frameskip=1, repeat_action_probability=sticky, full_action_space=False)
    env.reset(seed=job.seed)
    return env


def _collect(job: _Job, sink: Callable[[np.ndarray], None], progress: Callable[[int], None]) -> dict[str, Any]:
    """Play ``job.game`` and pass batches of kept frames (B, h, w, C) to ``sink``."""
    env = _make_ale(job)
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


def _worker(job: _Job, index: int, scratch: str) -> dict[str, Any]:
    """Spawned-process entry: collect into a raw scratch file."""

    def bump(n: int) -> None:
        _COUNTERS[index] += n

    with open(scratch, "wb") as f:
        return _collect(job, lambda b: f.write(b.tobytes()), bump)


def _split(frames: int, workers: int) -> list[int]:
    base, extra = divmod(frames, workers)
    return [base + (1 if i < extra else 0) for i in range(workers)]


def _progress_bar(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", unit_scale=True, file=sys.stderr, disable=not enabled, smoothing=0.1)


def _run_parallel(jobs: list[_Job], writer: DatasetWriter, bar: Any, label: int | None) -> list[dict[str, Any]]:
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


def parse_games(game: str | Sequence[str]) -> list[str]:
    """"Breakout,pong" or ["Breakout", "Pong"] -> canonical names, each once."""
    parts = game.split(",") if isinstance(game, str) else list(game)
    names = [resolve_game(p) for p in parts if str(p).strip()]
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
    workers = min(workers, frames)
    plans: list[list[_Job]] = []
    for name in names:
        base = _Job(name, frames, hw, every, policy, seed, grayscale, crop_t, resize)  # type: ignore[arg-type]
        probe = _make_ale(base)  # checks the crop against the real screen before any work
        check_crop(crop_t, *probe.unwrapped.ale.getScreenDims())
        probe.close()
        plans.append([_Job(**{**asdict(base), "frames": n, "seed": seed + i})
                      for i, n in enumerate(_split(frames, workers))])
    import ale_py

    params = {
        "game": ",".join(names),
        "env_id": ",".join(f"ALE/{n}-v5" for n in names),
        "frames": frames,
        "size": list(hw),
        "every": every,
        "policy": policy,
        "seed": seed,
        "grayscale": grayscale,
        "crop": list(crop_t) if crop_t else None,
        "resize": resize,
        "workers": workers,
        "frameskip": 1,
        "repeat_action_probability": STICKY_PROBABILITY if policy == "sticky" else 0.0,
        "ale_py_version": ale_py.__version__,
    }
    if len(names) > 1:
        params["games"] = names
    classes = names if len(names) > 1 else None
    channels = 1 if grayscale else 3
    start = time.perf_counter()
    with _progress_bar(frames * len(names), progress) as bar, \
            DatasetWriter(Path(out), *hw, channels, "atari", params, classes=classes,
                          existing=existing) as writer:
        per_game = {}
        for label, jobs in enumerate(plans):
            tag = label if classes else None
            if workers == 1:
                per_game[names[label]] = [_collect(jobs[0], lambda b, t=tag: writer.add(b, t), bar.update)]
            else:
                per_game[names[label]] = _run_parallel(jobs, writer, bar, tag)
        seconds = time.perf_counter() - start
        info = _summary([s for stats in per_game.values() for s in stats], frames * len(names), seconds)
        if classes:
            info["per_game"] = {n: _summary(stats, frames, None) for n, stats in per_game.items()}
        writer.close(extra={"atari": info})
    return load_dataset(out)


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
