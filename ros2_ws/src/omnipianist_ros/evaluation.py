"""Live evaluation (plain Python): key states stamped on the ROS clock -> per-step and onset F1.

Step ``k`` of the piece is due at ``start_s + k * dt``; the keys that answer it are the ones
measured one control period later (the simulator compares the piano after the physics of step ``k``
with goal row ``k``), so a key message stamped ``s`` answers step ``round((s - start_s) / dt) - 1``.
Metrics are :mod:`sim_training.metrics`, the same functions the simulator reports.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from sim_training.constants import NUM_KEYS
from sim_training.metrics import do_nothing_f1, note_step_prf, onset_prf, step_prf
from sim_training.music import PianoRoll


class LiveEvaluator:
    """Collects active keys per step of ``roll`` and scores them."""

    def __init__(self, roll: PianoRoll) -> None:
        self.roll = roll
        self.dt_s = roll.dt_s
        self.start_s: float | None = None
        self.active = np.zeros((roll.n_steps, NUM_KEYS), dtype=bool)
        self.seen = np.zeros(roll.n_steps, dtype=bool)
        self.goal_mismatches = 0
        self.goals_checked = 0

    def set_start(self, start_s: float) -> None:
        self.start_s = start_s

    def step_of_keys(self, stamp_s: float) -> int | None:
        """Piece step answered by keys stamped ``stamp_s``, or None (not started / outside the piece)."""
        if self.start_s is None:
            return None
        k = int(np.floor((stamp_s - self.start_s) / self.dt_s + 0.5)) - 1
        return k if 0 <= k < self.roll.n_steps else None

    def past_end(self, stamp_s: float) -> bool:
        """Keys stamped ``stamp_s`` come after the piece's last step (its answers are all due)."""
        if self.start_s is None:
            return False
        return int(np.floor((stamp_s - self.start_s) / self.dt_s + 0.5)) - 1 >= self.roll.n_steps

    def add_keys(self, stamp_s: float, active: np.ndarray) -> int | None:
        """Record the active keys; returns the step they answer (None if outside the piece)."""
        k = self.step_of_keys(stamp_s)
        if k is not None:
            self.active[k] = active
            self.seen[k] = True
        return k

    def check_goal(self, step: int, goal_row: np.ndarray) -> bool:
        """Compare the goal row the score node published for ``step`` with the roll; counts mismatches."""
        if not 0 <= step < self.roll.n_steps:
            return True
        self.goals_checked += 1
        ok = bool(np.array_equal(goal_row[:NUM_KEYS] > 0.5, self.roll.keys[step]))
        self.goal_mismatches += not ok
        return ok

    @property
    def n_seen(self) -> int:
        return int(self.seen.sum())

    @property
    def complete(self) -> bool:
        return bool(self.seen.all())

    def live_f1(self) -> float:
        """Step F1 over the steps seen so far (1.0 before any)."""
        rows = np.flatnonzero(self.seen)
        return step_prf(self.active[rows], self.roll.keys[rows]).f1

    def live_onset_f1(self) -> float:
        """Onset F1 of the piece up to the last step seen (notes starting later are not yet due)."""
        rows = np.flatnonzero(self.seen)
        if rows.size == 0:
            return 1.0
        n = int(rows[-1]) + 1
        head = self.roll if n >= self.roll.n_steps else _head(self.roll, n)
        return onset_prf(self.active[:n], head).f1

    def report(self) -> dict[str, Any]:
        """Step P/R/F1, note-step F1, onset F1 and the do-nothing baseline over the steps seen."""
        n = self.n_seen
        # steps never seen (lost messages) count as nothing pressed, and are reported
        active, goal = self.active, self.roll.keys
        prf = step_prf(active, goal)
        onset = onset_prf(active, self.roll)
        return {"f1": prf.f1, "precision": prf.precision, "recall": prf.recall,
                "note_step_f1": note_step_prf(active, goal).f1, "onset_f1": onset.f1,
                "onset_precision": onset.precision, "onset_recall": onset.recall,
                "do_nothing_f1": do_nothing_f1(goal), "steps": int(self.roll.n_steps),
                "steps_seen": n, "steps_missing": int(self.roll.n_steps - n),
                "goal_mismatches": self.goal_mismatches, "goals_checked": self.goals_checked}


def _head(roll: PianoRoll, n: int) -> PianoRoll:
    """The first ``n`` steps of ``roll`` (onsets before step ``n``)."""
    return dataclasses.replace(roll, keys=roll.keys[:n], sustain=roll.sustain[:n],
                               onsets=tuple(o for o in roll.onsets if o[0] < n))
