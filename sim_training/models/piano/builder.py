"""Adds the 88-key piano to an MjSpec: 88 hinged keys with return springs, a key bed and a case.

Names (used by the scene to find ids after compiling): body ``piano/key_NN``, joint
``piano/key_joint_NN``, geom ``piano/key_geom_NN``, site ``piano/key_target_NN`` (NN = key 00..87).
"""

from __future__ import annotations

import mujoco
import numpy as np

from sim_training.constants import NUM_KEYS
from sim_training.models.piano import geometry as g

PREFIX = "piano/"
KEY_CONTYPE = 1
"""Keys touch only the hands' collision geoms (contype 2); never each other."""
KEY_CONAFFINITY = 2
_WHITE_RGBA = (0.92, 0.92, 0.9, 1.0)
_BLACK_RGBA = (0.08, 0.08, 0.08, 1.0)
_ACTIVE_KEY_RGBA = (0.2, 0.8, 0.2, 1.0)


def key_body_name(key: int) -> str:
    return f"{PREFIX}key_{key:02d}"


def key_joint_name(key: int) -> str:
    return f"{PREFIX}key_joint_{key:02d}"


def key_geom_name(key: int) -> str:
    return f"{PREFIX}key_geom_{key:02d}"


def key_target_site_name(key: int) -> str:
    return f"{PREFIX}key_target_{key:02d}"


def add_piano(spec: mujoco.MjSpec, origin_xyz_m: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> None:
    """Add the piano to ``spec.worldbody`` with its keyboard frame at ``origin_xyz_m`` (see geometry)."""
    if spec.compiler.degree:
        raise ValueError("add_piano needs spec.compiler.degree = False (all angles here are radians)")
    geo = g.KEY_GEOMETRY
    piano = spec.worldbody.add_body(name=PREFIX + "base", pos=list(origin_xyz_m))
    # Case behind the keys and the key bed under them: visual only (nothing should touch them).
    length = geo.keyboard_length_m
    piano.add_geom(name=PREFIX + "case", type=mujoco.mjtGeom.mjGEOM_BOX,
                   size=[length / 2 + 0.02, 0.05, 0.04], pos=[0, g.WHITE_KEY_LENGTH_M + 0.052, 0.04],
                   rgba=[0.12, 0.1, 0.1, 1], contype=0, conaffinity=0, group=1)
    piano.add_geom(name=PREFIX + "keybed", type=mujoco.mjtGeom.mjGEOM_BOX,
                   size=[length / 2 + 0.02, g.WHITE_KEY_LENGTH_M / 2, 0.005],
                   pos=[0, g.WHITE_KEY_LENGTH_M / 2, -0.006], rgba=[0.12, 0.1, 0.1, 1],
                   contype=0, conaffinity=0, group=1)
    for k in range(NUM_KEYS):
        black = bool(geo.is_black[k])
        center = geo.center_xyz_m[k]
        half = geo.half_size_m[k]
        body = piano.add_body(name=key_body_name(k), pos=center.tolist())
        body.add_joint(
            name=key_joint_name(k), type=mujoco.mjtJoint.mjJNT_HINGE, axis=[1, 0, 0],
            pos=[0, g.WHITE_KEY_LENGTH_M - center[1], 0.0],  # hinge at the key's back end
            range=[0.0, float(geo.max_angle_rad[k])], limited=mujoco.mjtLimited.mjLIMITED_TRUE,
            stiffness=g.KEY_STIFFNESS_NM_PER_RAD, springref=g.KEY_SPRINGREF_RAD,
            damping=g.KEY_DAMPING_NMS_PER_RAD, armature=g.KEY_ARMATURE_KGM2,
        )
        body.add_geom(
            name=key_geom_name(k), type=mujoco.mjtGeom.mjGEOM_BOX, size=half.tolist(),
            mass=g.BLACK_KEY_MASS_KG if black else g.WHITE_KEY_MASS_KG,
            rgba=list(_BLACK_RGBA if black else _WHITE_RGBA),
            contype=KEY_CONTYPE, conaffinity=KEY_CONAFFINITY, condim=3, friction=[1.0, 0.005, 0.0001],
        )
        target_local = (np.asarray(geo.target_xyz_m[k]) - center).tolist()
        body.add_site(name=key_target_site_name(k), pos=target_local, size=[0.002, 0.002, 0.002],
                      rgba=[1, 0, 0, 0.4], group=4)


def active_key_rgba() -> tuple[float, float, float, float]:
    """Colour used by renderers to show a pressed (active) key."""
    return _ACTIVE_KEY_RGBA
