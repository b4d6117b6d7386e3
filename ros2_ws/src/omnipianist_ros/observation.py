"""The policy node's observation, built by THE builder (:func:`sim_training.env.observation.build_observation`).

Inputs are what a real robot has: joint positions (JointState), key depressions (Joy), the goal
window (/piano/goal) and the sustain pedal the policy itself commanded (the simulator's sustain
observation is the policy's own last pedal command too). Fingertip positions are not measured:

Fingertips by forward kinematics. The simulator observes fingertip *site* positions
(``data.site_xpos``); here :class:`HandKinematics` computes the same sites with ``mj_kinematics``
on the embodiment's own scene model from the measured joint positions, which is the very code
``mj_forward`` runs, so for the same joint positions the result is bit-identical (tested).
One caveat, measured and tested: after ``mj_step`` the simulator's ``site_xpos`` still belongs to the
positions at the start of the last physics substep (``mj_step`` runs kinematics *before*
integrating), so the simulator's fingertips lag its joint positions by one 5 ms substep (up to ~4 mm
while a finger moves). The node observes fingertips consistent with the joint positions it was
given; the two agree exactly whenever the simulator's kinematics are current (after reset).
"""

from __future__ import annotations

import mujoco
import numpy as np

from sim_training.constants import HAND_SIDES
from sim_training.env.observation import ObservationLayout, build_observation
from sim_training.models.scene import Scene


class HandKinematics:
    """Forward kinematics of the hands (fingertip sites, actuator positions) from joint positions.

    ``hand_q``: (n_hand_joints,) in ``embodiment.all_joint_names`` order [m | rad].
    """

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        self.model = scene.model
        self.data = mujoco.MjData(scene.model)
        self.data.qpos[:] = scene.home_qpos
        self._gear = self.model.actuator_gear[:, 0]

    def _update(self, hand_q: np.ndarray, transmission: bool) -> None:
        m, d = self.model, self.data
        d.qpos[self.scene.hand_qpos_adr] = hand_q
        mujoco.mj_kinematics(m, d)
        if transmission:
            mujoco.mj_comPos(m, d)
            mujoco.mj_tendon(m, d)
            mujoco.mj_transmission(m, d)

    def fingertip_xyz(self, hand_q: np.ndarray) -> np.ndarray:
        """(n_fingertips, 3) fingertip sites, world frame [m] (a copy)."""
        self._update(hand_q, transmission=False)
        return self.data.site_xpos[self.scene.fingertip_site_ids].copy()

    def actuator_positions(self, hand_q: np.ndarray) -> np.ndarray:
        """(action_dim - 1,) position of each commanded actuator in ctrl units, action order
        (joint angle, slide position, or coupled-tendon length / gear)."""
        self._update(hand_q, transmission=True)
        ids = self.scene.action_actuator_ids
        return self.data.actuator_length[ids] / self._gear[ids]


class ObservationAssembler:
    """Measured state -> the flat float32 observation of the embodiment's layout."""

    def __init__(self, scene: Scene, lookahead: int) -> None:
        self.scene = scene
        self.layout = ObservationLayout.for_embodiment(scene.embodiment, lookahead)
        self.kinematics = HandKinematics(scene)
        emb = scene.embodiment
        self.joint_names = {side: emb.joint_names(side) for side in HAND_SIDES}
        self._out = np.zeros(self.layout.size, dtype=np.float32)

    def hand_q(self, per_side: dict[str, np.ndarray]) -> np.ndarray:
        """Concatenate per-side joint positions (each in ``embodiment.joint_names(side)`` order)."""
        return np.concatenate([np.asarray(per_side[s], dtype=np.float64) for s in HAND_SIDES])

    def build(self, goal: np.ndarray, key_state: np.ndarray, sustain_state: float, hand_q: np.ndarray) -> np.ndarray:
        """The observation (a new array). Raises ValueError naming a field of the wrong size."""
        tips = self.kinematics.fingertip_xyz(hand_q)
        return build_observation(self.layout, goal, key_state, sustain_state, tips, hand_q, out=self._out).copy()
