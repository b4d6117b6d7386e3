"""Guided calibration of a hand (``omnipianist calibrate``): every joint's ``offset_rad`` and ``direction``
measured with the hand limp, written to its hand YAML.

The calibration convention (the formula ``offset_rad`` and ``direction`` enter) and the per-joint data
model live in :mod:`omnipianist.hardware.joints`; the hand files in :mod:`omnipianist.hardware.config`.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from omnipianist.command import Command
from omnipianist.hardware.config import HARDWARE_CONFIG_DIR, HandConfig, load_bus_config, load_hand_config
from omnipianist.hardware.dynamixel.bus import DynamixelBus
from omnipianist.hardware.dynamixel.tables import CENTER_TICKS, RAD_PER_TICK

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

    hand: HandConfig
    path: Path
    zero_ticks: dict[str, int]
    flexed_ticks: dict[str, int]
    unchanged_direction: tuple[str, ...]


def run_calibration(
    bus: DynamixelBus,
    hand: HandConfig,
    out_path: str | Path,
    *,
    prompt: Callable[[str], object] | None = None,
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
    def _ask_on_stderr(message: str) -> str:  # stdout stays clean for --json
        print(message, end=" ", file=sys.stderr, flush=True)
        return input()

    ask = prompt if prompt is not None else _ask_on_stderr
    ids = {name: cal.servo_id for name, cal in hand.joints.items()}
    bus.disable_torque(ids.values())
    ask(ZERO_POSE_PROMPT)
    zero = bus.sync_read("present_position", list(ids.values()))
    ask(FLEX_POSE_PROMPT.format(min_deg=math.degrees(min_motion_rad)))
    flexed = bus.sync_read("present_position", list(ids.values()))
    joints = {}
    unchanged = []
    for name, cal in hand.joints.items():
        z, f = zero[cal.servo_id], flexed[cal.servo_id]
        moved = (f - z) * RAD_PER_TICK
        if abs(moved) >= min_motion_rad:
            direction = 1 if moved > 0 else -1
        else:
            direction = cal.direction
            unchanged.append(name)
        offset = direction * (z - CENTER_TICKS) * RAD_PER_TICK
        joints[name] = replace(cal, offset_rad=round(offset, 6), direction=direction)
    new = replace(hand, joints=joints)
    path = Path(out_path)
    path.write_text(dump_hand_yaml(new), encoding="utf-8")
    loaded = load_hand_config(path)
    return CalibrationResult(
        loaded, path, {n: zero[c.servo_id] for n, c in hand.joints.items()},
        {n: flexed[c.servo_id] for n, c in hand.joints.items()}, tuple(unchanged),
    )


def dump_hand_yaml(hand: HandConfig) -> str:
    """A hand configuration as YAML in the layout of ``hardware_config/leap_left.yaml`` (one line per joint)."""
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
