"""The MuJoCo mock's physics (plain Python): the simulator's scene behind the hardware interface.

Same model, reset and stepping as :class:`sim_training.env.piano_env.PianoEnv`: reset to the home
posture with ``mj_forward``; each control step writes the commanded actuator ctrl values (ctrl units,
see :mod:`omnipianist_ros.control`) and runs ``mj_step`` for ``n_substeps`` physics steps.
"""

from __future__ import annotations

import mujoco
import numpy as np

from sim_training.constants import CONTROL_DT_S, HAND_SIDES, KEY_ACTIVE_TOLERANCE_RAD
from sim_training.models.scene import Scene


class MockPiano:
    """Two hands on the simulated piano, stepped one control period at a time."""

    def __init__(self, scene: Scene, dt: float = CONTROL_DT_S) -> None:
        self.scene = scene
        self.model = scene.model
        self.data = mujoco.MjData(scene.model)
        self.dt = dt
        emb = scene.embodiment
        self.joint_names = {side: emb.joint_names(side) for side in HAND_SIDES}
        self.actuator_names = {side: emb.actuator_names(side) for side in HAND_SIDES}
        n_j = len(self.joint_names["left"])
        n_a = len(self.actuator_names["left"])
        self._q_adr = {s: scene.hand_qpos_adr[i * n_j:(i + 1) * n_j] for i, s in enumerate(HAND_SIDES)}
        self._v_adr = {s: scene.hand_dof_adr[i * n_j:(i + 1) * n_j] for i, s in enumerate(HAND_SIDES)}
        self._act = {s: scene.action_actuator_ids[i * n_a:(i + 1) * n_a] for i, s in enumerate(HAND_SIDES)}
        self._key_active_at = scene.key_max_angle_rad - KEY_ACTIVE_TOLERANCE_RAD
        self.steps = 0
        self.reset()

    def reset(self) -> None:
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        d.qpos[:] = self.scene.home_qpos
        d.ctrl[:] = self.scene.home_ctrl
        mujoco.mj_forward(m, d)
        self.steps = 0

    @property
    def time_s(self) -> float:
        """Simulated time at the end of the last control step: ``steps * dt`` (exact multiple)."""
        return self.steps * self.dt

    @property
    def time_ns(self) -> int:
        return self.steps * round(self.dt * 1e9)

    def apply(self, side: str, command: np.ndarray) -> None:
        """Write one hand's command (ctrl units, ``embodiment.actuator_names(side)`` order) into ctrl.
        Raises ValueError on a wrong length or a non-finite value."""
        cmd = np.asarray(command, dtype=np.float64)
        ids = self._act[side]
        if cmd.shape != ids.shape:
            raise ValueError(f"{side} command has {cmd.size} values, expected {ids.size} "
                             f"({', '.join(self.actuator_names[side])})")
        if not np.isfinite(cmd).all():
            raise ValueError(f"{side} command has non-finite values")
        self.data.ctrl[ids] = cmd

    def step(self) -> None:
        mujoco.mj_step(self.model, self.data, nstep=self.scene.n_substeps)
        self.steps += 1

    def hand_q(self, side: str) -> np.ndarray:
        return self.data.qpos[self._q_adr[side]].copy()

    def hand_v(self, side: str) -> np.ndarray:
        return self.data.qvel[self._v_adr[side]].copy()

    def key_state(self) -> np.ndarray:
        """(88,) key depression 0..1 (as the simulator observes it)."""
        return np.clip(self.data.qpos[self.scene.key_qpos_adr] / self.scene.key_max_angle_rad, 0.0, 1.0)

    def active(self) -> np.ndarray:
        return self.data.qpos[self.scene.key_qpos_adr] >= self._key_active_at
