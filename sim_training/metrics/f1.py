"""Per-step key F1, RoboPianist's metric, in plain vectorised numpy.

At every control step the pressed keys are compared with the goal keys as one binary
classification, exactly as ``sklearn.metrics.precision_recall_fscore_support(goal, active,
average='binary', zero_division=1)`` does per step:

* precision = tp / (tp + fp), or 1 when nothing is pressed;
* recall    = tp / (tp + fn), or 1 when nothing is to be pressed;
* f1        = 2 tp / (2 tp + fp + fn), or 1 when both are empty.

The three are then averaged over steps. Silent steps pressed silently score 1, so always
report :func:`do_nothing_f1` beside an F1, and :func:`note_step_prf` (steps with notes only).
An empty step set (T = 0, or no note steps) scores 1.0 by the same zero-division convention.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class PRF:
    """Step-averaged precision/recall/F1 and the per-step values ((T,) float64 each)."""

    precision: float
    recall: float
    f1: float
    step_precision: np.ndarray
    step_recall: np.ndarray
    step_f1: np.ndarray

    @property
    def n_steps(self) -> int:
        """Number of steps averaged."""
        return int(self.step_f1.shape[0])


def _as_bool_2d(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be (T, K), got shape {arr.shape}")
    return arr.astype(bool, copy=False)


def _prf(active: np.ndarray, goal: np.ndarray) -> PRF:
    a, g = active, goal
    tp = np.count_nonzero(a & g, axis=1)
    fp = np.count_nonzero(a & ~g, axis=1)
    fn = np.count_nonzero(~a & g, axis=1)
    pred, true, f_den = tp + fp, tp + fn, 2 * tp + fp + fn
    precision = np.where(pred > 0, tp / np.maximum(pred, 1), 1.0)
    recall = np.where(true > 0, tp / np.maximum(true, 1), 1.0)
    f1 = np.where(f_den > 0, 2 * tp / np.maximum(f_den, 1), 1.0)
    if f1.shape[0] == 0:
        return PRF(1.0, 1.0, 1.0, precision, recall, f1)
    return PRF(
        float(precision.mean()), float(recall.mean()), float(f1.mean()), precision, recall, f1
    )


def step_prf(active: np.ndarray, goal: np.ndarray) -> PRF:
    """Per-step binary P/R/F1 (zero_division=1) of active (T, K) vs goal (T, K) keys, averaged.

    Inputs are read as booleans (nonzero = down). Raises ValueError on shape mismatch.
    """
    a = _as_bool_2d(active, "active")
    g = _as_bool_2d(goal, "goal")
    if a.shape != g.shape:
        raise ValueError(f"active {a.shape} and goal {g.shape} differ in shape")
    return _prf(a, g)


def note_step_prf(active: np.ndarray, goal: np.ndarray) -> PRF:
    """As :func:`step_prf`, over only the steps whose goal has at least one key down.

    The per-step arrays have one entry per such step. Raises ValueError on shape mismatch.
    """
    a = _as_bool_2d(active, "active")
    g = _as_bool_2d(goal, "goal")
    if a.shape != g.shape:
        raise ValueError(f"active {a.shape} and goal {g.shape} differ in shape")
    rows = g.any(axis=1)
    return _prf(a[rows], g[rows])


def sustain_prf(active_sustain: np.ndarray, goal_sustain: np.ndarray) -> PRF:
    """Per-step P/R/F1 of the sustain pedal, active (T,) vs goal (T,), same conventions.

    Raises ValueError on shape mismatch or non-1-D input.
    """
    a = np.asarray(active_sustain)
    g = np.asarray(goal_sustain)
    if a.ndim != 1 or a.shape != g.shape:
        raise ValueError(f"sustain arrays must be (T,) of equal length, got {a.shape}, {g.shape}")
    return _prf(a.astype(bool)[:, None], g.astype(bool)[:, None])


def do_nothing_f1(goal: np.ndarray) -> float:
    """F1 of pressing nothing against goal (T, K): the fraction of silent steps (1.0 if T = 0)."""
    g = _as_bool_2d(goal, "goal")
    if g.shape[0] == 0:
        return 1.0
    return float(np.mean(~g.any(axis=1)))
