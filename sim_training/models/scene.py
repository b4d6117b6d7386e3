"""The scene: the piano plus two hands, each on a forearm carriage that slides on rails.

Built with :class:`mujoco.MjSpec` from the piano builder, the hand builders and the embodiment;
:class:`Scene` holds the compiled model and every index the environment needs (computed once).

Forearm rail (ours to choose; sized like a belt-driven linear axis that carries ~1.7 kg):
a position servo with natural frequency ~34 rad/s, critically damped, force-limited to 60 N
(≈ 35 m/s² peak acceleration), so a 10 cm leap settles in ~0.15 s (3 control steps).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mujoco
import numpy as np

from omnipianist.errors import ModelError
from sim_training.constants import HAND_SIDES, N_SUBSTEPS, NUM_KEYS, PHYSICS_DT_S
from sim_training.models.embodiment import FOREARM_SLIDE_Z, SIDE_PREFIX, ActionSet, Embodiment, get_embodiment
from sim_training.models.piano import KEY_GEOMETRY, add_piano
from sim_training.models.piano import builder as piano_builder
from sim_training.models.piano import geometry as pg

FOREARM_MASS_KG = 1.0
FOREARM_CONTYPE = 4
"""Forearms collide only with each other (the forearm-collision penalty)."""
RAIL_KP_N_PER_M = 2000.0
RAIL_FORCE_LIMIT_N = 60.0
RAIL_DAMPING_RATIO = 1.0
RAIL_Y_RANGE_M = (-0.05, 0.08)
"""Travel of the toward-the-keys slide, relative to the home position."""
RAIL_Z_RANGE_M = (-0.04, 0.06)
HOVER_ABOVE_WHITE_TOP_M = 0.02
"""Home posture: fingertips this far above the white key tops ..."""
HOME_FINGERTIP_Y_M = 0.045
"""... and this far behind the white key front edge."""
HOME_PITCH: dict[str, int] = {"left": 48, "right": 67}
"""MIDI pitch under each hand's fingertip centroid at home (C3 and G4)."""


@dataclass
class Scene:
    """A compiled scene and the indices the environment reads every step."""

    embodiment: Embodiment
    spec: mujoco.MjSpec = field(repr=False)
    model: mujoco.MjModel = field(repr=False)
    key_qpos_adr: np.ndarray = field(repr=False)
    """(88,) qpos address of each key joint."""
    key_max_angle_rad: np.ndarray = field(repr=False)
    key_target_xyz_m: np.ndarray = field(repr=False)
    """(88, 3) fingering targets at rest (world frame)."""
    hand_qpos_adr: np.ndarray = field(repr=False)
    """(n_hand_joints,) qpos addresses in ``embodiment.all_joint_names`` order."""
    hand_dof_adr: np.ndarray = field(repr=False)
    action_actuator_ids: np.ndarray = field(repr=False)
    """(action_dim - 1,) actuator ids in action order (the sustain entry has no actuator)."""
    action_ctrl_low: np.ndarray = field(repr=False)
    action_ctrl_high: np.ndarray = field(repr=False)
    fingertip_site_ids: np.ndarray = field(repr=False)
    fingertip_side: np.ndarray = field(repr=False)
    """(F,) 0 = left hand, 1 = right hand."""
    forearm_geom_ids: tuple[int, int] = (0, 0)
    home_qpos: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    home_ctrl: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    @property
    def n_substeps(self) -> int:
        return N_SUBSTEPS

    def sizes(self) -> dict[str, int]:
        m = self.model
        return {"nq": m.nq, "nv": m.nv, "nu": m.nu, "ngeom": m.ngeom, "nbody": m.nbody,
                "njnt": m.njnt, "action_dim": self.embodiment.action_dim}

    def action_to_ctrl(self, action: np.ndarray, ctrl: np.ndarray) -> None:
        """Write a normalised action ([-1, 1], sustain last) into ``ctrl`` (in place)."""
        a = np.clip(action[:-1], -1.0, 1.0)
        ctrl[self.action_actuator_ids] = self.action_ctrl_low + 0.5 * (a + 1.0) * (
            self.action_ctrl_high - self.action_ctrl_low)

    def ctrl_to_action(self, ctrl: np.ndarray, sustain: float = -1.0) -> np.ndarray:
        """Inverse of :meth:`action_to_ctrl` (the normalised action that commands ``ctrl``)."""
        span = self.action_ctrl_high - self.action_ctrl_low
        a = 2.0 * (ctrl[self.action_actuator_ids] - self.action_ctrl_low) / span - 1.0
        return np.append(a, sustain)


def _home_x(pitch: int, hand_offset_x: float) -> float:
    return KEY_GEOMETRY.key_x_m(pitch - 21) - hand_offset_x


def build_spec(embodiment: Embodiment) -> mujoco.MjSpec:
    """An uncompiled MjSpec of the scene for ``embodiment``."""
    spec = mujoco.MjSpec()
    spec.modelname = f"omnipianist_{embodiment.key}"
    spec.compiler.degree = False
    spec.option.timestep = PHYSICS_DT_S
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.visual.global_.offwidth = 1280
    spec.visual.global_.offheight = 720
    spec.worldbody.add_light(name="top", pos=[0, 0.0, 1.5], dir=[0, 0.2, -1], diffuse=[0.8, 0.8, 0.8])
    spec.visual.headlight.ambient = [0.35, 0.35, 0.35]
    spec.visual.headlight.diffuse = [0.6, 0.6, 0.6]
    spec.worldbody.add_camera(name="front", pos=[0, -0.42, 0.42], xyaxes=[1, 0, 0, 0, 0.72, 0.69], fovy=60)
    spec.worldbody.add_camera(name="top", pos=[0, 0.05, 1.0], xyaxes=[1, 0, 0, 0, 1, 0])
    add_piano(spec)

    hand = embodiment.hand
    half_len = KEY_GEOMETRY.keyboard_length_m / 2
    total_mass = FOREARM_MASS_KG + 0.8
    kv = 2.0 * RAIL_DAMPING_RATIO * np.sqrt(RAIL_KP_N_PER_M * total_mass)
    for side in HAND_SIDES:
        p = SIDE_PREFIX[side]
        off = np.asarray(hand.home_fingertips_in_mount(side), dtype=float)
        home = np.array([_home_x(HOME_PITCH[side], off[0]), HOME_FINGERTIP_Y_M - off[1],
                         pg.WHITE_KEY_HEIGHT_M + HOVER_ABOVE_WHITE_TOP_M - off[2]])
        carriage = spec.worldbody.add_body(name=p + "forearm", pos=home.tolist())
        carriage.add_geom(name=p + "forearm_geom", type=mujoco.mjtGeom.mjGEOM_CAPSULE,
                          fromto=[0, -0.30, 0.0, 0, -0.03, 0.0], size=[0.035, 0, 0], mass=FOREARM_MASS_KG,
                          rgba=[0.3, 0.3, 0.35, 1], contype=FOREARM_CONTYPE, conaffinity=FOREARM_CONTYPE)
        slides = {
            "forearm_tx": ([1, 0, 0], (-half_len - home[0], half_len - home[0])),
            "forearm_ty": ([0, 1, 0], RAIL_Y_RANGE_M),
            FOREARM_SLIDE_Z: ([0, 0, 1], RAIL_Z_RANGE_M),
        }
        for name in embodiment.slide_names:
            axis, rng = slides[name]
            carriage.add_joint(name=p + name, type=mujoco.mjtJoint.mjJNT_SLIDE, axis=axis,
                               range=list(rng), limited=mujoco.mjtLimited.mjLIMITED_TRUE, armature=0.01)
            act = spec.add_actuator(name=p + name, target=p + name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
            act.set_to_position(kp=RAIL_KP_N_PER_M, kv=float(kv))
            act.ctrlrange = list(rng)
            act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
            act.forcerange = [-RAIL_FORCE_LIMIT_N, RAIL_FORCE_LIMIT_N]
            act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        if not embodiment.forearm_z:
            pass  # the carriage height is fixed: gravity is taken by the rail (no z joint)
        hand.add_to(spec, carriage, side, p)
    return spec


def _ids(model: mujoco.MjModel, kind: mujoco.mjtObj, names: tuple[str, ...] | list[str]) -> np.ndarray:
    out = np.empty(len(names), dtype=np.int64)
    for i, n in enumerate(names):
        idx = mujoco.mj_name2id(model, kind, n)
        if idx < 0:
            raise ModelError(f"scene has no {kind.name.removeprefix('mjOBJ_').lower()} named {n!r}")
        out[i] = idx
    return out


def build_scene(embodiment: Embodiment | str = "shadow", action_set: ActionSet = "reduced",
                forearm_z: bool = False) -> Scene:
    """Build and compile the scene; ``embodiment`` is an Embodiment or a name (with ``action_set`` and
    ``forearm_z``: :func:`get_embodiment`'s; ignored for an Embodiment)."""
    emb = get_embodiment(embodiment, action_set, forearm_z) if isinstance(embodiment, str) else embodiment
    spec = build_spec(emb)
    try:
        model = spec.compile()
    except ValueError as exc:
        raise ModelError(f"scene for embodiment {emb.key!r} does not compile: {exc}") from exc

    key_jnt = _ids(model, mujoco.mjtObj.mjOBJ_JOINT, [piano_builder.key_joint_name(k) for k in range(NUM_KEYS)])
    hand_jnt = _ids(model, mujoco.mjtObj.mjOBJ_JOINT, emb.all_joint_names)
    act_names = emb.action_names[:-1]
    act_ids = _ids(model, mujoco.mjtObj.mjOBJ_ACTUATOR, act_names)
    tips = _ids(model, mujoco.mjtObj.mjOBJ_SITE, emb.fingertip_names)
    forearms = _ids(model, mujoco.mjtObj.mjOBJ_GEOM, [SIDE_PREFIX[s] + "forearm_geom" for s in HAND_SIDES])
    n_per_side = len(emb.hand.fingertip_site_names)

    # Home posture: hand joints at the hand's hover angles, slides at 0; ctrl = transmission length
    # there, so position actuators (joint or tendon driven) hold exactly that posture.
    data = mujoco.MjData(model)
    for side in HAND_SIDES:
        for jname, angle in emb.hand.home_joint_angles_rad.items():
            data.joint(SIDE_PREFIX[side] + jname).qpos[0] = angle
    mujoco.mj_forward(model, data)
    gear = model.actuator_gear[:, 0]
    home_ctrl = np.clip(data.actuator_length / gear, model.actuator_ctrlrange[:, 0], model.actuator_ctrlrange[:, 1])

    return Scene(
        embodiment=emb, spec=spec, model=model,
        key_qpos_adr=model.jnt_qposadr[key_jnt].copy(),
        key_max_angle_rad=np.asarray(KEY_GEOMETRY.max_angle_rad).copy(),
        key_target_xyz_m=np.asarray(KEY_GEOMETRY.target_xyz_m).copy(),
        hand_qpos_adr=model.jnt_qposadr[hand_jnt].copy(),
        hand_dof_adr=model.jnt_dofadr[hand_jnt].copy(),
        action_actuator_ids=act_ids,
        action_ctrl_low=model.actuator_ctrlrange[act_ids, 0].copy(),
        action_ctrl_high=model.actuator_ctrlrange[act_ids, 1].copy(),
        fingertip_site_ids=tips,
        fingertip_side=np.repeat(np.arange(2), n_per_side),
        forearm_geom_ids=(int(forearms[0]), int(forearms[1])),
        home_qpos=data.qpos.copy(),
        home_ctrl=home_ctrl,
    )
