"""One rollout loop: play a policy in a :class:`PianoEnv` and collect what every caller reports.

``rollout(env, act)`` resets the env (at ``start_step``), calls ``act(obs)`` once per control step,
steps, and returns an :class:`Episode`: the env's metrics plus onset F1, the keys that went down,
the return, the time each ``act`` took, and the frames when asked. ``on_step(t, action, env)`` runs
after each step for callers that keep more (the prior's fingering, the fingertip nearest each key).
A policy that returns None (it refused a non-finite observation) holds still: the zero action.
Loops that must interleave something else between steps (the planner's snapshots, the dataset
writer's noise and relabelling, the HIL rig's bus) keep their own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from sim_training.env.piano_env import PianoEnv
from sim_training.metrics import onset_prf
from sim_training.music import PianoRoll


@dataclass
class Episode:
    """What one rollout produced (``metrics``: ``PianoEnv.episode_metrics`` plus onset P/R/F1)."""

    roll: PianoRoll
    metrics: dict[str, float]
    active: np.ndarray = field(repr=False)
    """(T, 88) bool: the keys down at each step played."""
    reward: float
    act_times_s: np.ndarray = field(repr=False)
    wall_s: float
    frames: list[np.ndarray] = field(default_factory=list, repr=False)

    @property
    def steps(self) -> int:
        return int(self.metrics["steps"])

    @property
    def steps_per_s(self) -> float:
        return self.steps / max(self.wall_s, 1e-9)

    def act_ms(self, q: float) -> float:
        """Percentile ``q`` of the per-step ``act`` time, milliseconds (0 for an empty episode)."""
        return float(np.percentile(self.act_times_s, q) * 1e3) if self.act_times_s.size else 0.0


def rollout(
    env: PianoEnv,
    act: Callable[[np.ndarray], np.ndarray | None],
    *,
    seed: int = 0,
    start_step: int | None = 0,
    max_steps: int | None = None,
    frames: bool = False,
    on_step: Callable[[int, np.ndarray, PianoEnv], None] | None = None,
    steps_iter: Callable[[range], Iterable[int]] | None = None,
) -> Episode:
    """Play ``act`` from a reset of ``env`` until the episode ends (or ``max_steps``).

    ``start_step`` None lets the env choose (its ``random_start``); ``frames`` renders every step
    (the env needs ``render_mode="rgb_array"``); ``steps_iter`` wraps the step range (a progress bar).
    """
    options = {"start_step": start_step} if start_step is not None else None
    obs, _ = env.reset(seed=seed, options=options)
    n = env.n_piece_steps if max_steps is None else max_steps
    steps: Iterable[int] = range(n) if steps_iter is None else steps_iter(range(n))
    act_s: list[float] = []
    shots: list[np.ndarray] = []
    ret = 0.0
    zero = np.zeros(env.embodiment.action_dim, dtype=np.float64)
    t_start = time.perf_counter()
    for t in steps:
        t0 = time.perf_counter()
        proposed = act(obs)
        act_s.append(time.perf_counter() - t0)
        action = zero if proposed is None else proposed
        obs, reward, terminated, truncated, _ = env.step(action)
        ret += float(reward)
        if on_step is not None:
            on_step(int(t), action, env)
        if frames:
            frame = env.render()
            if frame is not None:
                shots.append(frame)
        if terminated or truncated:
            break
    wall = time.perf_counter() - t_start
    metrics = dict(env.episode_metrics())
    active, *_ = env.episode_log()
    onset = onset_prf(active, env.roll)
    metrics.update(onset_f1=onset.f1, onset_precision=onset.precision, onset_recall=onset.recall)
    return Episode(roll=env.roll, metrics=metrics, active=active.copy(), reward=ret,
                   act_times_s=np.asarray(act_s), wall_s=wall, frames=shots)
