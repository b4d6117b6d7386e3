"""MuJoCo-backed servo physics for the bus emulator: the emulated servos *are* the simulated actuators.

``SimServoBackend`` plugs into :class:`~omnipianist.hardware.emulator.ServoBusEmulator` (``on_goal``,
``on_torque``, ``present``): a Goal Position write sets the actuator's target (ctrl units, through the
channel's tick mapping); Present Position / Velocity / Current are the actuator's length, velocity and
force (so a coupled tendon actuator such as Shadow ``FFJ0`` reports J1 + J2, exactly what it commands).
Torque off makes the actuator limp: its gain and bias are zeroed in the model (restored at torque on),
so a model must not be shared with anything that expects the original gains (the HIL rig builds its own).

Threading: the emulator calls the hooks from its thread while the rig steps the physics from another;
every access to ``MjData`` / ``MjModel`` goes through ``lock`` (the rig holds it while stepping).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import mujoco
import numpy as np

from omnipianist.errors import ConfigError
from omnipianist.hardware.channels import ServoChannel

CURRENT_MA_PER_NM = 1000.0
"""Sim-only scale from actuator torque [N m] to Present Current [mA]."""
CURRENT_MA_PER_N = 25.0
"""Sim-only scale from slide force [N] to Present Current [mA] (60 N -> 1500 mA)."""
INT16_MAX = 32767


class SimServoBackend:
    """The servos of one bus, backed by actuators of one MuJoCo model (see module docstring).

    Args:
        model, data: the simulation.
        channels: one per servo; ``channel.name`` must be an actuator of ``model``.
        lock: shared with whoever steps ``data`` (a new RLock if omitted).

    Raises:
        ConfigError: a channel names an actuator the model does not have.
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        data: mujoco.MjData,
        channels: Sequence[ServoChannel],
        lock: threading.RLock | None = None,
    ) -> None:
        self.model = model
        self.data = data
        self.lock = lock or threading.RLock()
        self.channels = {c.servo_id: c for c in channels}
        self.actuator: dict[int, int] = {}
        for c in channels:
            idx = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, c.name)
            if idx < 0:
                raise ConfigError(f"sim servo {c.servo_id} ({c.name}): the model has no actuator named {c.name!r}")
            self.actuator[c.servo_id] = idx
        self._gain = {i: model.actuator_gainprm[a].copy() for i, a in self.actuator.items()}
        self._bias = {i: model.actuator_biasprm[a].copy() for i, a in self.actuator.items()}
        self.torque: dict[int, bool] = {i: True for i in self.actuator}
        """Torque state per servo as the physics sees it (True = the actuator's own gains)."""
        self.goal: dict[int, float] = {}
        """Latest goal per servo [ctrl units]; servos never commanded keep the model's ctrl."""
        self._last_present: dict[int, tuple[int, int, int]] = {}

    # --- emulator hooks ----------------------------------------------------------------------------

    def on_goal(self, servo_id: int, goal_ticks: int) -> None:
        with self.lock:
            self.goal[servo_id] = self.channels[servo_id].from_ticks(goal_ticks)

    def on_torque(self, servo_id: int, enabled: bool) -> None:
        with self.lock:
            a = self.actuator[servo_id]
            self.torque[servo_id] = enabled
            if enabled:
                self.model.actuator_gainprm[a] = self._gain[servo_id]
                self.model.actuator_biasprm[a] = self._bias[servo_id]
            else:
                self.model.actuator_gainprm[a] = 0.0
                self.model.actuator_biasprm[a] = 0.0

    def present(self, servo_id: int) -> tuple[int, int, int]:
        ch = self.channels[servo_id]
        a = self.actuator[servo_id]
        with self.lock:
            gear = self.model.actuator_gear[a, 0]
            value = float(self.data.actuator_length[a] / gear)
            speed = float(self.data.actuator_velocity[a] / gear)
            force = float(self.data.actuator_force[a])
        if not (math.isfinite(value) and math.isfinite(speed) and math.isfinite(force)):
            return self._last_present.get(servo_id, (ch.to_ticks(0.0), 0, 0))  # a blown-up sim reads as frozen
        scale = CURRENT_MA_PER_N if ch.unit == "m" else CURRENT_MA_PER_NM
        current = int(np.clip(round(force * scale * ch.direction), -INT16_MAX, INT16_MAX))
        out = (ch.to_ticks(value), ch.velocity_to_units(speed), current)
        self._last_present[servo_id] = out
        return out

    # --- rig side ----------------------------------------------------------------------------------

    def apply(self, ctrl: np.ndarray) -> None:
        """Write every commanded goal into ``ctrl`` (the caller holds ``lock`` while stepping)."""
        with self.lock:
            for servo_id, value in self.goal.items():
                ctrl[self.actuator[servo_id]] = value

    def seed_goals_from_ctrl(self, ctrl: np.ndarray) -> None:
        """Start every goal at the model's current ctrl (e.g. the home posture)."""
        with self.lock:
            for servo_id, a in self.actuator.items():
                self.goal[servo_id] = float(ctrl[a])
