"""Dynamixel X-series control tables and unit conversions, kept as data.

Source: ROBOTIS e-manual control tables of the XC330-M288, XL330-M288 and XM430-W350. The addresses
used here are identical across the three models; ranges, initial values, units (current) and model
numbers differ per model (:data:`MODELS`). Multi-byte items are little-endian on the wire. Everything a
servo model fixes (ranges, factory values, baud rates, operating modes, the tick <-> radian scale)
lives here, and the configuration validators and the emulator read it from here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypedDict

from omnipianist.hardware.errors import ControlTableError


@dataclass(frozen=True)
class ControlItem:
    """One control-table entry, with the e-manual's access, range, unit and initial value as data.

    Attributes:
        name: snake_case item name (the key callers use).
        address: byte address in the control table.
        size: width in bytes (1, 2 or 4).
        signed: whether the value is two's complement.
        writable: ``False`` for read-only items (access ``R``; a WRITE gets Access Error 0x07).
        lo, hi: the e-manual's value range (inclusive), ``None`` where it gives none (read-only items);
            a WRITE outside it gets Data Range Error 0x04.
        initial: the factory (power-on) value, ``None`` where the e-manual gives ``-`` (set at power-on
            from other items, e.g. Goal Position := Present Position).
        unit: the value's unit as the e-manual writes it (``"0.229 rev/min"``), ``""`` if unitless.
        choices: the only accepted values where the range has holes (Operating Mode 0, 1, 3, 4, 5, 16).
        bound: a goal item whose range is set by other items: the name of the limit item (Goal Current
            within +-Current Limit) or ``"position_limits"`` (Goal Position, see :func:`goal_position_range`).
    """

    name: str
    address: int
    size: int
    signed: bool = False
    writable: bool = True
    lo: int | None = None
    hi: int | None = None
    initial: int | None = None
    unit: str = ""
    choices: tuple[int, ...] | None = None
    bound: str | None = None

    @property
    def eeprom(self) -> bool:
        """In the EEPROM area (address < 64): writable only while Torque Enable is 0."""
        return self.address < EEPROM_END

    @property
    def access(self) -> str:
        """``"RW"`` or ``"R"`` as in the e-manual."""
        return "RW" if self.writable else "R"

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

    def range_problem(self, value: int) -> str | None:
        """Why ``value`` is outside this item's static range (``None`` when it is inside)."""
        if self.choices is not None:
            if value not in self.choices:
                return f"{self.name} = {value} is not one of {', '.join(map(str, self.choices))}"
            return None
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            return f"{self.name} = {value} is outside {self.lo} .. {self.hi}"
        return None


EEPROM_END = 64
"""First RAM address; EEPROM items (below it) can only be written while Torque Enable is 0."""

EXTENDED_POSITION_LIMIT = 1_048_575
"""Goal Position range in Extended Position and Current-based Position mode: +-256 rev [ticks]."""

BUS_WATCHDOG_TRIPPED = 0xFF
"""Bus Watchdog register value after a trip (-1 as a signed byte); goals are refused until 0 is written."""

OPERATING_MODES: dict[int, str] = {
    0: "current",
    1: "velocity",
    3: "position",
    4: "extended position",
    5: "current-based position",
    16: "PWM",
}
"""Operating Mode (address 11) values of the X330 series."""

OPERATING_MODE_POSITION = 3
OPERATING_MODE_EXTENDED_POSITION = 4
"""Multi-turn position control (the forearm rail: a belt or pinion turns many times over the travel)."""
OPERATING_MODE_CURRENT_BASED_POSITION = 5
"""Operating Mode value the LEAP Hand runs in (position control with a current limit)."""
BAUD_RATES: dict[int, int] = {
    0: 9_600,
    1: 57_600,
    2: 115_200,
    3: 1_000_000,
    4: 2_000_000,
    5: 3_000_000,
    6: 4_000_000,
}
"""Baud Rate (address 8) register value -> line rate [bit/s] (X330 series)."""

FACTORY_BAUD_RATE = 57_600
"""Line rate of a servo as shipped (Baud Rate register 1)."""

_INDIRECT_COUNT = 20


def _items(*items: ControlItem) -> dict[str, ControlItem]:
    return {item.name: item for item in items}


def _indirect() -> tuple[ControlItem, ...]:
    addresses = tuple(
        ControlItem(f"indirect_address_{k + 1}", 168 + 2 * k, 2, lo=64, hi=227, initial=208 + k)
        for k in range(_INDIRECT_COUNT)
    )
    data = tuple(ControlItem(f"indirect_data_{k + 1}", 208 + k, 1, lo=0, hi=255, initial=0) for k in range(_INDIRECT_COUNT))
    return addresses + data


_RPM = "0.229 rev/min"

X_SERIES: dict[str, ControlItem] = _items(
    # EEPROM area (e-manual, XC330-M288 "Control Table of EEPROM Area")
    ControlItem("model_number", 0, 2, writable=False, initial=1240),
    ControlItem("model_information", 2, 4, writable=False),
    ControlItem("firmware_version", 6, 1, writable=False),
    ControlItem("id", 7, 1, lo=0, hi=252, initial=1),
    ControlItem("baud_rate", 8, 1, lo=0, hi=6, initial=1),  # see BAUD_RATES
    ControlItem("return_delay_time", 9, 1, lo=0, hi=254, initial=250, unit="2 us"),  # the project sets 0
    ControlItem("drive_mode", 10, 1, lo=0, hi=5, initial=0),
    ControlItem("operating_mode", 11, 1, initial=3, choices=tuple(OPERATING_MODES)),
    ControlItem("secondary_id", 12, 1, lo=0, hi=255, initial=255),  # 253..255: no secondary id
    ControlItem("protocol_type", 13, 1, initial=2, choices=(2, 22)),  # 2: Protocol 2.0, 22: 2.0 for legacy
    ControlItem("homing_offset", 20, 4, signed=True, lo=-1_044_479, hi=1_044_479, initial=0, unit="1 pulse"),
    ControlItem("moving_threshold", 24, 4, lo=0, hi=1023, initial=10, unit=_RPM),
    ControlItem("temperature_limit", 31, 1, lo=0, hi=100, initial=70, unit="1 degC"),
    ControlItem("max_voltage_limit", 32, 2, lo=31, hi=70, initial=70, unit="0.1 V"),
    ControlItem("min_voltage_limit", 34, 2, lo=31, hi=70, initial=35, unit="0.1 V"),
    ControlItem("pwm_limit", 36, 2, lo=0, hi=885, initial=885, unit="0.113 %"),
    ControlItem("current_limit", 38, 2, lo=0, hi=2352, initial=2352, unit="1 mA"),
    ControlItem("velocity_limit", 44, 4, lo=0, hi=2047, initial=350, unit=_RPM),
    ControlItem("max_position_limit", 48, 4, lo=0, hi=4095, initial=4095, unit="1 pulse"),
    ControlItem("min_position_limit", 52, 4, lo=0, hi=4095, initial=0, unit="1 pulse"),
    ControlItem("startup_configuration", 60, 1, lo=0, hi=3, initial=0),
    ControlItem("pwm_slope", 62, 1, lo=1, hi=255, initial=140, unit="1.977 mV/ms"),
    ControlItem("shutdown", 63, 1, lo=0, hi=255, initial=52),  # bit field (overload, shock, encoder, heat, voltage)
    # RAM area (e-manual, "Control Table of RAM Area")
    ControlItem("torque_enable", 64, 1, lo=0, hi=1, initial=0),
    ControlItem("led", 65, 1, lo=0, hi=1, initial=0),
    ControlItem("status_return_level", 68, 1, lo=0, hi=2, initial=2),  # 0 ping only, 1 ping+read, 2 all
    ControlItem("registered_instruction", 69, 1, writable=False, initial=0),
    ControlItem("hardware_error_status", 70, 1, writable=False, initial=0),
    ControlItem("velocity_i_gain", 76, 2, lo=0, hi=16383, initial=1600),
    ControlItem("velocity_p_gain", 78, 2, lo=0, hi=16383, initial=50),
    ControlItem("position_d_gain", 80, 2, lo=0, hi=16383, initial=500),
    ControlItem("position_i_gain", 82, 2, lo=0, hi=16383, initial=0),
    ControlItem("position_p_gain", 84, 2, lo=0, hi=16383, initial=1100),
    ControlItem("feedforward_2nd_gain", 88, 2, lo=0, hi=16383, initial=0),
    ControlItem("feedforward_1st_gain", 90, 2, lo=0, hi=16383, initial=0),
    ControlItem("bus_watchdog", 98, 1, lo=0, hi=127, initial=0, unit="20 ms"),  # 0 = off; 255 = tripped (servo only)
    ControlItem("goal_pwm", 100, 2, signed=True, unit="0.113 %", bound="pwm_limit"),
    ControlItem("goal_current", 102, 2, signed=True, unit="1 mA", bound="current_limit"),
    ControlItem("goal_velocity", 104, 4, signed=True, unit=_RPM, bound="velocity_limit"),
    ControlItem("profile_acceleration", 108, 4, lo=0, hi=32767, initial=0, unit="214.577 rev/min^2"),
    ControlItem("profile_velocity", 112, 4, lo=0, hi=32767, initial=0, unit=_RPM),
    ControlItem("goal_position", 116, 4, signed=True, unit="1 pulse", bound="position_limits"),
    ControlItem("realtime_tick", 120, 2, writable=False, unit="1 ms"),
    ControlItem("moving", 122, 1, writable=False, initial=0),
    ControlItem("moving_status", 123, 1, writable=False, initial=0),
    ControlItem("present_pwm", 124, 2, signed=True, writable=False, unit="0.113 %"),
    ControlItem("present_current", 126, 2, signed=True, writable=False, unit="1 mA"),
    ControlItem("present_velocity", 128, 4, signed=True, writable=False, unit=_RPM),
    ControlItem("present_position", 132, 4, signed=True, writable=False, unit="1 pulse"),
    ControlItem("velocity_trajectory", 136, 4, signed=True, writable=False, unit=_RPM),
    ControlItem("position_trajectory", 140, 4, signed=True, writable=False, unit="1 pulse"),
    ControlItem("present_input_voltage", 144, 2, writable=False, unit="0.1 V"),
    ControlItem("present_temperature", 146, 1, writable=False, unit="1 degC"),
    ControlItem("backup_ready", 147, 1, writable=False),
    *_indirect(),
)
"""The XC330-M288 control table (addresses, sizes, access, ranges, initial values, units; e-manual).

The XL330-M288 and XM430-W350 share the addresses; their tables (:data:`XL330_TABLE`,
:data:`XM430_TABLE`) differ in the items :func:`_with` replaces."""

X_SERIES_TABLE_SIZE = 228
"""Bytes an X330 control table spans (Indirect Data 20 ends at 227); used by the emulator."""


def goal_position_range(operating_mode: int, min_limit: int, max_limit: int) -> tuple[int, int]:
    """Goal Position range in an Operating Mode: the Min/Max Position Limit in Position mode (3),
    +-256 rev in Extended Position (4) and Current-based Position (5) mode (the limits are unused)."""
    if operating_mode == OPERATING_MODE_POSITION:
        return (min_limit, max_limit)
    return (-EXTENDED_POSITION_LIMIT, EXTENDED_POSITION_LIMIT)


class _ItemChanges(TypedDict, total=False):
    """The fields of a :class:`ControlItem` in which the X330 models' tables differ."""

    lo: int
    hi: int
    initial: int


def _with(table: dict[str, ControlItem], **changes: _ItemChanges) -> dict[str, ControlItem]:
    from dataclasses import replace

    out = dict(table)
    for name, fields in changes.items():
        out[name] = replace(table[name], **fields)
    return out


XL330_TABLE = _with(
    X_SERIES,
    model_number={"initial": 1200},
    current_limit={"hi": 1750, "initial": 1750},
    velocity_limit={"initial": 445},
    position_p_gain={"initial": 400},
    position_d_gain={"initial": 0},
    velocity_p_gain={"initial": 180},
)
"""XL330-M288: the X330 table with its own current limit, velocity limit and gains."""

XM430_TABLE = _with(
    X_SERIES,
    model_number={"initial": 1020},
    current_limit={"hi": 1193, "initial": 1193},
    velocity_limit={"initial": 200},
    temperature_limit={"initial": 80},
    max_voltage_limit={"lo": 95, "hi": 160, "initial": 160},
    min_voltage_limit={"lo": 95, "hi": 160, "initial": 95},
    position_p_gain={"initial": 800},
    position_d_gain={"initial": 0},
    velocity_p_gain={"initial": 100},
    velocity_i_gain={"initial": 1920},
)
"""XM430-W350: same addresses; other limits, voltages and gains (only these items differ here)."""


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
        no_load_rpm: no-load speed at the recommended voltage [rev/min] (e-manual specifications).
    """

    name: str
    number: int
    table: dict[str, ControlItem]
    current_ma_per_unit: float
    no_load_rpm: float

    @property
    def current_limit_max_ma(self) -> float:
        """Largest Current Limit (address 38) [mA]."""
        hi = self.table["current_limit"].hi
        assert hi is not None
        return hi * self.current_ma_per_unit

    def item(self, name: str) -> ControlItem:
        return item(name, self.table)


MODELS: dict[int, ServoModel] = {
    XC330_M288: ServoModel("XC330-M288", XC330_M288, X_SERIES, current_ma_per_unit=1.0, no_load_rpm=81.0),
    XL330_M288: ServoModel("XL330-M288", XL330_M288, XL330_TABLE, current_ma_per_unit=1.0, no_load_rpm=103.0),
    XM430_W350: ServoModel("XM430-W350", XM430_W350, XM430_TABLE, current_ma_per_unit=2.69, no_load_rpm=46.0),
}
"""Known models by model number. The LEAP Hand uses XC330-M288 (no-load speed 81 rpm at 5.0 V)."""

MODELS_BY_NAME: dict[str, ServoModel] = {m.name: m for m in MODELS.values()}


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

POSITION_TICKS_MIN = 0
POSITION_TICKS_MAX = TICKS_PER_REV - 1
"""Single-turn position range [ticks] (Position mode; Min/Max Position Limit 0..4095) that joint limits
must map into."""

RAD_PER_TICK = 2.0 * math.pi / TICKS_PER_REV
"""Servo angle per position tick [rad]: the one tick <-> radian scale (``ticks_to_rad``, calibration)."""

VELOCITY_RPM_PER_UNIT = 0.229
"""Present/Goal Velocity scale [rev/min per unit]."""

RETURN_DELAY_US_PER_UNIT = 2.0
"""Return Delay Time scale [us per unit]."""

BUS_WATCHDOG_MS_PER_UNIT = 20.0
"""Bus Watchdog scale [ms per unit]."""


def ticks_to_rad(ticks: int | float) -> float:
    """Position [ticks] to angle [rad], with :data:`CENTER_TICKS` at 0 rad."""
    return (ticks - CENTER_TICKS) * RAD_PER_TICK


def rad_to_ticks(angle_rad: float) -> int:
    """Angle [rad] to the nearest position [ticks], with 0 rad at :data:`CENTER_TICKS`."""
    return round(angle_rad / RAD_PER_TICK) + CENTER_TICKS


def velocity_to_rad_s(units: int | float) -> float:
    """Velocity [units of 0.229 rpm] to [rad/s]."""
    return units * VELOCITY_RPM_PER_UNIT * 2.0 * math.pi / 60.0


def current_to_ma(units: int | float, model_number: int = XC330_M288) -> float:
    """Current [units] to [mA] for this model (XC330/XL330: 1.0 mA per unit, XM430: 2.69)."""
    return units * model(model_number).current_ma_per_unit


def ma_to_current(milliamps: float, model_number: int = XC330_M288) -> int:
    """Current [mA] to the nearest [units] for this model."""
    return round(milliamps / model(model_number).current_ma_per_unit)


def position_to_revolutions(ticks: int | float) -> float:
    """Position [ticks] to shaft revolutions from the 2048-tick centre (multi-turn modes)."""
    return (ticks - CENTER_TICKS) / TICKS_PER_REV


def baud_rate_value(baudrate: int) -> int:
    """The Baud Rate register value for ``baudrate`` [bit/s]; ControlTableError if the X330 has none."""
    for value, rate in BAUD_RATES.items():
        if rate == baudrate:
            return value
    raise ControlTableError(f"{baudrate} bit/s is not a Dynamixel X330 baud rate ({', '.join(map(str, BAUD_RATES.values()))})")


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
