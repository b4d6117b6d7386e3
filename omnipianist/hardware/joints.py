"""A joint's servo as data (:class:`JointCalibration`, :class:`PositionGains`) and the joint-angle <-> tick conversions.

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

This module needs nothing of the hardware layer but the control tables (``.importlinter``:
*joints-need-only-the-tables*): the configuration (:mod:`omnipianist.hardware.config`) builds these
from the YAML files, and the guided calibration (:mod:`omnipianist.hardware.calibration`) measures them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from omnipianist.hardware.dynamixel.tables import rad_to_ticks, ticks_to_rad

__all__ = ["JointCalibration", "PositionGains", "joint_rad_to_ticks", "ticks_to_joint_rad"]


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
