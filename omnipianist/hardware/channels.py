"""Servo channels: one actuator of the embodiment on one servo, with its unit <-> tick mapping.

The hand driver works on channels only, so a LEAP Hand (16 joint servos, rad) and a simulation-only
virtual hand (one emulated servo per actuator, forearm slides in metres included) drive the same way.

Mapping (the calibration convention of :mod:`omnipianist.hardware.joints`, generalised to any unit)::

    value = direction * (ticks - 2048) * unit_per_tick - offset
    ticks = round(2048 + direction * (value + offset) / unit_per_tick)

``value`` is in actuator ctrl units (rad for hinges and coupled tendons, m for slides); for a LEAP joint
``unit_per_tick = 2*pi/4096`` and the two formulas are exactly ``ticks_to_joint_rad`` / ``joint_rad_to_ticks``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from omnipianist.errors import ConfigError
from omnipianist.hardware.config import HandConfig, SafetyConfig, servo_order
from omnipianist.hardware.dynamixel.tables import (
    CENTER_TICKS,
    EXTENDED_POSITION_LIMIT,
    RAD_PER_TICK,
    TICKS_PER_REV,
    VELOCITY_RPM_PER_UNIT,
)
from omnipianist.hardware.joints import PositionGains

TICKS_PER_S_PER_VELOCITY_UNIT = VELOCITY_RPM_PER_UNIT * TICKS_PER_REV / 60.0
"""Present Velocity unit (0.229 rpm) in ticks per second."""


@dataclass(frozen=True)
class ServoChannel:
    """One actuator driven by one servo.

    Attributes:
        name: prefixed actuator name (``lh_if_mcp``, ``rh_FFJ0``, ``rh_forearm_tx``).
        servo_id: Dynamixel id on the hand's bus.
        unit: ``"rad"`` or ``"m"`` (the actuator's ctrl unit).
        unit_per_tick: value change per position tick [unit/tick].
        offset: calibration offset [unit].
        direction: +1 or -1.
        limits: (lower, upper) allowed values [unit] (the safety filter's limits, before its margin).
        gains: position PID gains written at configure time.
        current_limit_ma: Current Limit / Goal Current [mA].
        margin: distance kept from the limits [unit] (safety.yaml ``margin_rad`` / ``rail.margin_m``).
        max_rate: rate limit [unit/s].
        extended: a multi-turn servo (Extended Position mode, Operating Mode 4: the forearm rails); its
            ticks may leave 0..4095 and it has no Min/Max Position Limit.
        home: where the axis stands at startup [unit] (multi-turn axes only): the driver homes it there
            (:class:`omnipianist.safety.rail.RailHoming`), replacing ``offset``; ``None``: no homing.
    """

    name: str
    servo_id: int
    unit: str
    unit_per_tick: float
    offset: float
    direction: int
    limits: tuple[float, float]
    gains: PositionGains
    current_limit_ma: float
    margin: float = 0.0
    max_rate: float = 8.0
    extended: bool = False
    home: float | None = None

    def raw_from_ticks(self, ticks: float) -> float:
        """Position [unit] before the offset (``direction * (ticks - 2048) * unit_per_tick``): what homing
        turns into the offset."""
        return self.direction * (ticks - CENTER_TICKS) * self.unit_per_tick

    def tick_range(self) -> tuple[int, int]:
        """Ticks a goal may take: one turn, or +-256 turns for an extended (multi-turn) servo."""
        if self.extended:
            return (-EXTENDED_POSITION_LIMIT, EXTENDED_POSITION_LIMIT)
        return (0, TICKS_PER_REV - 1)

    def to_ticks(self, value: float) -> int:
        """Value [unit] -> nearest Goal Position [ticks]; ValueError names the channel on NaN/Inf."""
        if not math.isfinite(value):
            raise ValueError(f"{self.name} (servo id {self.servo_id}): non-finite value {value!r}")
        return CENTER_TICKS + round(self.direction * (value + self.offset) / self.unit_per_tick)

    def from_ticks(self, ticks: float) -> float:
        """Present Position [ticks] -> value [unit]."""
        return self.direction * (ticks - CENTER_TICKS) * self.unit_per_tick - self.offset

    def velocity_from_units(self, units: float) -> float:
        """Present Velocity [0.229 rpm units] -> [unit/s]."""
        return self.direction * units * TICKS_PER_S_PER_VELOCITY_UNIT * self.unit_per_tick

    def velocity_to_units(self, value_per_s: float) -> int:
        """[unit/s] -> Present Velocity units (what a servo reports), saturated to int32."""
        units = self.direction * value_per_s / (TICKS_PER_S_PER_VELOCITY_UNIT * self.unit_per_tick)
        return int(max(-(2**31), min(2**31 - 1, round(units))))

    def safe_tick_range(self) -> tuple[int, int]:
        """(min, max) Goal Position [ticks] of ``[lower + margin, upper - margin]``, sorted."""
        a = self.to_ticks(self.limits[0] + self.margin)
        b = self.to_ticks(self.limits[1] - self.margin)
        return (min(a, b), max(a, b))

    def limit_ticks(self) -> tuple[int, int]:
        """(min, max) [ticks] of the limits themselves (Min/Max Position Limit, addresses 52/48)."""
        a, b = self.to_ticks(self.limits[0]), self.to_ticks(self.limits[1])
        return (min(a, b), max(a, b))


def check_channels(channels: Sequence[ServoChannel], where: str) -> None:
    """Refuse duplicate names or ids and limits that map outside 0..4095 (+-256 turns for an extended
    servo); errors name ``where``."""
    seen_id: dict[int, str] = {}
    seen_name: set[str] = set()
    for ch in channels:
        if ch.servo_id in seen_id:
            raise ConfigError(f"{where}: {ch.name}: servo id {ch.servo_id} is already used by {seen_id[ch.servo_id]}")
        if ch.name in seen_name:
            raise ConfigError(f"{where}: {ch.name}: listed twice")
        seen_id[ch.servo_id] = ch.name
        seen_name.add(ch.name)
        lo, hi = ch.limit_ticks()
        t_lo, t_hi = ch.tick_range()
        if lo < t_lo or hi > t_hi:
            what = "multi-turn" if ch.extended else "single-turn"
            raise ConfigError(
                f"{where}: {ch.name} (servo id {ch.servo_id}): limits {ch.limits} {ch.unit} map to ticks [{lo}, {hi}], "
                f"outside the {what} range [{t_lo}, {t_hi}]"
            )


def channels_from_hand(hand: object, safety: object | None = None) -> list[ServoChannel]:
    """Channels of a LEAP-style :class:`~omnipianist.hardware.config.HandConfig`: the hand joints in
    :func:`~omnipianist.hardware.config.servo_order`, then, when ``rail.driver`` is ``dynamixel``, the
    forearm slides (multi-turn servos on the same bus), i.e. ``embodiment.actuator_names(side)`` order."""
    assert isinstance(hand, HandConfig)
    emb = hand.get_embodiment()
    out = []
    for (prefixed, servo_id), actuator in zip(servo_order(hand), emb.hand_actuators, strict=True):
        joint = emb.hand.actuator_joints[actuator][0]
        cal = hand.joints[joint]
        margin, rate = 0.0, 8.0
        if safety is not None:
            assert isinstance(safety, SafetyConfig)
            margin, rate = safety.margin_rad, safety.max_rate_for(joint)
        out.append(
            ServoChannel(
                name=prefixed, servo_id=servo_id, unit="rad", unit_per_tick=RAD_PER_TICK, offset=cal.offset_rad,
                direction=cal.direction, limits=cal.limits_rad, gains=cal.gains, current_limit_ma=cal.current_limit_ma,
                margin=margin, max_rate=rate,
            )
        )
    if hand.rail.driver == "dynamixel":
        for slide_name in emb.slide_names:
            s = hand.rail.slides[slide_name]
            assert s.servo is not None
            margin, rate = 0.0, s.max_speed_m_s
            if safety is not None:
                assert isinstance(safety, SafetyConfig)
                margin, rate = safety.rail_margin_m, safety.rail_max_speed_m_s
            out.append(
                ServoChannel(
                    name=hand.prefix + slide_name, servo_id=s.servo.servo_id, unit="m",
                    unit_per_tick=s.servo.metres_per_tick, offset=0.0, direction=s.servo.direction, limits=s.limits_m,
                    gains=s.servo.gains, current_limit_ma=s.servo.current_limit_ma, margin=margin, max_rate=rate,
                    extended=True, home=s.servo.home_m,
                )
            )
    check_channels(out, str(hand.path))
    return out


def limits_arrays(channels: Sequence[ServoChannel]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(lower, upper, margin, max_rate) arrays in channel order, for a SafetyFilter."""
    arr = np.array([(c.limits[0], c.limits[1], c.margin, c.max_rate) for c in channels], dtype=float)
    return arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3]
