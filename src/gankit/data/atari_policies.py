"""What the emulator's player does, so the frames show real play (`gankit data atari --policy`).

- ``random``: a uniformly random action held for HOLD_FRAMES frames (an
  agent's usual decision rate), no sticky actions;
- ``sticky``: the same with ALE's sticky actions (repeat probability 0.25);
- ``agent``: Breakout and Pong are played by following the ball with the
  paddle (positions read from the RAM); other games fall back to ``random``.

Every policy is a callable (ale, step) -> action.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

POLICIES = ("agent", "random", "sticky")
AGENT_GAMES = ("Breakout", "Pong")
STICKY_PROBABILITY = 0.25
HOLD_FRAMES = 4  # random policies pick a new action every HOLD_FRAMES frames


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
