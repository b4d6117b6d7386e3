"""Forearm-rail safety: homing (where the position is measured from) and the soft limits around it.

A rail carriage is driven by a servo in a multi-turn mode, whose absolute encoder covers one shaft
turn only: after power-on (or a reboot) the position is known modulo one turn, so it must be homed
before the rail may move. There is no limit switch on the rail (and none is emulated), so homing is
"against the configured position at startup": the carriage stands at its home mark, ``home`` in the
frame of the rail's limits (``hardware_config/leap_*.yaml`` ``rail.slides.<slide>.home_m``), when the
driver configures, and :meth:`RailHoming.offset` turns the raw reading there into the offset that
makes it read ``home``. Soft limits are the safety filter's per-entry limits and margin (the rail
channels are entries of the hand driver's filter); :meth:`RailHoming.check` refuses to arm a rail whose
homed position lies outside them (a carriage not at its mark, or a lost turn count), instead of letting
the filter's re-arm clamp jump it back inside.

Pure Python, no hardware: the driver passes raw readings in metres and applies the offsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from omnipianist.errors import ConfigError
from omnipianist.safety.filter import SafetyError


@dataclass(frozen=True)
class RailHoming:
    """Homing and soft limits of one rail axis.

    Attributes:
        name: the axis (``lh_forearm_tx``), for messages.
        home: position of the home mark [m] in the limits' frame.
        limits: (lower, upper) travel [m].
        margin: kept from the limits by the filter [m].
        tolerance: how far outside the limits a measured position may be before arming is refused [m].
    """

    name: str
    home: float
    limits: tuple[float, float]
    margin: float = 0.0
    tolerance: float = 0.002

    def __post_init__(self) -> None:
        lo, hi = self.limits
        if not lo + self.margin <= self.home <= hi - self.margin:
            raise ConfigError(f"rail {self.name}: home {self.home} m is outside the soft limits "
                              f"[{lo + self.margin}, {hi - self.margin}] m")

    def offset(self, raw: float) -> float:
        """The offset (subtracted from raw readings) that makes the raw reading at the mark read ``home``."""
        return raw - self.home

    def check(self, position: float) -> None:
        """Raise SafetyError when a homed position is outside the limits (by more than ``tolerance``)."""
        lo, hi = self.limits
        if position < lo - self.tolerance or position > hi + self.tolerance:
            raise SafetyError(
                f"rail {self.name}: measured {position:.4f} m is outside its limits [{lo}, {hi}] m; the carriage "
                f"was not at its home mark ({self.home} m) at startup, or it lost its turn count: move it to the "
                "mark and configure again"
            )


def turns_lost(last_ticks: int, now_ticks: int, ticks_per_rev: int) -> int:
    """Whole turns a reboot dropped from a multi-turn reading (the shaft moved less than half a turn).

    After a reboot the servo reports its position within one turn; ``last_ticks`` is the reading just
    before. Adding ``turns_lost(...) * ticks_per_rev`` to new readings makes them continue the old ones.
    """
    return round((last_ticks - now_ticks) / ticks_per_rev)


def outside_limits(names: Sequence[str], positions: Sequence[float], lower: Sequence[float],
                   upper: Sequence[float], tolerance: float = 0.0) -> list[str]:
    """``name (value outside [lo, hi])`` for every entry outside its limits (by more than ``tolerance``)."""
    return [f"{n} ({x:.4f} outside [{lo}, {hi}])" for n, x, lo, hi in zip(names, positions, lower, upper, strict=True)
            if x < lo - tolerance or x > hi + tolerance]


__all__ = ["RailHoming", "outside_limits", "turns_lost"]
