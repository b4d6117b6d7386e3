"""LEAP Hand (CMU, 16 Dynamixel XC330-M288 servos: index, middle, ring with 4 joints, thumb 4).

Kinematic facts (joint anchors, axes, ranges, link masses, fingertip offsets) are those of the
published LEAP URDF / MuJoCo Menagerie `leap_hand`, re-expressed in the mount frame of `base`
(mount origin = the hand's base/wrist point, palm down, fingers along +y, right thumb on -x).
Each finger is a box per servo link and a capsule distal phalanx with its rubber tip.

Joint angles follow the LEAP simulation convention (0 = flat open hand; the hardware reads
angle + pi). Per finger, in kinematic order: mcp (MCP forward flexion, positive curls down),
rot (MCP side/abduction, after the flexion servo as on the real hand), pip, dip. Thumb: cmc
(swings the thumb under the palm), axl (turns it about its own length), mcp, ipl (flexion).
Dynamixel ids on the real hand are 0-15 in finger order index, middle, ring, thumb, but within
a finger id order is (rot, mcp, pip, dip): the hardware mapping must reorder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim_training.models.hands.base import (
    HandBuilder,
    HandModelSpec,
    JointGains,
    box_inertia,
    finalize,
    rod_inertia,
)

if TYPE_CHECKING:
    import mujoco

# --- Geometry (m), right hand, mount frame --------------------------------------------------
FINGER_X_M: dict[str, float] = {"if": -0.0458, "mf": -0.0004, "rf": 0.045}  # finger centrelines
MCP_Y_M = 0.091  # mount origin (hand base) to the MCP flexion axes, along the hand
FINGER_Z_M = -0.019  # height of the finger joint axes below the mount
MCP_TO_ROT_M = 0.0381  # MCP flexion axis to the abduction axis
ROT_TO_PIP_M = 0.015
PIP_TO_DIP_M = 0.0361
DIP_TO_TIP_M = 0.048  # to the end of the rubber fingertip (the URDF's tip_head point)
TIP_R_M = 0.010
LINK_HALF_M = (0.012, 0.0, 0.011)  # half width (x) and half height (z) of the servo links
TH_CMC_M = (-0.0368, 0.0287, -0.0216)  # thumb joint anchors, mount frame
TH_AXL_M = (-0.0511, 0.0157, -0.0216)
TH_MCP_M = (-0.0681, 0.0157, -0.0216)
TH_IPL_M = (-0.1147, 0.0157, -0.0216)
TH_IPL_TO_TIP_M = 0.060
TH_TIP_R_M = 0.011

# --- Masses (kg); the hand is ~0.75 kg --------------------------------------------------------
PALM_KG = 0.237
BS_KG, PX_KG, MD_KG, DS_KG = 0.044, 0.032, 0.037, 0.016
TH_MP_KG, TH_BS_KG, TH_PX_KG, TH_DS_KG = 0.032, 0.003, 0.038, 0.049

# --- Ranges (rad), LEAP URDF ------------------------------------------------------------------
MCP_RANGE = (-0.314, 2.23)
ROT_RANGE = (-1.047, 1.047)
PIP_RANGE = (-0.506, 1.885)
DIP_RANGE = (-0.366, 2.042)
TH_CMC_RANGE = (-0.349, 2.094)
TH_AXL_RANGE = (-0.47, 2.443)
TH_MCP_RANGE = (-1.20, 1.90)
TH_IPL_RANGE = (-1.34, 1.88)

# --- Actuation --------------------------------------------------------------------------------
SERVO_GAINS = JointGains(kp=4.0, kv=0.12, force_limit=0.95, armature=1e-3, damping=0.03)
"""kp 4 N m/rad: ~50 rad/s on ~1.5e-3 kg m^2 (link + 1e-3 reflected rotor inertia), gravity sag
< 1 deg; kv near critical; 0.95 N m = XC330-M288 stall torque at 12 V (the URDF's effort)."""

FINGERS = ("if", "mf", "rf")

JOINT_NAMES: tuple[str, ...] = (
    *(f"{f}_{j}" for f in FINGERS for j in ("mcp", "rot", "pip", "dip")),
    "th_cmc", "th_axl", "th_mcp", "th_ipl",
)  # fmt: skip

ACTUATOR_JOINTS: dict[str, tuple[str, ...]] = {j: (j,) for j in JOINT_NAMES}
"""One position servo per joint, named as the joint."""

FINGERTIP_SITES: tuple[str, ...] = ("th_tip", "if_tip", "mf_tip", "rf_tip")

HOME_FINGER_RAD = {"mcp": -0.15, "pip": 1.6, "dip": 0.6}
"""Fingers curled tight (-0.15 + 1.6 + 0.6 rad: the distal hangs ~vertical, tilted back) so the
tip sits 7 cm below and only 3.5 cm ahead of the MCP axis: flexing the MCP then moves the tip
mostly straight down, with > 4 cm of travel before the 13.7 cm finger straightens out. (The old
0.6/0.7/0.3 curl left the finger hanging almost straight down, 11 cm below the MCP: only 1.2 cm
of downward travel, so no white key could be pressed.)"""
HOME_JOINT_ANGLES_RAD: dict[str, float] = {
    **{f"{f}_{j}": v for f in FINGERS for j, v in HOME_FINGER_RAD.items()},
    "th_cmc": -0.03,
    "th_axl": 0.7,
    "th_mcp": 1.27,
    "th_ipl": 0.6,
}
"""Hover posture: fingers as above; the thumb turned about its length (axl) and bent forward (mcp,
ipl) so its tip hangs level with the fingertips, ~2 cm to the thumb side of the index tip and
3.3 cm nearer the player, with >= 3.5 cm of straight-down and >= 2 cm of straight-up travel
(fitted with the scene's fingertip IK; see tests/unit/test_reach.py)."""


def _finger(b: HandBuilder, palm: mujoco.MjsBody, f: str) -> None:
    """One finger: base (mcp), proximal (rot), middle (pip), distal (dip) with the tip."""
    link = (LINK_HALF_M[0], 0.0, LINK_HALF_M[2])
    bs_half = (link[0], MCP_TO_ROT_M / 2, link[2])
    bs = b.body(
        palm,
        f"{f}_bs",
        (FINGER_X_M[f], MCP_Y_M, FINGER_Z_M),
        mass_kg=BS_KG,
        com=(0.0, MCP_TO_ROT_M / 2, 0.0),
        inertia=box_inertia(BS_KG, bs_half),
    )
    b.hinge(bs, f"{f}_mcp", (-1.0, 0.0, 0.0), MCP_RANGE, SERVO_GAINS)
    b.box(bs, (0.0, MCP_TO_ROT_M / 2, 0.0), bs_half)
    px_half = (link[0], 0.017, link[2])  # the abduction servo body, 34 mm long
    px = b.body(
        bs,
        f"{f}_px",
        (0.0, MCP_TO_ROT_M, 0.0),
        mass_kg=PX_KG,
        com=(0.0, ROT_TO_PIP_M / 2, 0.0),
        inertia=box_inertia(PX_KG, px_half),
    )
    b.hinge(px, f"{f}_rot", (0.0, 0.0, -1.0), ROT_RANGE, SERVO_GAINS)
    b.box(px, (0.0, ROT_TO_PIP_M / 2, 0.0), (link[0], ROT_TO_PIP_M / 2 + 0.004, link[2]))
    md_half = (link[0], PIP_TO_DIP_M / 2, link[2])
    md = b.body(
        px,
        f"{f}_md",
        (0.0, ROT_TO_PIP_M, 0.0),
        mass_kg=MD_KG,
        com=(0.0, PIP_TO_DIP_M / 2, 0.0),
        inertia=box_inertia(MD_KG, md_half),
    )
    b.hinge(md, f"{f}_pip", (-1.0, 0.0, 0.0), PIP_RANGE, SERVO_GAINS)
    b.box(md, (0.0, PIP_TO_DIP_M / 2, 0.0), md_half)
    ds = b.body(
        md,
        f"{f}_ds",
        (0.0, PIP_TO_DIP_M, 0.0),
        mass_kg=DS_KG,
        com=(0.0, DIP_TO_TIP_M / 2, 0.0),
        inertia=rod_inertia(DS_KG, DIP_TO_TIP_M, TIP_R_M),
    )
    b.hinge(ds, f"{f}_dip", (-1.0, 0.0, 0.0), DIP_RANGE, SERVO_GAINS)
    b.capsule(ds, (0.0, 0.0, 0.0), (0.0, DIP_TO_TIP_M - TIP_R_M, 0.0), TIP_R_M, tip=True)
    b.site(ds, f"{f}_tip", (0.0, DIP_TO_TIP_M, 0.0))


def _rod_along_x(mass_kg: float, length_m: float, radius_m: float) -> tuple[float, ...]:
    """Principal inertia (kg m^2) of a rod along the local x axis."""
    transverse, axial, _ = rod_inertia(mass_kg, length_m, radius_m)
    return (axial, transverse, transverse)


def _thumb(b: HandBuilder, palm: mujoco.MjsBody) -> None:
    """Thumb: cmc servo, axl bracket, proximal (mcp) and distal (ipl); points -x at zero."""

    def rel(a: tuple[float, float, float], c: tuple[float, float, float]) -> tuple[float, ...]:
        return tuple(ci - ai for ai, ci in zip(a, c, strict=True))

    mp_off = rel(TH_CMC_M, TH_AXL_M)
    mp = b.body(
        palm,
        "th_mp",
        TH_CMC_M,
        mass_kg=TH_MP_KG,
        com=tuple(0.5 * v for v in mp_off),
        inertia=box_inertia(TH_MP_KG, (0.017, 0.013, 0.011)),
    )
    b.hinge(mp, "th_cmc", (0.0, -1.0, 0.0), TH_CMC_RANGE, SERVO_GAINS)
    b.box(mp, tuple(0.5 * v for v in mp_off), (0.013, 0.017, 0.011))
    bs = b.body(
        mp,
        "th_bs",
        mp_off,
        mass_kg=TH_BS_KG,
        com=(-0.008, 0.0, 0.0),
        inertia=box_inertia(TH_BS_KG, (0.009, 0.0165, 0.002)),
    )
    b.hinge(bs, "th_axl", (-1.0, 0.0, 0.0), TH_AXL_RANGE, SERVO_GAINS)
    px_len = TH_MCP_M[0] - TH_IPL_M[0]
    px = b.body(
        bs,
        "th_px",
        rel(TH_AXL_M, TH_MCP_M),
        mass_kg=TH_PX_KG,
        com=(-px_len / 2, 0.0, 0.0),
        inertia=box_inertia(TH_PX_KG, (px_len / 2, 0.012, 0.01)),
    )
    b.hinge(px, "th_mcp", (0.0, 0.0, -1.0), TH_MCP_RANGE, SERVO_GAINS)
    b.box(px, (-px_len / 2, 0.0, 0.0), (px_len / 2, 0.012, 0.011))
    ds = b.body(
        px,
        "th_ds",
        rel(TH_MCP_M, TH_IPL_M),
        mass_kg=TH_DS_KG,
        com=(-0.024, 0.0, 0.0),
        inertia=_rod_along_x(TH_DS_KG, TH_IPL_TO_TIP_M, TH_TIP_R_M),
    )
    b.hinge(ds, "th_ipl", (0.0, 0.0, -1.0), TH_IPL_RANGE, SERVO_GAINS)
    end = -(TH_IPL_TO_TIP_M - TH_TIP_R_M)
    b.capsule(ds, (0.0, 0.0, 0.0), (end, 0.0, 0.0), TH_TIP_R_M, tip=True)
    b.site(ds, "th_tip", (-TH_IPL_TO_TIP_M, 0.0, 0.0))


def build(b: HandBuilder, mount: mujoco.MjsBody) -> None:
    """Add the LEAP hand under `mount` (see module doc for frames and conventions)."""
    palm_half = (0.058, 0.05, 0.0235)
    palm = b.body(
        mount,
        "palm",
        (0.0, 0.0, 0.0),
        mass_kg=PALM_KG,
        com=(0.0, 0.05, -0.0115),
        inertia=box_inertia(PALM_KG, palm_half),
    )
    b.box(palm, (0.0, 0.05, -0.0115), palm_half)
    for f in FINGERS:
        _finger(b, palm, f)
    _thumb(b, palm)
    ranges = {
        "mcp": MCP_RANGE,
        "rot": ROT_RANGE,
        "pip": PIP_RANGE,
        "dip": DIP_RANGE,
        "th_cmc": TH_CMC_RANGE,
        "th_axl": TH_AXL_RANGE,
        "th_mcp": TH_MCP_RANGE,
        "th_ipl": TH_IPL_RANGE,
    }
    for joint in JOINT_NAMES:
        key = joint if joint.startswith("th_") else joint[3:]
        b.joint_actuator(joint, joint, SERVO_GAINS, ranges[key])


LEAP = finalize(
    HandModelSpec(
        name="leap",
        joint_names=JOINT_NAMES,
        actuator_names=tuple(ACTUATOR_JOINTS),
        reduced_actuator_names=tuple(ACTUATOR_JOINTS),
        fingertip_site_names=FINGERTIP_SITES,
        home_joint_angles_rad=HOME_JOINT_ANGLES_RAD,
        actuator_joints=ACTUATOR_JOINTS,
        build=build,
    )
)
"""The LEAP hand embodiment."""
