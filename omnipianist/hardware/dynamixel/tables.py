"""Dynamixel X-series control tables and unit conversions, kept as data.

Source: ROBOTIS e-manual control tables of the XC330-M288, XL330-M288 and XM430-W350. The addresses
used here are identical across the three models; only units (current) and model numbers differ.
Multi-byte items are little-endian on the wire.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from omnipianist.hardware.errors import ControlTableError


@dataclass(frozen=True)
class ControlItem:
    """One control-table entry.

    Attributes:
        name: snake_case item name (the key callers use).
        address: byte address in the control table.
        size: width in bytes (1, 2 or 4).
        signed: whether the value is two's complement.
        writable: ``False`` for read-only items.
        eeprom: ``True`` for the EEPROM area (address < 64), writable only while torque is off.
    """

    name: str
    address: int
    size: int
    signed: bool = False
    writable: bool = True

    @property
    def eeprom(self) -> bool:
        return self.address < EEPROM_END

    @property
    def end(self) -> int:
        """One past the last byte of the item."""
        return self.address + self.size

    def encode(self, value: int) -> bytes:
        """Encode ``value`` little-endian; raises ControlTableError when it does not fit."""
        try:
            return int(value).to_bytes(self.size, "little", signed=self.signed)
        except OverflowError as exc:
            kind = "signed" if self.signed else "unsigned"
            raise ControlTableError(
                f"value {value} does not fit {self.name} ({self.size}-byte {kind}, address {self.address})"
            ) from exc

    def decode(self, data: bytes) -> int:
        """Decode the item's bytes (exactly ``size`` of them)."""
        return int.from_bytes(data[: self.size], "little", signed=self.signed)


EEPROM_END = 64
"""First RAM address; EEPROM items (below it) can only be written while Torque Enable is 0."""


def _items(*items: ControlItem) -> dict[str, ControlItem]:
    return {item.name: item for item in items}


X_SERIES: dict[str, ControlItem] = _items(
    # EEPROM area
    ControlItem("model_number", 0, 2, writable=False),
    ControlItem("model_information", 2, 4, writable=False),
    ControlItem("firmware_version", 6, 1, writable=False),
    ControlItem("id", 7, 1),
    ControlItem("baud_rate", 8, 1),
    ControlItem("return_delay_time", 9, 1),  # 2 us per unit; factory 250, the project sets 0
    ControlItem("drive_mode", 10, 1),
    ControlItem("operating_mode", 11, 1),  # 0 current, 1 velocity, 3 position, 4 extended, 5 current-based pos, 16 PWM
    ControlItem("secondary_id", 12, 1),
    ControlItem("protocol_type", 13, 1),
    ControlItem("homing_offset", 20, 4, signed=True),
    ControlItem("moving_threshold", 24, 4),
    ControlItem("temperature_limit", 31, 1),
    ControlItem("max_voltage_limit", 32, 2),
    ControlItem("min_voltage_limit", 34, 2),
    ControlItem("pwm_limit", 36, 2),
    ControlItem("current_limit", 38, 2),
    ControlItem("velocity_limit", 44, 4),
    ControlItem("max_position_limit", 48, 4),
    ControlItem("min_position_limit", 52, 4),
    ControlItem("shutdown", 63, 1),
    # RAM area
    ControlItem("torque_enable", 64, 1),
    ControlItem("led", 65, 1),
    ControlItem("status_return_level", 68, 1),  # 0 ping only, 1 ping+read, 2 all (default)
    ControlItem("registered_instruction", 69, 1, writable=False),
    ControlItem("hardware_error_status", 70, 1, writable=False),
    ControlItem("velocity_i_gain", 76, 2),
    ControlItem("velocity_p_gain", 78, 2),
    ControlItem("position_d_gain", 80, 2),
    ControlItem("position_i_gain", 82, 2),
    ControlItem("position_p_gain", 84, 2),
    ControlItem("bus_watchdog", 98, 1),  # 20 ms per unit, 0 = off
    ControlItem("goal_pwm", 100, 2, signed=True),
    ControlItem("goal_current", 102, 2, signed=True),
    ControlItem("goal_velocity", 104, 4, signed=True),
    ControlItem("profile_acceleration", 108, 4),
    ControlItem("profile_velocity", 112, 4),
    ControlItem("goal_position", 116, 4, signed=True),
    ControlItem("realtime_tick", 120, 2, writable=False),
    ControlItem("moving", 122, 1, writable=False),
    ControlItem("moving_status", 123, 1, writable=False),
    ControlItem("present_pwm", 124, 2, signed=True, writable=False),
    ControlItem("present_current", 126, 2, signed=True, writable=False),
    ControlItem("present_velocity", 128, 4, signed=True, writable=False),
    ControlItem("present_position", 132, 4, signed=True, writable=False),
    ControlItem("velocity_trajectory", 136, 4, signed=True, writable=False),
    ControlItem("position_trajectory", 140, 4, signed=True, writable=False),
    ControlItem("present_input_voltage", 144, 2, writable=False),
    ControlItem("present_temperature", 146, 1, writable=False),
)
"""Control table shared by the XC330-M288, XL330-M288 and XM430-W350 (addresses and sizes)."""

X_SERIES_TABLE_SIZE = 228
"""Bytes an X330 control table spans (Indirect Data 20 ends at 227); used by the emulator."""


# --- models -----------------------------------------------------------------------------------------

XC330_M288 = 1240
XL330_M288 = 1200
XM430_W350 = 1020


@dataclass(frozen=True)
class ServoModel:
    """Per-model facts: model number, control table, and unit scales.

    Attributes:
        name: model name as ROBOTIS writes it.
        number: value of Model Number (address 0).
        table: the control table.
        current_ma_per_unit: Present/Goal Current scale [mA per unit].
    """

    name: str
    number: int
    table: dict[str, ControlItem]
    current_ma_per_unit: float


MODELS: dict[int, ServoModel] = {
    XC330_M288: ServoModel("XC330-M288", XC330_M288, X_SERIES, current_ma_per_unit=1.0),
    XL330_M288: ServoModel("XL330-M288", XL330_M288, X_SERIES, current_ma_per_unit=1.0),
    XM430_W350: ServoModel("XM430-W350", XM430_W350, X_SERIES, current_ma_per_unit=2.69),
}
"""Known models by model number. The LEAP Hand uses XC330-M288."""


def model(number: int) -> ServoModel:
    """The model with this model number; raises ControlTableError for unknown numbers."""
    try:
        return MODELS[number]
    except KeyError:
        known = ", ".join(f"{m.name}={n}" for n, m in MODELS.items())
        raise ControlTableError(f"unknown Dynamixel model number {number} (known: {known})") from None


def item(name: str | ControlItem, table: dict[str, ControlItem] = X_SERIES) -> ControlItem:
    """Look up an item by name (a ControlItem passes through); raises ControlTableError if unknown."""
    if isinstance(name, ControlItem):
        return name
    try:
        return table[name]
    except KeyError:
        raise ControlTableError(f"unknown control-table item {name!r}") from None


@dataclass(frozen=True)
class Span:
    """A contiguous run of items read or written in one transaction (e.g. current+velocity+position).

    Attributes:
        items: the items, in address order, with no gap between them.
    """

    items: tuple[ControlItem, ...]

    @property
    def address(self) -> int:
        return self.items[0].address

    @property
    def size(self) -> int:
        return self.items[-1].end - self.items[0].address

    def decode(self, data: bytes) -> tuple[int, ...]:
        """Decode each item from the span's bytes."""
        return tuple(it.decode(data[it.address - self.address :]) for it in self.items)


def span(names: Iterable[str | ControlItem], table: dict[str, ControlItem] = X_SERIES) -> Span:
    """Build a :class:`Span` from items given in address order; raises ControlTableError on gaps."""
    items = tuple(item(n, table) for n in names)
    if not items:
        raise ControlTableError("empty span")
    for a, b in zip(items, items[1:], strict=False):
        if a.end != b.address:
            raise ControlTableError(f"span is not contiguous: {a.name} ends at {a.end}, {b.name} starts at {b.address}")
    return Span(items)


def as_span(item_or_span: str | ControlItem | Span | Sequence[str | ControlItem]) -> Span:
    """Normalise an item name, an item, a span or a sequence of items to a :class:`Span`."""
    if isinstance(item_or_span, Span):
        return item_or_span
    if isinstance(item_or_span, str | ControlItem):
        return Span((item(item_or_span),))
    return span(item_or_span)


# --- units ------------------------------------------------------------------------------------------

TICKS_PER_REV = 4096
"""Position resolution [ticks per revolution]."""

CENTER_TICKS = 2048
"""Position reading that maps to 0 rad (the horn's middle)."""

VELOCITY_RPM_PER_UNIT = 0.229
"""Present/Goal Velocity scale [rev/min per unit]."""

RETURN_DELAY_US_PER_UNIT = 2.0
"""Return Delay Time scale [us per unit]."""

BUS_WATCHDOG_MS_PER_UNIT = 20.0
"""Bus Watchdog scale [ms per unit]."""


def ticks_to_rad(ticks: int | float) -> float:
    """Position [ticks] to angle [rad], with :data:`CENTER_TICKS` at 0 rad."""
    return (ticks - CENTER_TICKS) * (2.0 * math.pi / TICKS_PER_REV)


def rad_to_ticks(angle_rad: float) -> int:
    """Angle [rad] to the nearest position [ticks], with 0 rad at :data:`CENTER_TICKS`."""
    return round(angle_rad * TICKS_PER_REV / (2.0 * math.pi)) + CENTER_TICKS


def velocity_to_rad_s(units: int | float) -> float:
    """Velocity [units of 0.229 rpm] to [rad/s]."""
    return units * VELOCITY_RPM_PER_UNIT * 2.0 * math.pi / 60.0


def current_to_ma(units: int | float, model_number: int = XC330_M288) -> float:
    """Current [units] to [mA] for this model (XC330/XL330: 1.0 mA per unit, XM430: 2.69)."""
    return units * model(model_number).current_ma_per_unit


def ma_to_current(milliamps: float, model_number: int = XC330_M288) -> int:
    """Current [mA] to the nearest [units] for this model."""
    return round(milliamps / model(model_number).current_ma_per_unit)


OPERATING_MODE_CURRENT_BASED_POSITION = 5
"""Operating Mode value the LEAP Hand runs in (position control with a current limit)."""

HARDWARE_ERROR_BITS: dict[int, str] = {
    0: "input voltage error",
    2: "overheating error",
    3: "motor encoder error",
    4: "electrical shock error",
    5: "overload error",
}
"""Hardware Error Status (address 70) bit -> meaning."""


def describe_hardware_error(bits: int) -> str:
    """Human-readable list of the Hardware Error Status bits set in ``bits``."""
    names = [name for bit, name in HARDWARE_ERROR_BITS.items() if bits & (1 << bit)]
    unknown = bits & ~sum(1 << b for b in HARDWARE_ERROR_BITS)
    if unknown:
        names.append(f"unknown bits 0x{unknown:02X}")
    return ", ".join(names) if names else "none"
