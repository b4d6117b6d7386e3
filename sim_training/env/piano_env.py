"""Gymnasium environment: two hands play a piece on the simulated piano (RoboPianist/RP1M semantics).

Control at 20 Hz, physics at 200 Hz (10 substeps per action, one ``mj_step(nstep=10)`` call).
At step ``t`` the agent sees the goal rows ``t .. t+lookahead``; it acts; after the physics, the
reward and the metrics compare the piano's state with goal row ``t``.

Action: ``embodiment.action_names`` — hand position targets + forearm slides per hand (left, right)
in [-1, 1] scaled to the actuator ranges, then the sustain pedal (pressed when (a + 1) / 2 >= 0.5).
Observation: :mod:`sim_training.env.observation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from sim_training.constants import (
    CLIP_STEPS,
    CONTROL_DT_S,
    GOAL_WIDTH,
    KEY_ACTIVE_TOLERANCE_RAD,
    LOOKAHEAD_STEPS,
    NUM_KEYS,
    SUSTAIN_ACTIVE_THRESHOLD,
)
from sim_training.env import rewards
from sim_training.env.observation import ObservationLayout, build_observation
from sim_training.fingering.assignment import assign_fingers
from sim_training.metrics.f1 import note_step_prf, step_prf, sustain_prf
from sim_training.models.embodiment import Embodiment, get_embodiment
from sim_training.models.piano import builder as pb
from sim_training.models.scene import Scene, build_scene
from sim_training.music import PianoRoll, Score, get_score, score_to_roll


@dataclass(frozen=True)
class EnvConfig:
    """Episode and reward settings (defaults are the documented RP1M values)."""

    clip_steps: int | None = CLIP_STEPS
    """Episode length in control steps; None plays the whole piece."""
    random_start: bool = True
    """Start each clip at a random step of the piece (seeded), else at step 0."""
    stretch: float = 1.0
    """Time stretch of the score (RP1M trains at 1.25)."""
    lookahead: int = LOOKAHEAD_STEPS
    reward_weights: rewards.RewardWeights = rewards.RewardWeights()
    ot_reward: bool = True
    """Compute the OT fingering term (costs ~0.1 ms per step)."""


def load_roll(piece: str | Score | PianoRoll, stretch: float = 1.0) -> PianoRoll:
    """A piano roll from a built-in name, a MIDI path, a Score or a PianoRoll (returned as is)."""
    if isinstance(piece, PianoRoll):
        return piece
    score = get_score(piece) if isinstance(piece, str) else piece
    return score_to_roll(score, stretch=stretch)


@dataclass(frozen=True, eq=False)
class EnvState:
    """A snapshot of a :class:`PianoEnv` mid-episode (see :meth:`PianoEnv.get_state`).

    ``physics`` is MuJoCo's integration state (``mjSTATE_INTEGRATION``: time, qpos, qvel, act,
    warm start, ctrl, ...); the rest is the episode bookkeeping that the metrics and the
    observation read. Restoring it and replaying the same actions reproduces the episode bit for bit.
    """

    physics: np.ndarray
    start: int
    t: int
    end: int
    sustain: float
    active_log: np.ndarray
    """(t, 88) bool: active keys of the steps played so far."""
    sustain_log: np.ndarray

    @property
    def step_index(self) -> int:
        """Index of the next goal row in the piece."""
        return self.start + self.t


_STATE_SPEC = mujoco.mjtState.mjSTATE_INTEGRATION


class PianoEnv(gym.Env[np.ndarray, np.ndarray]):
    """Bimanual piano playing; see the module docstring for the contract."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": int(round(1 / CONTROL_DT_S))}

    def __init__(
        self,
        piece: str | Score | PianoRoll = "twinkle",
        embodiment: str | Embodiment = "shadow",
        config: EnvConfig | None = None,
        *,
        scene: Scene | None = None,
        render_mode: str | None = None,
        render_size: tuple[int, int] = (480, 320),
        camera: str = "front",
    ) -> None:
        self.config = config or EnvConfig()
        emb = get_embodiment(embodiment) if isinstance(embodiment, str) else embodiment
        self.scene = scene if scene is not None else build_scene(emb)
        if self.scene.embodiment != emb:
            raise ValueError(f"scene is for {self.scene.embodiment.key!r}, env asked for {emb.key!r}")
        self.embodiment = emb
        self.model = self.scene.model
        self.data = mujoco.MjData(self.model)
        self.roll = load_roll(piece, self.config.stretch)
        self.layout = ObservationLayout.for_embodiment(emb, self.config.lookahead)
        self._goals = self.roll.goals(self.config.lookahead)  # (T, L+1, 89), built once
        self._goal_keys = self.roll.keys  # (T, 88) bool
        self._goal_sustain = self.roll.sustain

        self._action_dim = emb.action_dim
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(emb.action_dim,), dtype=np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(self.layout.size,), dtype=np.float32)
        self.render_mode = render_mode
        self._render_size = render_size
        self._camera = camera
        self._renderer: mujoco.Renderer | None = None
        self._scene_option: mujoco.MjvOption | None = None
        self._key_geom_ids: np.ndarray | None = None
        self._key_rgba = np.zeros((0, 4))

        s = self.scene
        self._key_adr = s.key_qpos_adr
        self._key_max = s.key_max_angle_rad
        self._key_active_at = s.key_max_angle_rad - KEY_ACTIVE_TOLERANCE_RAD
        self._hand_adr = s.hand_qpos_adr
        self._tip_ids = s.fingertip_site_ids
        self._forearms = s.forearm_geom_ids
        self._hand_act = s.action_actuator_ids
        self._start = 0
        self._t = 0
        self._end = 0
        self._sustain = 0.0
        self._active_log = np.zeros((0, NUM_KEYS), dtype=bool)
        self._sustain_log = np.zeros(0, dtype=bool)
        self.last_reward_terms: rewards.RewardTerms | None = None

    # ----------------------------------------------------------------------------------- episode
    @property
    def n_piece_steps(self) -> int:
        return self.roll.n_steps

    @property
    def step_index(self) -> int:
        """Index of the next goal row in the piece."""
        return self._start + self._t

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset to the home posture. ``options``: ``start_step`` (int) overrides the random start."""
        super().reset(seed=seed)
        n = self.roll.n_steps
        length = n if self.config.clip_steps is None else min(self.config.clip_steps, n)
        if options and "start_step" in options:
            start = int(options["start_step"])
            if not 0 <= start < n:
                raise ValueError(f"start_step {start} outside the piece (0..{n - 1})")
        elif self.config.random_start and n > length:
            start = int(self.np_random.integers(0, n - length + 1))
        else:
            start = 0
        self._start, self._t, self._end = start, 0, min(n, start + length)
        d = self.data
        mujoco.mj_resetData(self.model, d)
        d.qpos[:] = self.scene.home_qpos
        d.ctrl[:] = self.scene.home_ctrl
        mujoco.mj_forward(self.model, d)
        self._sustain = 0.0
        self._active_log = np.zeros((self._end - start, NUM_KEYS), dtype=bool)
        self._sustain_log = np.zeros(self._end - start, dtype=bool)
        return self._observe(), {"start_step": start, "clip_steps": self._end - start}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (self._action_dim,):
            raise ValueError(f"action has shape {a.shape}, expected ({self._action_dim},) "
                             f"in the order of embodiment.action_names")
        if not np.all(np.isfinite(a)):
            bad = [self.embodiment.action_names[i] for i in np.flatnonzero(~np.isfinite(a))]
            raise ValueError(f"action has non-finite entries at {bad}")
        if self._t >= self._end - self._start:
            raise RuntimeError("step() called after the episode ended; call reset()")
        d = self.data
        self.scene.action_to_ctrl(a, d.ctrl)
        self._sustain = 1.0 if 0.5 * (a[-1] + 1.0) >= SUSTAIN_ACTIVE_THRESHOLD else 0.0
        mujoco.mj_step(self.model, d, nstep=self.scene.n_substeps)
        # mj_step leaves site/body positions at the start of its last substep; recompute them so the
        # observation (fingertips) is a function of the current state only — exactly what the ROS
        # policy node computes from joint states (~15 us).
        mujoco.mj_kinematics(self.model, d)

        row = self._start + self._t
        key_q = d.qpos[self._key_adr]
        active = key_q >= self._key_active_at
        key_state = np.clip(key_q / self._key_max, 0.0, 1.0)
        goal_keys = self._goal_keys[row]
        goal_sustain = bool(self._goal_sustain[row])
        self._active_log[self._t] = active
        self._sustain_log[self._t] = self._sustain > 0.5

        terms = self._reward(key_state, goal_keys, active, goal_sustain)
        self.last_reward_terms = terms
        self._t += 1
        piece_over = self._start + self._t >= self.roll.n_steps
        clip_over = self._t >= self._end - self._start
        info: dict[str, Any] = {"reward_terms": terms, "step": row}
        return self._observe(key_state), terms.total, piece_over, clip_over and not piece_over, info

    def _reward(self, key_state: np.ndarray, goal_keys: np.ndarray, active: np.ndarray,
                goal_sustain: bool) -> rewards.RewardTerms:
        d = self.data
        if self.config.ot_reward:
            due = np.flatnonzero(goal_keys)
            if due.size:
                tips = d.site_xpos[self._tip_ids]
                distance = assign_fingers(tips, self.scene.key_target_xyz_m[due], due, check=False).distance_m
            else:
                distance = np.zeros(0)
        else:
            distance = np.zeros(0)
        return rewards.step_reward_terms(
            distance, key_state, goal_keys, active, self._sustain > 0.5, goal_sustain, self._forearms_touch(),
            d.actuator_force[self._hand_act], d.actuator_velocity[self._hand_act], self.config.reward_weights)

    def _forearms_touch(self) -> bool:
        # Signed distance of the two forearm geoms (< 0: penetrating, i.e. in contact); 0.2 us,
        # vs ~6 us to scan the contact list.
        a, b = self._forearms
        return mujoco.mj_geomDistance(self.model, self.data, a, b, 0.01, None) < 0.0

    # ----------------------------------------------------------------------------------- state
    def get_state(self) -> EnvState:
        """Snapshot of the simulation and the episode (``mj_getState`` with the integration state,
        plus step counter, sustain and the per-step logs so far). Cheap: ~10 us."""
        m, d = self.model, self.data
        physics = np.empty(mujoco.mj_stateSize(m, _STATE_SPEC))
        mujoco.mj_getState(m, d, physics, _STATE_SPEC)
        return EnvState(physics, self._start, self._t, self._end, self._sustain,
                        self._active_log[: self._t].copy(), self._sustain_log[: self._t].copy())

    def set_state(self, state: EnvState) -> np.ndarray:
        """Restore a :meth:`get_state` snapshot (of an env of the same scene and piece); returns the
        observation at that state. Raises ValueError when the snapshot does not fit this env."""
        m, d = self.model, self.data
        if state.physics.shape != (mujoco.mj_stateSize(m, _STATE_SPEC),):
            raise ValueError(f"state has {state.physics.shape} physics values, this model needs "
                             f"{mujoco.mj_stateSize(m, _STATE_SPEC)} (a snapshot of another embodiment?)")
        if not 0 <= state.start <= state.start + state.t <= state.end <= self.roll.n_steps:
            raise ValueError(f"state at steps {state.start}+{state.t} (end {state.end}) does not fit this piece "
                             f"({self.roll.n_steps} steps)")
        mujoco.mj_setState(m, d, state.physics, _STATE_SPEC)
        mujoco.mj_forward(m, d)
        self._start, self._t, self._end, self._sustain = state.start, state.t, state.end, state.sustain
        n = state.end - state.start
        if self._active_log.shape[0] != n:
            self._active_log = np.zeros((n, NUM_KEYS), dtype=bool)
            self._sustain_log = np.zeros(n, dtype=bool)
        self._active_log[: state.t] = state.active_log
        self._sustain_log[: state.t] = state.sustain_log
        return self._observe()

    def key_state(self) -> np.ndarray:
        """(88,) key depression 0..1 now."""
        return np.clip(self.data.qpos[self._key_adr] / self._key_max, 0.0, 1.0)

    def active_keys(self) -> np.ndarray:
        """(88,) bool: keys within 0.5 degrees of the bottom of their travel now."""
        return self.data.qpos[self._key_adr] >= self._key_active_at

    def fingertip_xyz(self) -> np.ndarray:
        return self.data.site_xpos[self._tip_ids].copy()

    def goal_window(self) -> np.ndarray:
        """(lookahead + 1, 89) goal rows the agent sees now (zeros past the end of the piece)."""
        row = self._start + self._t
        if row < self.roll.n_steps:
            return self._goals[row]
        return np.zeros((self.config.lookahead + 1, GOAL_WIDTH), dtype=np.float32)

    def _observe(self, key_state: np.ndarray | None = None) -> np.ndarray:
        d = self.data
        return build_observation(
            self.layout, self.goal_window(), self.key_state() if key_state is None else key_state, self._sustain,
            d.site_xpos[self._tip_ids], d.qpos[self._hand_adr],
        )

    # ----------------------------------------------------------------------------------- metrics
    def episode_log(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(active keys, goal keys, sustain, goal sustain) for the steps played so far this episode."""
        rows = slice(self._start, self._start + self._t)
        return (self._active_log[: self._t], self._goal_keys[rows],
                self._sustain_log[: self._t], self._goal_sustain[rows])

    def episode_metrics(self) -> dict[str, float]:
        """Step-level P/R/F1 (RoboPianist), F1 on note steps, sustain F1, and the do-nothing baseline."""
        active, goal, sus, goal_sus = self.episode_log()
        prf = step_prf(active, goal)
        notes = note_step_prf(active, goal)
        nothing = step_prf(np.zeros_like(goal), goal)
        return {"precision": prf.precision, "recall": prf.recall, "f1": prf.f1,
                "note_step_f1": notes.f1, "sustain_f1": sustain_prf(sus, goal_sus).f1,
                "do_nothing_f1": nothing.f1, "steps": int(self._t)}

    # ----------------------------------------------------------------------------------- render
    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        if self._renderer is None:
            w, h = self._render_size
            self._renderer = mujoco.Renderer(self.model, height=h, width=w)
        # pressed keys shown in green (the geom colours are only read by the renderer)
        rgba = self.model.geom_rgba
        if self._key_geom_ids is None:
            self._key_geom_ids = np.array([self.model.geom(pb.key_geom_name(k)).id for k in range(NUM_KEYS)])
            self._key_rgba = rgba[self._key_geom_ids].copy()
        rgba[self._key_geom_ids] = self._key_rgba
        active = self.active_keys()
        rgba[self._key_geom_ids[active]] = (0.2, 0.8, 0.2, 1.0)
        if self._scene_option is None:
            self._scene_option = mujoco.MjvOption()
            self._scene_option.geomgroup[3] = 1  # the hands' collision geoms are their visible shape
        self._renderer.update_scene(self.data, camera=self._camera, scene_option=self._scene_option)
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
