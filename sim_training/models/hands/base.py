"""Shared pieces of the hand models: the spec dataclass, mirroring, collision classes, actuators.

Frames. Every hand is written in the *mount frame*: origin at the wrist, x along the keyboard,
y from the player into the piano, z up (same orientation as the world). In the zero posture the
hand lies flat, palm down (-z), fingers along +y. Geometry is written for the right hand (thumb
on -x); the left hand is the mirror image about the mount's y-z plane, made by `HandBuilder`:

* points: (x, y, z) -> (-x, y, z)
* hinge axes: (ax, ay, az) -> (ax, -ay, -az), so the same joint angle gives the mirrored motion
  (flexion still curls down, abduction goes the mirrored way, as on a real left hand)
* body orientations: quaternion (w, x, y, z) -> (w, x, -y, -z)

Units: metres, radians, kilograms, newton-metres.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

from omnipianist.errors import ModelError
from sim_training.constants import HAND_SIDES

if TYPE_CHECKING:  # the MJCF builders import mujoco when they run: joint facts load without it
    import mujoco

Vec3 = tuple[float, float, float]
Quat = tuple[float, float, float, float]

SIDES: tuple[str, ...] = HAND_SIDES

# Collision classes (contype, conaffinity), fixed by the scene: keys are (1, 2).
HAND_CONTYPE, HAND_CONAFFINITY = 2, 1  # hand touches keys only, never itself or the other hand
FOREARM_CONTYPE, FOREARM_CONAFFINITY = 4, 4  # wrist/forearm bulk: only other bulk geoms
COLLISION_GROUP = 3  # collision geoms: hidden by default in the viewer (enable group 3 to see them)
VISUAL_GROUP = 1  # visual-only geoms (no contact, no mass)
SITE_GROUP = 4  # fingertip sites: hidden by default
FINGERTIP_FRICTION: Vec3 = (1.0, 0.005, 0.0001)  # sliding, torsional, rolling (MuJoCo defaults)
HAND_RGBA: tuple[float, float, float, float] = (0.25, 0.25, 0.27, 1.0)
TIP_RGBA: tuple[float, float, float, float] = (0.85, 0.85, 0.85, 1.0)
VISUAL_RGBA: tuple[float, float, float, float] = (0.55, 0.55, 0.6, 1.0)
SITE_SIZE_M = 0.003


def check_side(side: str) -> None:
    """Raise `ModelError` unless `side` is "right" or "left"."""
    if side not in SIDES:
        raise ModelError(f"hand side must be one of {SIDES}, got {side!r}")


def mirror_point(p: Sequence[float], side: str) -> Vec3:
    """A point of the right hand, mirrored for the left hand (x negated)."""
    x, y, z = (float(v) for v in p)
    return (-x, y, z) if side == "left" else (x, y, z)


def mirror_axis(a: Sequence[float], side: str) -> Vec3:
    """A hinge axis of the right hand, mirrored so equal angles give mirrored motion."""
    x, y, z = (float(v) for v in a)
    return (x, -y, -z) if side == "left" else (x, y, z)


def mirror_quat(q: Sequence[float], side: str) -> Quat:
    """A body orientation (w, x, y, z) of the right hand, mirrored for the left hand."""
    w, x, y, z = (float(v) for v in q)
    return (w, x, -y, -z) if side == "left" else (w, x, y, z)


def quat_about(axis: Sequence[float], angle_rad: float) -> Quat:
    """Unit quaternion (w, x, y, z) of a rotation by `angle_rad` about `axis`."""
    a = np.asarray(axis, dtype=float)
    a = a / np.linalg.norm(a)
    s = math.sin(angle_rad / 2.0)
    return (math.cos(angle_rad / 2.0), float(a[0] * s), float(a[1] * s), float(a[2] * s))


def rod_inertia(mass_kg: float, length_m: float, radius_m: float) -> Vec3:
    """Principal inertia (kg m^2) of a solid cylinder along the local y axis, about its centre."""
    transverse = mass_kg * (3.0 * radius_m**2 + length_m**2) / 12.0
    return (transverse, 0.5 * mass_kg * radius_m**2, transverse)


def box_inertia(mass_kg: float, half_m: Sequence[float]) -> Vec3:
    """Principal inertia (kg m^2) of a solid box with half-sizes `half_m`, about its centre."""
    hx, hy, hz = half_m
    return (
        mass_kg * (hy**2 + hz**2) / 3.0,
        mass_kg * (hx**2 + hz**2) / 3.0,
        mass_kg * (hx**2 + hy**2) / 3.0,
    )


@dataclass(frozen=True)
class JointGains:
    """Actuation and passive dynamics of one joint (or coupled tendon) group.

    kp: N m/rad; kv: N m s/rad (actuator damping, integrated implicitly by implicitfast);
    force_limit: |torque| cap in N m; armature: reflected rotor inertia, kg m^2;
    damping: passive joint damping, N m s/rad.
    """

    kp: float
    kv: float
    force_limit: float
    armature: float
    damping: float


class HandBuilder:
    """Adds one hand's elements to an `MjSpec`, applying the side mirror and the name prefix.

    All positions, axes and orientations passed in are the right hand's, in the parent body's
    frame (which is the mount frame for bodies that are not rotated).
    """

    def __init__(self, spec: mujoco.MjSpec, side: str, prefix: str, *, visual: bool = True) -> None:
        check_side(side)
        self.spec = spec
        self.side = side
        self.prefix = prefix
        self.visual = visual

    def name(self, base: str) -> str:
        """The prefixed element name."""
        return self.prefix + base

    def body(
        self,
        parent: mujoco.MjsBody,
        name: str,
        pos: Sequence[float],
        *,
        mass_kg: float,
        com: Sequence[float],
        inertia: Sequence[float],
        quat: Sequence[float] = (1.0, 0.0, 0.0, 0.0),
    ) -> mujoco.MjsBody:
        """A child body with an explicit inertial (centre of mass `com`, principal `inertia`)."""
        body = parent.add_body()
        body.name = self.name(name)
        body.pos = mirror_point(pos, self.side)
        body.quat = mirror_quat(quat, self.side)
        body.explicitinertial = True
        body.mass = mass_kg
        body.ipos = mirror_point(com, self.side)
        body.inertia = tuple(inertia)
        return body

    def hinge(
        self,
        body: mujoco.MjsBody,
        name: str,
        axis: Sequence[float],
        range_rad: tuple[float, float],
        gains: JointGains,
        pos: Sequence[float] = (0.0, 0.0, 0.0),
    ) -> mujoco.MjsJoint:
        """A limited hinge joint on `body` (axis in the body frame)."""
        import mujoco
        joint = body.add_joint()
        joint.name = self.name(name)
        joint.type = mujoco.mjtJoint.mjJNT_HINGE
        joint.pos = mirror_point(pos, self.side)
        joint.axis = mirror_axis(axis, self.side)
        joint.limited = mujoco.mjtLimited.mjLIMITED_TRUE
        # MjSpec reads joint ranges in degrees unless compiler.degree is False (the default is
        # True, as in MJCF); follow whatever the caller's spec says.
        scale = 180.0 / math.pi if self.spec.compiler.degree else 1.0
        joint.range = (range_rad[0] * scale, range_rad[1] * scale)
        joint.armature = gains.armature
        joint.damping = (gains.damping, 0.0, 0.0)  # 3.17 takes a 3-vector; linear term first
        return joint

    def _collision(self, geom: mujoco.MjsGeom, contype: int, conaffinity: int) -> None:
        geom.contype = contype
        geom.conaffinity = conaffinity
        geom.condim = 3
        geom.group = COLLISION_GROUP
        geom.mass = 0.0  # inertia comes from the explicit body inertial
        geom.density = 0.0

    def capsule(
        self,
        body: mujoco.MjsBody,
        p0: Sequence[float],
        p1: Sequence[float],
        radius_m: float,
        *,
        tip: bool = False,
    ) -> mujoco.MjsGeom:
        """A hand collision capsule from `p0` to `p1` (body frame)."""
        import mujoco
        geom = body.add_geom()
        geom.type = mujoco.mjtGeom.mjGEOM_CAPSULE
        geom.fromto = (*mirror_point(p0, self.side), *mirror_point(p1, self.side))
        geom.size = (radius_m, 0.0, 0.0)
        self._collision(geom, HAND_CONTYPE, HAND_CONAFFINITY)
        geom.friction = FINGERTIP_FRICTION
        geom.rgba = TIP_RGBA if tip else HAND_RGBA
        return geom

    def box(
        self,
        body: mujoco.MjsBody,
        pos: Sequence[float],
        half_m: Sequence[float],
        *,
        bulk: bool = False,
        quat: Sequence[float] = (1.0, 0.0, 0.0, 0.0),
    ) -> mujoco.MjsGeom:
        """A collision box: a hand geom, or (bulk=True) a wrist/forearm bulk geom."""
        import mujoco
        geom = body.add_geom()
        geom.type = mujoco.mjtGeom.mjGEOM_BOX
        geom.pos = mirror_point(pos, self.side)
        geom.quat = mirror_quat(quat, self.side)
        geom.size = tuple(half_m)
        if bulk:
            self._collision(geom, FOREARM_CONTYPE, FOREARM_CONAFFINITY)
        else:
            self._collision(geom, HAND_CONTYPE, HAND_CONAFFINITY)
        geom.rgba = HAND_RGBA
        return geom

    def visual_box(self, body: mujoco.MjsBody, pos: Sequence[float], half_m: Sequence[float]) -> mujoco.MjsGeom | None:
        """A visual-only box (no contact, no mass), skipped when visuals are off."""
        import mujoco
        if not self.visual:
            return None
        geom = body.add_geom()
        geom.type = mujoco.mjtGeom.mjGEOM_BOX
        geom.pos = mirror_point(pos, self.side)
        geom.size = tuple(half_m)
        geom.contype = 0
        geom.conaffinity = 0
        geom.group = VISUAL_GROUP
        geom.mass = 0.0
        geom.density = 0.0
        geom.rgba = VISUAL_RGBA
        return geom

    def visual_capsule(
        self, body: mujoco.MjsBody, p0: Sequence[float], p1: Sequence[float], radius_m: float
    ) -> mujoco.MjsGeom | None:
        """A visual-only capsule (no contact, no mass), skipped when visuals are off."""
        import mujoco
        if not self.visual:
            return None
        geom = body.add_geom()
        geom.type = mujoco.mjtGeom.mjGEOM_CAPSULE
        geom.fromto = (*mirror_point(p0, self.side), *mirror_point(p1, self.side))
        geom.size = (radius_m, 0.0, 0.0)
        geom.contype = 0
        geom.conaffinity = 0
        geom.group = VISUAL_GROUP
        geom.mass = 0.0
        geom.density = 0.0
        geom.rgba = VISUAL_RGBA
        return geom

    def site(self, body: mujoco.MjsBody, name: str, pos: Sequence[float]) -> mujoco.MjsSite:
        """A small site (e.g. a fingertip pad point) on `body`."""
        site = body.add_site()
        site.name = self.name(name)
        site.pos = mirror_point(pos, self.side)
        site.size = (SITE_SIZE_M, 0.0, 0.0)
        site.group = SITE_GROUP
        site.rgba = (0.9, 0.2, 0.2, 1.0)
        return site

    def _actuator(self, name: str, gains: JointGains, ctrl_range: tuple[float, float]) -> mujoco.MjsActuator:
        import mujoco
        act = self.spec.add_actuator()
        act.name = self.name(name)
        act.set_to_position(kp=gains.kp, kv=gains.kv)
        act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.ctrlrange = ctrl_range
        act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.forcerange = (-gains.force_limit, gains.force_limit)
        return act

    def joint_actuator(
        self, name: str, joint: str, gains: JointGains, ctrl_range: tuple[float, float]
    ) -> mujoco.MjsActuator:
        """A position actuator on hinge `joint` (unprefixed name)."""
        import mujoco
        act = self._actuator(name, gains, ctrl_range)
        act.trntype = mujoco.mjtTrn.mjTRN_JOINT
        act.target = self.name(joint)
        return act

    def coupled_tendon_actuator(
        self,
        name: str,
        joints: Sequence[str],
        gains: JointGains,
        ctrl_range: tuple[float, float],
    ) -> mujoco.MjsActuator:
        """A fixed tendon (sum of `joints`' angles) named `name`, and a position actuator on it."""
        import mujoco
        tendon = self.spec.add_tendon()
        tendon.name = self.name(name)
        for joint in joints:
            tendon.wrap_joint(self.name(joint), 1.0)
        act = self._actuator(name, gains, ctrl_range)
        act.trntype = mujoco.mjtTrn.mjTRN_TENDON
        act.target = self.name(name)
        return act

    def equal_joints(self, name: str, joint1: str, joint2: str) -> mujoco.MjsEquality:
        """An equality constraint joint1 = joint2 (both unprefixed)."""
        import mujoco
        eq = self.spec.add_equality()
        eq.name = self.name(name)
        eq.type = mujoco.mjtEq.mjEQ_JOINT
        eq.objtype = mujoco.mjtObj.mjOBJ_JOINT
        eq.name1 = self.name(joint1)
        eq.name2 = self.name(joint2)
        data = np.zeros(len(eq.data))
        data[1] = 1.0  # polycoef: q1 = 0 + 1 * q2
        eq.data = data
        return eq


BuildFn = Callable[[HandBuilder, "mujoco.MjsBody"], None]


@dataclass(frozen=True)
class HandModelSpec:
    """One embodiment's hand: names, default posture, and a builder that adds it to a spec.

    joint_names: every hinge, unprefixed, kinematic order.
    actuator_names: every position actuator, unprefixed.
    reduced_actuator_names: the default action set (subset of actuator_names, same order).
    fingertip_site_names: thumb first, then index/first, middle, ring, little.
    home_joint_angles_rad: the curled hover posture (joints not listed are 0).
    actuator_joints: for each actuator, the joints whose angle sum it commands.
    """

    name: str
    joint_names: tuple[str, ...]
    actuator_names: tuple[str, ...]
    reduced_actuator_names: tuple[str, ...]
    fingertip_site_names: tuple[str, ...]
    home_joint_angles_rad: Mapping[str, float]
    actuator_joints: Mapping[str, tuple[str, ...]] = field(repr=False)
    build: BuildFn = field(repr=False, compare=False)

    def add_to(
        self,
        spec: mujoco.MjSpec,
        mount: mujoco.MjsBody,
        side: str,
        prefix: str,
        *,
        visual: bool = True,
    ) -> None:
        """Add the whole hand under body `mount` (wrist at the mount origin, see module doc).

        Names get `prefix` (joints, actuators, tendons, equalities, sites, bodies). Call once per
        hand; two hands with different prefixes may share one spec. `visual=False` leaves out the
        visual-only geoms (fewer geoms; collision geoms are then the only ones, in group 3).
        """
        check_side(side)
        self.build(HandBuilder(spec, side, prefix, visual=visual), mount)

    @property
    def home_actuator_targets(self) -> dict[str, float]:
        """The actuator commands (rad) that hold `home_joint_angles_rad`, by actuator name."""
        return {
            act: sum(self.home_joint_angles_rad.get(j, 0.0) for j in joints)
            for act, joints in self.actuator_joints.items()
        }

    @property
    def mount_to_home_fingertips_m(self) -> tuple[float, float, float]:
        """Mean fingertip position in the home posture, mount frame, for the RIGHT hand (measured on
        the model at first use and kept: importing the hand's facts needs no MuJoCo)."""
        tips = _HOME_TIPS.get(self.name)
        if tips is None:
            tips = _HOME_TIPS[self.name] = measure_home_fingertips(self)
        return tips

    def home_fingertips_in_mount(self, side: str) -> tuple[float, float, float]:
        """`mount_to_home_fingertips_m` for `side` (x negated for the left hand)."""
        check_side(side)
        return mirror_point(self.mount_to_home_fingertips_m, side)


_HOME_TIPS: dict[str, tuple[float, float, float]] = {}


def measure_home_fingertips(hand: HandModelSpec) -> tuple[float, float, float]:
    """Mean fingertip position (m, mount frame) of the right hand in its home posture."""
    import mujoco
    spec = mujoco.MjSpec()
    mount = spec.worldbody.add_body()
    mount.name = "mount"
    hand.add_to(spec, mount, "right", "", visual=False)
    model = spec.compile()
    data = mujoco.MjData(model)
    for joint, angle in hand.home_joint_angles_rad.items():
        data.joint(joint).qpos[0] = angle
    mujoco.mj_kinematics(model, data)
    tips = np.array([data.site(s).xpos for s in hand.fingertip_site_names])
    mean = tips.mean(axis=0)
    return (float(mean[0]), float(mean[1]), float(mean[2]))


def finalize(hand: HandModelSpec) -> HandModelSpec:
    """Check the names fit together; freeze the mappings."""
    unknown = set(hand.reduced_actuator_names) - set(hand.actuator_names)
    if unknown:
        raise ModelError(f"hand {hand.name!r}: reduced actuators {sorted(unknown)} not actuators")
    if set(hand.actuator_joints) != set(hand.actuator_names):
        raise ModelError(f"hand {hand.name!r}: actuator_joints keys differ from actuator_names")
    bad = set(hand.home_joint_angles_rad) - set(hand.joint_names)
    if bad:
        raise ModelError(f"hand {hand.name!r}: home posture names unknown joints {sorted(bad)}")
    hand = replace(hand, home_joint_angles_rad=MappingProxyType(dict(hand.home_joint_angles_rad)))
    return replace(hand, actuator_joints=MappingProxyType(dict(hand.actuator_joints)))
