"""Differential inverse kinematics of the fingertips, in actuator space (damped least squares).

Each hand is solved on its own: unknowns are the hand's commanded actuators (the action set; for
Shadow's coupled J0 actuators the two joints J1 = J2 each take half the command), the forearm slides
are given. Per iteration: forward kinematics on a private MjData, fingertip site Jacobians from
MuJoCo (``mj_jacSite``), and one weighted, damped, posture-regularised least-squares step

    minimise  sum_f w_f |p_f + J_f du - t_f|^2 + damping |du|^2 + posture_weight |u + du - u_home|^2

clipped to the actuator ranges (the joint limits). Frames: world; units: metres, radians.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from sim_training.constants import HAND_SIDES
from sim_training.models.embodiment import SIDE_PREFIX
from sim_training.models.scene import Scene


@dataclass(frozen=True)
class IKConfig:
    iterations: int = 3
    damping: float = 1e-5
    """Levenberg-Marquardt damping on du (m^2 per rad^2)."""
    posture_weight: float = 1e-6
    """Pull toward the home posture, keeps the null space (wrist, spread) natural."""
    wrist_weight: float = 1e-3
    """Extra pull of the wrist joints toward home (they move every finger at once)."""
    max_step_rad: float = 0.35
    """Cap on one iteration's change of any actuator (keeps the linearisation honest)."""


class _HandIK:
    def __init__(self, scene: Scene, side: str, cfg: IKConfig) -> None:
        m = scene.model
        emb = scene.embodiment
        p = SIDE_PREFIX[side]
        self.cfg = cfg
        hand_acts = emb.hand_actuators
        self.act_ids = np.array([m.actuator(p + a).id for a in hand_acts])
        self.lo = m.actuator_ctrlrange[self.act_ids, 0].copy()
        self.hi = m.actuator_ctrlrange[self.act_ids, 1].copy()
        self.home_u = scene.home_ctrl[self.act_ids].copy()
        # u -> q coupling: an actuator commanding n joints sets each to u / n (Shadow J1 = J2).
        qadr, dofs, cols, share = [], [], [], []
        for col, a in enumerate(hand_acts):
            joints = emb.hand.actuator_joints[a]
            for j in joints:
                jid = m.joint(p + j).id
                qadr.append(m.jnt_qposadr[jid])
                dofs.append(m.jnt_dofadr[jid])
                cols.append(col)
                share.append(1.0 / len(joints))
        self.qadr = np.array(qadr)
        self.dofs = np.array(dofs)
        self.cols = np.array(cols)
        self.share = np.array(share)
        self.n_u = len(hand_acts)
        self.coupling = np.zeros((len(dofs), self.n_u))  # dq/du over the selected dofs
        self.coupling[np.arange(len(dofs)), self.cols] = self.share
        self.sites = np.array([m.site(p + s).id for s in emb.hand.fingertip_site_names])
        wrist = np.array([a.startswith("WR") for a in hand_acts], dtype=float)
        self.reg = cfg.posture_weight + cfg.wrist_weight * wrist
        self._jac = np.zeros((3, m.nv))

    def set_q(self, qpos: np.ndarray, u: np.ndarray) -> None:
        qpos[self.qadr] = u[self.cols] * self.share

    def step(self, model: mujoco.MjModel, data: mujoco.MjData, u: np.ndarray, targets: np.ndarray,
             weights: np.ndarray) -> np.ndarray:
        """One DLS step from ``u`` (data must hold the kinematics of ``u``)."""
        n = self.n_u
        jtj = np.zeros((n, n))
        jte = np.zeros(n)
        for i, sid in enumerate(self.sites):
            w = weights[i]
            if w <= 0.0:
                continue
            mujoco.mj_jacSite(model, data, self._jac, None, int(sid))
            ju = self._jac[:, self.dofs] @ self.coupling
            err = targets[i] - data.site_xpos[sid]
            jtj += w * ju.T @ ju
            jte += w * ju.T @ err
        jtj[np.diag_indices(n)] += self.cfg.damping + self.reg
        jte += self.reg * (self.home_u - u)
        du = np.linalg.solve(jtj, jte)
        du = np.clip(du, -self.cfg.max_step_rad, self.cfg.max_step_rad)
        return np.clip(u + du, self.lo, self.hi)


class FingertipIK:
    """Both hands' fingertip IK on a private copy of the scene's kinematics."""

    def __init__(self, scene: Scene, cfg: IKConfig | None = None) -> None:
        self.cfg = cfg or IKConfig()
        self.model = scene.model
        self.data = mujoco.MjData(scene.model)
        self.data.qpos[:] = scene.home_qpos
        self.hands = [_HandIK(scene, side, self.cfg) for side in HAND_SIDES]
        self.hand_qpos_adr = scene.hand_qpos_adr

    def solve(self, hand_qpos: np.ndarray, u_init: list[np.ndarray], targets: list[np.ndarray],
              weights: list[np.ndarray]) -> list[np.ndarray]:
        """Actuator commands per hand that bring the fingertips to ``targets``.

        Args:
            hand_qpos: measured hand-side joints (slides + hand joints, embodiment order); the
                slides and the joints outside the action set are taken from it.
            u_init: per hand, the starting actuator commands (e.g. the previous solution).
            targets: per hand, (n_fingertips, 3) world-frame fingertip targets.
            weights: per hand, (n_fingertips,) task weights (0 ignores a fingertip).
        """
        d = self.data
        d.qpos[self.hand_qpos_adr] = hand_qpos
        u = [np.clip(np.asarray(u0, dtype=float).copy(), h.lo, h.hi) for u0, h in zip(u_init, self.hands, strict=True)]
        for _ in range(self.cfg.iterations):
            for h, uh in zip(self.hands, u, strict=True):
                h.set_q(d.qpos, uh)
            mujoco.mj_kinematics(self.model, d)
            mujoco.mj_comPos(self.model, d)
            u = [h.step(self.model, d, uh, t, w) for h, uh, t, w in zip(self.hands, u, targets, weights, strict=True)]
        return u

    def fingertips(self, hand_qpos: np.ndarray, u: list[np.ndarray]) -> np.ndarray:
        """(F, 3) fingertip positions of posture ``u`` with the given slides (for tests and plots)."""
        d = self.data
        d.qpos[self.hand_qpos_adr] = hand_qpos
        for h, uh in zip(self.hands, u, strict=True):
            h.set_q(d.qpos, uh)
        mujoco.mj_kinematics(self.model, d)
        return np.concatenate([d.site_xpos[h.sites] for h in self.hands])
