"""Shadow Dexterous Hand E3M5 (24 hinges: 2 wrist, 4 x 4 fingers + little-finger metacarpal, 5 thumb).

Kinematic facts (knuckle offsets, phalanx lengths, joint axes and ranges, link masses) are those
published for the E-series hand (MuJoCo Menagerie `shadow_hand`, Shadow's E3M5 data sheet),
re-expressed in the mount frame of `base` (wrist at the origin, palm down, fingers along +y,
right hand's thumb on -x). Geometry is primitive: one capsule per phalanx, boxes for the palm.

Joint angles follow Shadow's convention: J3/J2/J1 positive = flexion (curls the finger down),
J4 = abduction, LFJ5 = little-finger metacarpal cupping, WRJ1 positive = wrist flexion (hand
tip down), WRJ2 positive = radial deviation (toward the thumb). As on the real hand, J1 and J2 of
the four fingers are driven together by one tendon actuator (FFJ0 ... LFJ0, command = J1 + J2);
an equality constraint J1 = J2 stands in for the real coupling spring so the split is defined.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from sim_training.models.hands.base import (
    HandBuilder,
    HandModelSpec,
    JointGains,
    box_inertia,
    finalize,
    quat_about,
    rod_inertia,
)

if TYPE_CHECKING:
    import mujoco

# --- Geometry (m), right hand, mount frame --------------------------------------------------
WRIST_TO_PALM_M = 0.034  # WRJ2 axis to WRJ1 axis, along the hand
KNUCKLES_M: dict[str, tuple[float, float, float]] = {  # J4/J3 centre, palm (WRJ1) frame
    "FF": (-0.033, 0.095, 0.0),
    "MF": (-0.011, 0.099, 0.0),
    "RF": (0.011, 0.095, 0.0),
}
LF_METACARPAL_M = (0.033, 0.02071, 0.0)  # LFJ5 centre, palm frame
LF_METACARPAL_LENGTH_M = 0.06579  # LFJ5 to the little-finger knuckle
LFJ5_AXIS = (-0.573576, 0.819152, 0.0)  # oblique metacarpal axis (35 deg off the hand's length)
PROXIMAL_M, MIDDLE_M, DISTAL_M = 0.045, 0.025, 0.026  # phalanx lengths (knuckle to tip)
PROXIMAL_R_M, MIDDLE_R_M, DISTAL_R_M = 0.009, 0.0085, 0.008  # capsule radii
THUMB_BASE_M = (-0.034, 0.029, -0.00858)  # THJ5/THJ4 centre, palm frame
THUMB_BASE_YAW_RAD = math.pi / 4  # thumb base turned 45 deg toward the thumb side
TH_PROXIMAL_M, TH_MIDDLE_M, TH_DISTAL_M = 0.038, 0.032, 0.030
TH_PROXIMAL_R_M, TH_MIDDLE_R_M, TH_DISTAL_R_M = 0.0105, 0.0095, 0.0085

# --- Masses (kg); the hand without forearm is ~0.79 kg ---------------------------------------
WRIST_KG, PALM_KG = 0.1, 0.3
PROXIMAL_KG, MIDDLE_KG, DISTAL_KG = 0.038, 0.017, 0.013  # proximal includes the knuckle (8 g)
LF_METACARPAL_KG = 0.03
TH_PROXIMAL_KG, TH_MIDDLE_KG, TH_DISTAL_KG = 0.05, 0.025, 0.017  # base/hub folded into neighbours

# --- Ranges (rad) ----------------------------------------------------------------------------
WRJ2_RANGE = (-0.523599, 0.174533)
WRJ1_RANGE = (-0.698132, 0.488692)
J4_RANGE = (-0.349066, 0.349066)
J3_RANGE = (-0.261799, 1.5708)
J2_RANGE = J1_RANGE = (0.0, 1.5708)
J0_RANGE = (0.0, math.pi)  # J1 + J2 tendon command
LFJ5_RANGE = (0.0, 0.785398)
THJ5_RANGE = (-1.0472, 1.0472)
THJ4_RANGE = (0.0, 1.22173)
THJ3_RANGE = (-0.20944, 0.20944)
THJ2_RANGE = (-0.698132, 0.698132)
THJ1_RANGE = (-0.261799, 1.5708)

# --- Actuation (gains hold the hand against gravity within ~1 deg and reach >=70 % of a
# step in one 50 ms control period; force caps are those of the tendon-driven real hand) ----
FINGER_GAINS = JointGains(kp=2.0, kv=0.05, force_limit=1.0, armature=2e-4, damping=0.01)
"""J3/J4/LFJ5: omega ~ 70 rad/s on ~4e-4 kg m^2, gravity sag < 1 deg; Shadow knuckles ~1 N m."""
COUPLED_GAINS = JointGains(kp=1.0, kv=0.025, force_limit=1.0, armature=2e-4, damping=0.01)
"""J0 tendon (J1 + J2): the tendon torque acts on both joints, so half the J3 stiffness."""
THUMB_BASE_GAINS = JointGains(kp=3.0, kv=0.08, force_limit=3.0, armature=2e-4, damping=0.01)
"""THJ5/THJ4 carry the whole thumb: stiffer, 3 N m cap like the real thumb base."""
THUMB_GAINS = JointGains(kp=1.5, kv=0.03, force_limit=1.0, armature=2e-4, damping=0.01)
"""THJ3/THJ2/THJ1: light distal thumb links."""
WRJ2_GAINS = JointGains(kp=20.0, kv=0.6, force_limit=10.0, armature=2e-3, damping=0.1)
"""Radial/ulnar: vertical axis, no gravity load; ~60 rad/s on ~5e-3 kg m^2; 10 N m real cap."""
WRJ1_GAINS = JointGains(kp=40.0, kv=0.9, force_limit=5.0, armature=2e-3, damping=0.1)
"""Flexion: holds ~0.5 N m of hand weight with < 1 deg sag; 5 N m cap as on the real wrist."""

FINGERS = ("FF", "MF", "RF", "LF")

JOINT_NAMES: tuple[str, ...] = (
    "WRJ2", "WRJ1",
    "FFJ4", "FFJ3", "FFJ2", "FFJ1",
    "MFJ4", "MFJ3", "MFJ2", "MFJ1",
    "RFJ4", "RFJ3", "RFJ2", "RFJ1",
    "LFJ5", "LFJ4", "LFJ3", "LFJ2", "LFJ1",
    "THJ5", "THJ4", "THJ3", "THJ2", "THJ1",
)  # fmt: skip

ACTUATOR_JOINTS: dict[str, tuple[str, ...]] = {
    "WRJ2": ("WRJ2",),
    "WRJ1": ("WRJ1",),
    "THJ5": ("THJ5",),
    "THJ4": ("THJ4",),
    "THJ3": ("THJ3",),
    "THJ2": ("THJ2",),
    "THJ1": ("THJ1",),
    "FFJ4": ("FFJ4",),
    "FFJ3": ("FFJ3",),
    "FFJ0": ("FFJ2", "FFJ1"),
    "MFJ4": ("MFJ4",),
    "MFJ3": ("MFJ3",),
    "MFJ0": ("MFJ2", "MFJ1"),
    "RFJ4": ("RFJ4",),
    "RFJ3": ("RFJ3",),
    "RFJ0": ("RFJ2", "RFJ1"),
    "LFJ5": ("LFJ5",),
    "LFJ4": ("LFJ4",),
    "LFJ3": ("LFJ3",),
    "LFJ0": ("LFJ2", "LFJ1"),
}
"""Actuators in the Menagerie / RoboPianist order, with the joints each one commands (sum)."""

ACTUATOR_NAMES: tuple[str, ...] = tuple(ACTUATOR_JOINTS)
REDUCED_ACTUATOR_NAMES: tuple[str, ...] = tuple(a for a in ACTUATOR_NAMES if a not in ("THJ5", "THJ1", "LFJ5"))
"""RP1M's reduced action set (17): THJ5, THJ1 and LFJ5 held at home."""

FINGERTIP_SITES: tuple[str, ...] = ("th_tip", "ff_tip", "mf_tip", "rf_tip", "lf_tip")

HOME_FINGER_RAD = {"J3": 0.3, "J2": 0.8, "J1": 0.8}
"""Pianist's curl on the raised wrist: with WRJ1 = -0.4 the proximal phalanx is about level
(0.3 - 0.4 rad), the middle slopes down 0.7 rad and the distal hangs ~vertical (1.5 rad)."""
HOME_WRIST_RAD = {"WRJ2": 0.0, "WRJ1": -0.4}
"""Wrist extended 23 deg (hand tip up), knuckles arched above the fingertips: the fingertips then
hang level with the wrist (forearm at fingertip height, as a pianist's), which is what lets the
short, far-back thumb reach a key. With the wrist level and the old curl (J3 0.5, J1 = J2 0.55)
the thumb tip could not get more than ~1 cm below the fingertip row anywhere within 5 cm behind
it, whatever THJ1..THJ5; flatter fingers on a level wrist need it 6-7 cm behind."""
HOME_JOINT_ANGLES_RAD: dict[str, float] = {
    **HOME_WRIST_RAD,
    **{f"{f}{j}": v for f in FINGERS for j, v in HOME_FINGER_RAD.items()},
    "THJ5": 0.35,
    "THJ4": 0.55,
    "THJ3": 0.15,
    "THJ2": 0.55,
    "THJ1": 0.0,
}
"""Hover posture: wrist raised, fingers curled down; the thumb tip ~1.8 cm to the thumb side of
the index tip, 2.9 cm nearer the player, at the fingertips' height. THJ5 and THJ1 (held at these
values in the reduced action set) are chosen so THJ4/THJ3/THJ2 alone move the tip ~3.4 cm
straight down (to 1.2 cm below a white key top) and 2.5 cm up, within 3 mm of its home x/y
(fitted with the scene's fingertip IK; see tests/unit/test_reach.py)."""


def _finger(b: HandBuilder, parent: mujoco.MjsBody, f: str, pos: tuple[float, ...]) -> None:
    """Proximal (J4 + J3), middle (J2) and distal (J1) phalanges of finger `f` at `pos`."""
    j4_axis = (0.0, 0.0, -1.0) if f in ("FF", "MF") else (0.0, 0.0, 1.0)
    prox = b.body(
        parent,
        f"{f.lower()}proximal",
        pos,
        mass_kg=PROXIMAL_KG,
        com=(0.0, 0.018, 0.0),
        inertia=rod_inertia(PROXIMAL_KG, PROXIMAL_M, PROXIMAL_R_M),
    )
    b.hinge(prox, f"{f}J4", j4_axis, J4_RANGE, FINGER_GAINS)
    b.hinge(prox, f"{f}J3", (-1.0, 0.0, 0.0), J3_RANGE, FINGER_GAINS)
    b.capsule(prox, (0.0, 0.0, 0.0), (0.0, PROXIMAL_M, 0.0), PROXIMAL_R_M)
    mid = b.body(
        prox,
        f"{f.lower()}middle",
        (0.0, PROXIMAL_M, 0.0),
        mass_kg=MIDDLE_KG,
        com=(0.0, MIDDLE_M / 2, 0.0),
        inertia=rod_inertia(MIDDLE_KG, MIDDLE_M, MIDDLE_R_M),
    )
    b.hinge(mid, f"{f}J2", (-1.0, 0.0, 0.0), J2_RANGE, COUPLED_GAINS)
    b.capsule(mid, (0.0, 0.0, 0.0), (0.0, MIDDLE_M, 0.0), MIDDLE_R_M)
    dist = b.body(
        mid,
        f"{f.lower()}distal",
        (0.0, MIDDLE_M, 0.0),
        mass_kg=DISTAL_KG,
        com=(0.0, DISTAL_M / 2, 0.0),
        inertia=rod_inertia(DISTAL_KG, DISTAL_M, DISTAL_R_M),
    )
    b.hinge(dist, f"{f}J1", (-1.0, 0.0, 0.0), J1_RANGE, COUPLED_GAINS)
    b.capsule(dist, (0.0, 0.0, 0.0), (0.0, DISTAL_M - DISTAL_R_M, 0.0), DISTAL_R_M, tip=True)
    b.site(dist, f"{f.lower()}_tip", (0.0, DISTAL_M, 0.0))
    b.equal_joints(f"{f}J1_{f}J2", f"{f}J1", f"{f}J2")


def _thumb(b: HandBuilder, palm: mujoco.MjsBody) -> None:
    """Thumb: base (THJ5 + THJ4), middle (THJ3 + THJ2), distal (THJ1); links along local +y."""
    base = b.body(
        palm,
        "thproximal",
        THUMB_BASE_M,
        quat=quat_about((0.0, 0.0, 1.0), THUMB_BASE_YAW_RAD),
        mass_kg=TH_PROXIMAL_KG,
        com=(0.0, 0.015, 0.0),
        inertia=rod_inertia(TH_PROXIMAL_KG, TH_PROXIMAL_M, TH_PROXIMAL_R_M),
    )
    b.hinge(base, "THJ5", (0.0, -1.0, 0.0), THJ5_RANGE, THUMB_BASE_GAINS)
    b.hinge(base, "THJ4", (-1.0, 0.0, 0.0), THJ4_RANGE, THUMB_BASE_GAINS)
    b.capsule(base, (0.0, 0.004, 0.0), (0.0, TH_PROXIMAL_M - 0.004, 0.0), TH_PROXIMAL_R_M)
    mid = b.body(
        base,
        "thmiddle",
        (0.0, TH_PROXIMAL_M, 0.0),
        mass_kg=TH_MIDDLE_KG,
        com=(0.0, 0.013, 0.0),
        inertia=rod_inertia(TH_MIDDLE_KG, TH_MIDDLE_M, TH_MIDDLE_R_M),
    )
    b.hinge(mid, "THJ3", (-1.0, 0.0, 0.0), THJ3_RANGE, THUMB_GAINS)
    b.hinge(mid, "THJ2", (0.0, 0.0, -1.0), THJ2_RANGE, THUMB_GAINS)
    b.capsule(mid, (0.0, 0.0, 0.0), (0.0, TH_MIDDLE_M, 0.0), TH_MIDDLE_R_M)
    dist = b.body(
        mid,
        "thdistal",
        (0.0, TH_MIDDLE_M, 0.0),
        quat=quat_about((0.0, 1.0, 0.0), -math.pi / 2),  # distal flexes across the middle's
        mass_kg=TH_DISTAL_KG,
        com=(0.0, TH_DISTAL_M / 2, 0.0),
        inertia=rod_inertia(TH_DISTAL_KG, TH_DISTAL_M, TH_DISTAL_R_M),
    )
    b.hinge(dist, "THJ1", (-1.0, 0.0, 0.0), THJ1_RANGE, THUMB_GAINS)
    b.capsule(dist, (0.0, 0.0, 0.0), (0.0, TH_DISTAL_M - TH_DISTAL_R_M, 0.0), TH_DISTAL_R_M, tip=True)
    b.site(dist, "th_tip", (0.0, TH_DISTAL_M, 0.0))


def build(b: HandBuilder, mount: mujoco.MjsBody) -> None:
    """Add the Shadow hand under `mount` (see module doc for frames and conventions)."""
    wrist = b.body(
        mount,
        "wrist",
        (0.0, 0.0, 0.0),
        mass_kg=WRIST_KG,
        com=(0.0, 0.017, 0.0),
        inertia=box_inertia(WRIST_KG, (0.025, 0.017, 0.012)),
    )
    b.hinge(wrist, "WRJ2", (0.0, 0.0, 1.0), WRJ2_RANGE, WRJ2_GAINS)
    b.box(wrist, (0.0, 0.012, 0.0), (0.03, 0.018, 0.016), bulk=True)
    palm = b.body(
        wrist,
        "palm",
        (0.0, WRIST_TO_PALM_M, 0.0),
        mass_kg=PALM_KG,
        com=(0.0, 0.035, 0.0),
        inertia=box_inertia(PALM_KG, (0.042, 0.048, 0.011)),
    )
    b.hinge(palm, "WRJ1", (-1.0, 0.0, 0.0), WRJ1_RANGE, WRJ1_GAINS)
    # Palm slab (thumb side to the ring finger); its underside is what could touch a key.
    b.box(palm, (-0.0115, 0.0475, 0.0), (0.0335, 0.0475, 0.011))
    b.visual_box(palm, (0.0, 0.0475, 0.004), (0.044, 0.0475, 0.007))
    for f, pos in KNUCKLES_M.items():
        _finger(b, palm, f, pos)
    meta = b.body(
        palm,
        "lfmetacarpal",
        LF_METACARPAL_M,
        mass_kg=LF_METACARPAL_KG,
        com=(0.0, 0.04, 0.0),
        inertia=box_inertia(LF_METACARPAL_KG, (0.011, 0.03, 0.011)),
    )
    b.hinge(meta, "LFJ5", LFJ5_AXIS, LFJ5_RANGE, FINGER_GAINS)
    b.box(meta, (0.0, 0.033, 0.0), (0.011, 0.033, 0.011))
    _finger(b, meta, "LF", (0.0, LF_METACARPAL_LENGTH_M, 0.0))
    _thumb(b, palm)
    for name, joints in ACTUATOR_JOINTS.items():
        if len(joints) == 2:
            b.coupled_tendon_actuator(name, joints, COUPLED_GAINS, J0_RANGE)
            continue
        b.joint_actuator(name, joints[0], _gains_for(name), _range_for(joints[0]))


def _range_for(joint: str) -> tuple[float, float]:
    """The range (rad) of `joint`."""
    if joint in _NAMED_RANGES:
        return _NAMED_RANGES[joint]
    return {"J4": J4_RANGE, "J3": J3_RANGE, "J2": J2_RANGE, "J1": J1_RANGE}[joint[2:]]


_NAMED_RANGES = {
    "WRJ2": WRJ2_RANGE,
    "WRJ1": WRJ1_RANGE,
    "LFJ5": LFJ5_RANGE,
    "THJ5": THJ5_RANGE,
    "THJ4": THJ4_RANGE,
    "THJ3": THJ3_RANGE,
    "THJ2": THJ2_RANGE,
    "THJ1": THJ1_RANGE,
}


def _gains_for(actuator: str) -> JointGains:
    """The gains of the single-joint actuator `actuator`."""
    if actuator == "WRJ2":
        return WRJ2_GAINS
    if actuator == "WRJ1":
        return WRJ1_GAINS
    if actuator in ("THJ5", "THJ4"):
        return THUMB_BASE_GAINS
    if actuator.startswith("TH"):
        return THUMB_GAINS
    return FINGER_GAINS


SHADOW = finalize(
    HandModelSpec(
        name="shadow",
        joint_names=JOINT_NAMES,
        actuator_names=ACTUATOR_NAMES,
        reduced_actuator_names=REDUCED_ACTUATOR_NAMES,
        fingertip_site_names=FINGERTIP_SITES,
        home_joint_angles_rad=HOME_JOINT_ANGLES_RAD,
        actuator_joints=ACTUATOR_JOINTS,
        build=build,
    )
)
"""The Shadow hand embodiment."""
