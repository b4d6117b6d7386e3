"""Per-joint servo calibration of a hand, as dataclasses, and the joint-angle <-> tick conversions.

Calibration convention (one formula, used by the driver, the emulator tests and the config checks)::

    servo_rad(ticks) = (ticks - 2048) * 2*pi / 4096          # tables.ticks_to_rad: 2048 ticks = 0 rad
    joint_rad        = direction * servo_rad(ticks) - offset_rad
    ticks            = round(2048 + 4096 / (2*pi) * direction * (joint_rad + offset_rad))

``joint_rad`` is the simulation's joint angle (the MuJoCo model's convention, 0 = flat open hand).
The LEAP Hand software reads the raw servo angle as ``ticks * 2*pi / 4096`` and defines
``sim = raw - pi``; since ``raw - pi = servo_rad`` the LEAP "+pi" is exactly the 2048-tick centre, so a
stock-assembled LEAP Hand has ``direction = +1`` and ``offset_rad = 0`` on every joint. A non-zero
``offset_rad`` is the residual measured at calibration: the servo_rad read when the joint sits at
sim angle 0 is ``offset_rad`` (for ``direction = +1``). ``direction = -1`` flips a servo mounted the
other way round.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from omnipianist.command import Command
from omnipianist.hardware.dynamixel.bus import DynamixelBus
from omnipianist.hardware.dynamixel.tables import CENTER_TICKS, RAD_PER_TICK, TICKS_PER_REV, rad_to_ticks, ticks_to_rad

POSITION_TICKS_MIN = 0
POSITION_TICKS_MAX = TICKS_PER_REV - 1
"""Single-turn position range [ticks] that joint limits must map into."""


@dataclass(frozen=True)
class PositionGains:
    """Position PID gains as written to the servo's control table (Dynamixel units, 0..16383).

    Attributes:
        p: Position P Gain (address 84).
        i: Position I Gain (address 82).
        d: Position D Gain (address 80).
    """

    p: int
    i: int
    d: int


@dataclass(frozen=True)
class JointCalibration:
    """One joint's servo: id, calibration, limits, gains, current limit.

    Attributes:
        name: unprefixed joint name as in the hand model (e.g. ``if_mcp``).
        servo_id: Dynamixel id on the hand's bus (0..252).
        offset_rad: calibration offset [rad] (see the module docstring for the formula).
        direction: +1 or -1, sign between servo angle and joint angle.
        limits_rad: (lower, upper) joint-angle limits [rad], inside the model's joint range.
        gains: position PID gains (Dynamixel units).
        current_limit_ma: current limit [mA] (Current Limit 38 and Goal Current 102 in mode 5).
    """

    name: str
    servo_id: int
    offset_rad: float
    direction: int
    limits_rad: tuple[float, float]
    gains: PositionGains
    current_limit_ma: float

    def limit_ticks(self) -> tuple[int, int]:
        """(min, max) position [ticks] of the joint limits, sorted (for Min/Max Position Limit)."""
        a = joint_rad_to_ticks(self, self.limits_rad[0])
        b = joint_rad_to_ticks(self, self.limits_rad[1])
        return (min(a, b), max(a, b))


def ticks_to_joint_rad(cal: JointCalibration, ticks: int | float) -> float:
    """Servo position [ticks] -> joint angle [rad] (sim convention): ``direction*servo_rad - offset``."""
    return cal.direction * ticks_to_rad(ticks) - cal.offset_rad


def joint_rad_to_ticks(cal: JointCalibration, rad: float) -> int:
    """Joint angle [rad] (sim convention) -> nearest servo position [ticks].

    Inverse of :func:`ticks_to_joint_rad` (exact for integer ticks; within half a tick,
    ``pi / 4096`` rad, for angles). No clamping: limits are the safety filter's job.

    Raises:
        ValueError: ``rad`` is NaN or infinite (names the joint and servo id).
    """
    if not math.isfinite(rad):
        raise ValueError(f"joint {cal.name} (servo id {cal.servo_id}): non-finite angle {rad!r}")
    return rad_to_ticks(cal.direction * (rad + cal.offset_rad))


# --- guided calibration (``omnipianist calibrate``) -------------------------------------------------

ZERO_POSE_PROMPT = (
    "Torque is off: the hand is limp. Put every joint at its zero pose (fingers flat and straight, "
    "abduction centred, thumb as in the model's zero pose), hold it there, then press Enter."
)
FLEX_POSE_PROMPT = (
    "Now move every joint some way toward the upper end of its range (curl each finger, spread each "
    "abduction joint toward positive, curl the thumb) -- at least {min_deg:.0f} degrees -- then press Enter."
)
MIN_MOTION_RAD = 0.2
"""A joint must move at least this far between the two poses for its direction to be measured."""


@dataclass(frozen=True)
class CalibrationResult:
    """What :func:`run_calibration` measured and wrote.

    Attributes:
        hand: the new hand configuration (re-loaded from ``path``, so it passed validation).
        path: the YAML file written.
        zero_ticks / flexed_ticks: Present Position per joint at the two poses.
        unchanged_direction: joints that moved less than ``min_motion_rad`` (direction kept from before).
    """

    hand: object
    path: object
    zero_ticks: dict[str, int]
    flexed_ticks: dict[str, int]
    unchanged_direction: tuple[str, ...]


def run_calibration(
    bus: object,
    hand: object,
    out_path: object,
    *,
    prompt: object = None,
    min_motion_rad: float = MIN_MOTION_RAD,
) -> CalibrationResult:
    """Record every joint's ``offset_rad`` and ``direction`` with the hand limp, and write a hand YAML.

    Steps: torque off on every servo of ``hand`` (so the user can move the joints), ``prompt`` the zero
    pose and read Present Position, ``prompt`` the flexed pose and read again. For each joint the
    direction is the sign of the motion (ticks up = +1) when it moved at least ``min_motion_rad``, else
    the previous direction is kept (listed in the result); the offset makes the zero pose read 0 rad:
    ``offset_rad = direction * servo_rad(zero_ticks)``. Everything else is kept. The file is written via
    :func:`dump_hand_yaml` and re-loaded with the strict loader.

    Args:
        bus: a connected :class:`~omnipianist.hardware.dynamixel.bus.DynamixelBus` on the hand's port.
        hand: the current :class:`~omnipianist.hardware.config.HandConfig` (ids, limits, gains).
        out_path: where to write the new YAML (may be the input file).
        prompt: ``prompt(message)`` returns when the user is ready (default: ``input``); tests inject one
            that moves the emulated joints.

    Raises:
        BusError: a servo did not answer (names port and id).
        HardwareConfigError: the measured offsets make the limits leave the single-turn range (names
            the joint).
    """
    from dataclasses import replace
    from pathlib import Path

    from omnipianist.hardware.config import HandConfig, load_hand_config  # lazy: cycle (config imports this module)

    assert isinstance(bus, DynamixelBus) and isinstance(hand, HandConfig)
    def _ask_on_stderr(message: str) -> str:  # stdout stays clean for --json
        import sys

        print(message, end=" ", file=sys.stderr, flush=True)
        return input()

    ask = prompt if callable(prompt) else _ask_on_stderr
    ids = {name: cal.servo_id for name, cal in hand.joints.items()}
    bus.disable_torque(ids.values())
    ask(ZERO_POSE_PROMPT)
    zero = bus.sync_read("present_position", list(ids.values()))
    ask(FLEX_POSE_PROMPT.format(min_deg=math.degrees(min_motion_rad)))
    flexed = bus.sync_read("present_position", list(ids.values()))
    joints = {}
    unchanged = []
    for name, cal in hand.joints.items():
        z, f = int(zero[cal.servo_id]), int(flexed[cal.servo_id])  # type: ignore[arg-type]
        moved = (f - z) * RAD_PER_TICK
        if abs(moved) >= min_motion_rad:
            direction = 1 if moved > 0 else -1
        else:
            direction = cal.direction
            unchanged.append(name)
        offset = direction * (z - CENTER_TICKS) * RAD_PER_TICK
        joints[name] = replace(cal, offset_rad=round(offset, 6), direction=direction)
    new = replace(hand, joints=joints)
    path = Path(str(out_path))
    path.write_text(dump_hand_yaml(new), encoding="utf-8")
    loaded = load_hand_config(path)
    return CalibrationResult(
        loaded, path, {n: int(zero[c.servo_id]) for n, c in hand.joints.items()},  # type: ignore[arg-type]
        {n: int(flexed[c.servo_id]) for n, c in hand.joints.items()}, tuple(unchanged),  # type: ignore[arg-type]
    )


def dump_hand_yaml(hand: object) -> str:
    """A hand configuration as YAML in the layout of ``hardware_config/leap_left.yaml`` (one line per joint)."""
    from omnipianist.hardware.config import HandConfig  # lazy: cycle (config imports this module)

    assert isinstance(hand, HandConfig)
    out = [
        f"# {hand.embodiment.upper()} hand, {hand.side}. Every field and the calibration convention: "
        "hardware_config/README.md.",
        "# joint_rad = direction * (ticks - 2048) * 2*pi/4096 - offset_rad",
        f"side: {hand.side}",
        f"embodiment: {hand.embodiment}",
        f"servo_model: {hand.servo_model}",
        f"bus: {hand.bus}",
        "joints:",
    ]
    width = max(len(n) for n in hand.joints) + 1
    for name, c in hand.joints.items():
        g = c.gains
        out.append(
            f"  {name + ':':<{width}} {{servo_id: {c.servo_id}, offset_rad: {c.offset_rad!r}, direction: {c.direction}, "
            f"limits_rad: [{c.limits_rad[0]!r}, {c.limits_rad[1]!r}], gains: {{p: {g.p}, i: {g.i}, d: {g.d}}}, "
            f"current_limit_ma: {c.current_limit_ma!r}}}"
        )
    rail = hand.rail
    out += ["rail:", f"  driver: {rail.driver}", f"  port: {rail.port if rail.port is not None else 'null'}", "  slides:"]
    for name, s in rail.slides.items():
        servo = ""
        if s.servo is not None:
            v, g = s.servo, s.servo.gains
            servo = (f", servo_id: {v.servo_id}, metres_per_rev: {v.metres_per_rev!r}, direction: {v.direction}, "
                     f"home_m: {v.home_m!r}, current_limit_ma: {v.current_limit_ma!r}, "
                     f"gains: {{p: {g.p}, i: {g.i}, d: {g.d}}}")
        out.append(f"    {name}: {{limits_m: [{s.limits_m[0]!r}, {s.limits_m[1]!r}], max_speed_m_s: {s.max_speed_m_s!r}"
                   f"{servo}}}")
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class CalibrateConfig:
    side: Literal["left", "right"]
    """which hand"""
    hand_config: str | None = None
    """hand YAML to start from (default hardware_config/leap_<side>.yaml)"""
    bus_config: str | None = None
    """bus YAML (default hardware_config/bus.yaml)"""
    port: str | None = None
    """serial port (default: the bus file's port)"""
    out: str | None = None
    """YAML to write (default: the hand config; a .bak is kept)"""
    min_motion_deg: float = math.degrees(MIN_MOTION_RAD)
    """smallest motion between the poses that sets a joint's direction [deg]"""
    prompt: Callable[[str], object] | None = field(default=None, metadata={"cli": False})
    """``prompt(message)`` returns when the user is ready (None: ``input`` on stderr); tests inject one."""


@dataclass(frozen=True)
class CalibrateResult:
    path: str
    """The YAML written."""
    side: str
    unchanged_direction: tuple[str, ...]
    """Joints that moved less than ``min_motion_deg`` (direction kept)."""
    joints: dict[str, dict[str, object]]
    """Per joint: servo_id, offset_rad, direction."""
    min_motion_deg: float = field(default=0.0, metadata={"json": False})


def calibrate(cfg: CalibrateConfig) -> CalibrateResult:
    """``omnipianist calibrate``: open the hand's bus, run :func:`run_calibration` (``.bak`` of an overwritten
    hand YAML kept), close the bus with the torque off."""
    import shutil
    from pathlib import Path

    from omnipianist.hardware.config import (  # lazy: cycle (config imports this module)
        HARDWARE_CONFIG_DIR,
        HandConfig,
        load_bus_config,
        load_hand_config,
    )

    hand_path = Path(cfg.hand_config or HARDWARE_CONFIG_DIR / f"leap_{cfg.side}.yaml")
    hand = load_hand_config(hand_path)
    buses = load_bus_config(cfg.bus_config or HARDWARE_CONFIG_DIR / "bus.yaml")
    bus_cfg = buses[hand.bus]
    out = Path(cfg.out or hand_path)
    if out.exists() and out.resolve() == hand_path.resolve():
        shutil.copyfile(hand_path, hand_path.with_suffix(hand_path.suffix + ".bak"))
    # calibration keeps no control period: the bus waits as long as it does while configuring
    bus = DynamixelBus(cfg.port or bus_cfg.port, bus_cfg.baudrate, timeout_s=bus_cfg.setup_timeout_s,
                       retries=bus_cfg.setup_retries, raise_on_alert=False)
    bus.connect()
    try:
        result = run_calibration(bus, hand, out, prompt=cfg.prompt, min_motion_rad=math.radians(cfg.min_motion_deg))
    finally:
        bus.disconnect(disable_torque=True)
    assert isinstance(result.hand, HandConfig)
    return CalibrateResult(path=str(result.path), side=cfg.side, unchanged_direction=result.unchanged_direction,
                           joints={name: {"servo_id": cal.servo_id, "offset_rad": cal.offset_rad,
                                          "direction": cal.direction} for name, cal in result.hand.joints.items()},
                           min_motion_deg=cfg.min_motion_deg)


def format_calibrate(r: CalibrateResult) -> str:
    lines = [f"wrote {r.path}"]
    lines += [f"  {name:8s} servo {j['servo_id']:3d}  offset_rad {j['offset_rad']:+.4f}  direction {j['direction']:+d}"
              for name, j in r.joints.items()]
    if r.unchanged_direction:
        lines.append(f"  direction not measured (moved < {r.min_motion_deg:.0f} deg), kept: "
                     f"{', '.join(r.unchanged_direction)}")
    return "\n".join(lines)


CALIBRATE = Command("calibrate", "guided calibration: joint offsets/directions into a hand YAML (hand limp)",
                    CalibrateConfig, calibrate, format_calibrate,
                    json_help="print the result as one JSON object at the end (the prompts still go to stderr)")


def add_calibrate_args(parser: argparse.ArgumentParser) -> None:
    """Flags of ``omnipianist calibrate`` (those :data:`CALIBRATE` adds)."""
    CALIBRATE.add_arguments(parser)


def run_calibrate(args: argparse.Namespace, prompt: Callable[[str], object] | None = None) -> int:
    """:data:`CALIBRATE` on parsed :func:`add_calibrate_args` flags, with ``prompt`` (tests inject one)."""
    return CALIBRATE.invoke(args, overrides={"prompt": prompt} if prompt is not None else None)
