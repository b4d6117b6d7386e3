"""The score schedule: which goal rows to publish at a given time on the ROS clock (plain Python).

Row ``k`` of the piece is due at ``start_s + k * dt_s``; before the start and after the end the goal
is silence (all zeros). The time of a tick is rounded to the nearest control step, so a tick that
arrives a little early or late still picks the intended row.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from sim_training.constants import GOAL_WIDTH
from sim_training.env.piano_env import load_roll
from sim_training.music import PianoRoll


class ScoreState(enum.IntEnum):
    IDLE = 0
    """Not started (or stopped)."""
    WAITING = 1
    """Started; before ``start_s`` (start delay)."""
    PLAYING = 2
    DONE = 3
    """Every row has been due."""


@dataclass(frozen=True)
class ScoreTick:
    """What to publish at one tick."""

    goal: np.ndarray
    """(lookahead + 1, 89) float32."""
    step: int
    """Row of the piece now (-1 before the start; n_steps after the end)."""
    state: ScoreState


class ScoreSchedule:
    """Goal windows of a piano roll against a clock. ``start(now)`` arms, ``tick(now)`` reads."""

    def __init__(self, roll: PianoRoll, lookahead: int, start_delay_s: float = 0.0) -> None:
        self.roll = roll
        self.lookahead = lookahead
        self.start_delay_s = start_delay_s
        self.dt_s = roll.dt_s
        self._goals = roll.goals(lookahead)
        self._silence = np.zeros((lookahead + 1, GOAL_WIDTH), dtype=np.float32)
        self.start_s: float | None = None

    @classmethod
    def from_piece(cls, piece: str, tempo_scale: float, lookahead: int, start_delay_s: float) -> ScoreSchedule:
        return cls(load_roll(piece, tempo_scale), lookahead, start_delay_s)

    @property
    def n_steps(self) -> int:
        return self.roll.n_steps

    def start(self, now_s: float) -> None:
        self.start_s = now_s + self.start_delay_s

    def stop(self) -> None:
        self.start_s = None

    def seek(self, now_s: float, to_s: float) -> int:
        """Jump so that the row due at ``now_s`` is the one ``to_s`` seconds into the piece (playing on
        from there; starts the score if idle). Returns that row. ValueError if ``to_s`` is outside the piece."""
        if not 0.0 <= to_s < self.n_steps * self.dt_s:
            raise ValueError(f"seek to {to_s} s: outside the piece (0 .. {self.n_steps * self.dt_s:.2f} s)")
        step = int(np.floor(to_s / self.dt_s + 1e-9))
        self.start_s = now_s - step * self.dt_s
        return step

    def step_at(self, now_s: float) -> int:
        """Row index due at ``now_s`` (may be negative or >= n_steps); ValueError when idle."""
        if self.start_s is None:
            raise ValueError("score not started")
        return int(np.floor((now_s - self.start_s) / self.dt_s + 0.5))

    def tick(self, now_s: float) -> ScoreTick:
        if self.start_s is None:
            return ScoreTick(self._silence, -1, ScoreState.IDLE)
        k = self.step_at(now_s)
        if k < 0:
            return ScoreTick(self._silence, -1, ScoreState.WAITING)
        if k >= self.n_steps:
            return ScoreTick(self._silence, self.n_steps, ScoreState.DONE)
        return ScoreTick(self._goals[k], k, ScoreState.PLAYING)
