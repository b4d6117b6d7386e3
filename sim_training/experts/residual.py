"""Residual wiring: what the expert's network sees, and how its output becomes the env action.

Policy input (raw, before :class:`~sim_training.experts.droq.RunningNorm`):

* ``full``: the whole env observation (layout size, 1150 for shadow) + the prior's action (A);
* ``compact``: goal rows 0..2 (3 x 89) + fingertip xyz (F x 3) + hand joints + the prior's action
  (388 for shadow: 267 + 30 + 52 + 39).

Without a prior (``--no-prior``) the prior's action is left out. Env action:
``clip(prior + residual_scale * a, -1, 1)`` with a prior, ``a`` without.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from sim_training.constants import GOAL_WIDTH
from sim_training.env.observation import ObservationLayout

ObsMode = Literal["full", "compact"]
COMPACT_GOAL_ROWS = 3
"""Goal rows kept by the compact input: now and the next two steps."""


def observation_index(layout: ObservationLayout, mode: ObsMode) -> np.ndarray:
    """Indices of the env observation the policy sees, (K,) int, in observation order."""
    if mode == "full":
        return np.arange(layout.size)
    if mode != "compact":
        raise ValueError(f"obs_mode {mode!r}: expected 'full' or 'compact'")
    goal = layout.field("goal")
    rows = min(COMPACT_GOAL_ROWS, layout.lookahead + 1)
    parts = [np.arange(goal.offset, goal.offset + rows * GOAL_WIDTH)]
    for name in ("fingertip_xyz", "hand_joints"):
        f = layout.field(name)
        parts.append(np.arange(f.offset, f.offset + f.size))
    return np.concatenate(parts)


def policy_input_dim(layout: ObservationLayout, mode: ObsMode, action_dim: int, with_prior: bool) -> int:
    return int(observation_index(layout, mode).size + (action_dim if with_prior else 0))


def policy_input(obs: np.ndarray, prior_action: np.ndarray | None, index: np.ndarray) -> np.ndarray:
    """(N, obs_dim) or (obs_dim,) env observation [+ (N, A) prior action] -> (N, K [+ A]) float32."""
    x = np.asarray(obs, dtype=np.float32)[..., index]
    if prior_action is None:
        return x
    return np.concatenate([x, np.asarray(prior_action, dtype=np.float32)], axis=-1)


def compose_action(prior_action: np.ndarray | None, residual: np.ndarray, residual_scale: float) -> np.ndarray:
    """Env action in [-1, 1]: clip(prior + residual_scale * residual) with a prior, else clip(residual)."""
    residual = np.asarray(residual, dtype=np.float64)
    if prior_action is None:
        return np.clip(residual, -1.0, 1.0)
    return np.clip(np.asarray(prior_action, dtype=np.float64) + residual_scale * residual, -1.0, 1.0)
