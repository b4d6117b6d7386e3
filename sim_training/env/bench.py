"""Simulator speed benchmark: env control-steps/s vs raw ``mj_step`` of the same compiled model.

The action sequence is a seeded smooth random walk in the action space (hands moving, keys being
hit), recorded as ctrl vectors so the raw loop replays exactly the same physics workload.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import mujoco
import numpy as np

from sim_training.env.batched import BatchedPianoEnv
from sim_training.env.piano_env import EnvConfig, PianoEnv
from sim_training.models.scene import build_scene

ENV_OVER_RAW_TARGET = 0.85
BATCHED_OVER_SINGLE_TARGET = 1.7


@dataclass(frozen=True)
class SimBenchConfig:
    embodiment: str = "shadow"
    piece: str = "twinkle"
    steps: int = 1500
    """Control steps timed per measurement."""
    n_envs: int = 8
    """Environments in the batched measurement."""
    n_threads: int = 2
    repeats: int = 5
    """Each figure is the best of this many runs (least disturbed by other load)."""
    seed: int = 0


@dataclass(frozen=True)
class SimBenchTargets:
    env_over_raw: float = ENV_OVER_RAW_TARGET
    """The env's control steps/s over raw ``mj_step``'s, at least."""
    batched_over_single: float = BATCHED_OVER_SINGLE_TARGET
    """The batched envs' steps/s over one env's, at least."""


@dataclass(frozen=True)
class SimBenchResult:
    benchmark: str
    embodiment: str
    piece: str
    steps: int
    model: dict[str, int]
    env_steps_per_s: float
    raw_mj_step_control_steps_per_s: float
    batched_steps_per_s: float
    batched_envs: int
    batched_threads: int
    env_over_raw: float
    batched_over_single: float
    targets: SimBenchTargets
    random_walk_f1: float
    ok: bool


def smooth_random_actions(n_steps: int, dim: int, seed: int, scale: float = 0.15) -> np.ndarray:
    """(n_steps, dim) actions in [-1, 1]: a clipped random walk (smooth, like a policy's output)."""
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(0.0, scale, size=(n_steps, dim)), axis=0)
    return np.clip(np.tanh(walk * 0.5), -1.0, 1.0)


def run_sim_bench(cfg: SimBenchConfig) -> SimBenchResult:
    scene = build_scene(cfg.embodiment)
    env_cfg = EnvConfig(clip_steps=None, random_start=False)
    env = PianoEnv(cfg.piece, scene.embodiment, env_cfg, scene=scene)
    n = min(cfg.steps, env.n_piece_steps)
    actions = smooth_random_actions(n, env.embodiment.action_dim, cfg.seed)

    # --- record the ctrl sequence one env produces, for the raw replay
    ctrls = np.zeros((n, scene.model.nu))
    env.reset(seed=cfg.seed)
    for i in range(n):
        env.step(actions[i])
        ctrls[i] = env.data.ctrl
    metrics = env.episode_metrics()

    # --- one env vs raw physics (same model, same ctrl sequence), interleaved so that both see the
    # same machine state; each figure is the best of `repeats` runs
    m, d = scene.model, mujoco.MjData(scene.model)
    env_times, raw_times = [], []
    for _ in range(cfg.repeats):
        env.reset(seed=cfg.seed)
        t0 = time.perf_counter()
        for i in range(n):
            env.step(actions[i])
        env_times.append(time.perf_counter() - t0)
        mujoco.mj_resetData(m, d)
        d.qpos[:] = scene.home_qpos
        mujoco.mj_forward(m, d)
        t0 = time.perf_counter()
        for i in range(n):
            d.ctrl[:] = ctrls[i]
            mujoco.mj_step(m, d, nstep=scene.n_substeps)
        raw_times.append(time.perf_counter() - t0)

    # --- batched: n_envs envs on n_threads threads
    envs = [PianoEnv(cfg.piece, scene.embodiment, env_cfg, scene=scene) for _ in range(cfg.n_envs)]
    batch = BatchedPianoEnv(envs, n_threads=cfg.n_threads)
    nb = max(1, n // 2)
    batch_actions = np.stack([smooth_random_actions(nb, env.embodiment.action_dim, cfg.seed + k)
                              for k in range(cfg.n_envs)], axis=1)
    batch_times = []
    for _ in range(cfg.repeats):
        batch.reset(seeds=[cfg.seed + k for k in range(cfg.n_envs)])
        t0 = time.perf_counter()
        for i in range(nb):
            batch.step(batch_actions[i])
        batch_times.append(time.perf_counter() - t0)
    batch.close()
    env.close()

    env_sps = n / min(env_times)
    raw_sps = n / min(raw_times)
    batch_sps = nb * cfg.n_envs / min(batch_times)
    env_over_raw = env_sps / raw_sps
    batched_over_single = batch_sps / env_sps
    ok = env_over_raw >= ENV_OVER_RAW_TARGET and batched_over_single >= BATCHED_OVER_SINGLE_TARGET
    return SimBenchResult(
        benchmark="sim",
        embodiment=scene.embodiment.key,
        piece=cfg.piece,
        steps=n,
        model=scene.sizes(),
        env_steps_per_s=round(env_sps, 1),
        raw_mj_step_control_steps_per_s=round(raw_sps, 1),
        batched_steps_per_s=round(batch_sps, 1),
        batched_envs=cfg.n_envs,
        batched_threads=batch.n_threads,
        env_over_raw=round(env_over_raw, 3),
        batched_over_single=round(batched_over_single, 3),
        targets=SimBenchTargets(),
        random_walk_f1=round(metrics["f1"], 4),
        ok=bool(ok),
    )
