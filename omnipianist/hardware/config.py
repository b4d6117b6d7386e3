"""Hardware configuration: the YAML files in ``hardware_config/`` as validated dataclasses.

Files (see ``hardware_config/README.md`` for every field):

* ``<embodiment>_<side>.yaml`` (``leap_left.yaml``, ``leap_right.yaml``): one hand -> :class:`HandConfig`
  (per-joint :class:`~omnipianist.hardware.calibration.JointCalibration` and the forearm :class:`RailConfig`);
* ``bus.yaml``: the serial buses -> ``dict[name, BusConfig]``;
* ``safety.yaml``: the safety filter's parameters -> :class:`SafetyConfig`.

Validation is strict: a missing key, an unknown key, a wrong type, a duplicate key or servo id, a limit
outside the model's joint range, a joint of the embodiment missing from the file, a direction other
than +-1, or malformed YAML raises :class:`HardwareConfigError` (a ``ConfigError``) whose message reads
``<file>: <key.path>: <what is wrong>`` (YAML syntax errors give the line and column instead).

The joint order is never typed here: it comes from the embodiment (``get_embodiment(name)``) and the
model's joint ranges from the scene spec (``build_spec``), the single sources of both.
"""

from __future__ import annotations

import difflib
import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from omnipianist.errors import ConfigError, OmnipianistError
from omnipianist.hardware.calibration import (
    POSITION_TICKS_MAX,
    POSITION_TICKS_MIN,
    JointCalibration,
    PositionGains,
    joint_rad_to_ticks,
    ticks_to_joint_rad,
)
from omnipianist.hardware.dynamixel.tables import (
    BUS_WATCHDOG_MS_PER_UNIT,
    OPERATING_MODE_CURRENT_BASED_POSITION,
    RETURN_DELAY_US_PER_UNIT,
)
from omnipianist.safety.filter import EstopConfig, SafetyFilter, WatchdogConfig
from sim_training.constants import HAND_SIDES
from sim_training.models.embodiment import SIDE_PREFIX, Embodiment, get_embodiment

__all__ = [
    "HARDWARE_CONFIG_DIR",
    "BusConfig",
    "HandConfig",
    "HardwareConfig",
    "HardwareConfigError",
    "JointCalibration",
    "PositionGains",
    "RailConfig",
    "RailSlide",
    "RateGroup",
    "SafetyConfig",
    "filter_limits",
    "joint_rad_to_ticks",
    "load_bus_config",
    "load_hand_config",
    "load_hardware",
    "load_safety_config",
    "model_joint_ranges",
    "servo_order",
    "ticks_to_joint_rad",
]

def _shipped_hardware_config() -> Path:
    from omnipianist.resources import candidates

    found = [c for c in candidates("hardware_config") if (c / "safety.yaml").is_file()]
    return found[0] if found else candidates("hardware_config")[0]


HARDWARE_CONFIG_DIR = _shipped_hardware_config()
"""The shipped ``hardware_config/`` folder (the repository's, or the installed share dir's)."""


def shipped_or_given(directory: str | Path) -> Path:
    """``directory`` as given when it exists (or is absolute); else the shipped folder of that
    relative name (``hardware_config``, ``hardware_config/hil``), so that configs naming them work
    from any working directory and from an installed package."""
    d = Path(directory)
    if d.is_absolute() or d.is_dir():
        return d
    return HARDWARE_CONFIG_DIR.parent / d

SERVO_ID_MAX = 252
"""Highest assignable Dynamixel id (253 reserved, 254 broadcast)."""
GAIN_MAX = 16383
"""Largest Position P/I/D gain value (Dynamixel units)."""
CURRENT_LIMIT_MAX_MA: dict[str, float] = {"XC330-M288": 1750.0, "XL330-M288": 1750.0, "XM430-W350": 1193 * 2.69}
"""Largest Current Limit per servo model [mA] (ROBOTIS e-manual, Current Limit address 38)."""
SUPPORTED_BAUDRATES: tuple[int, ...] = (9600, 57600, 115200, 1_000_000, 2_000_000, 3_000_000, 4_000_000)
"""Baud rates an X330 servo supports [bit/s]."""
RETURN_DELAY_US_MAX = 254 * RETURN_DELAY_US_PER_UNIT
BUS_WATCHDOG_UNITS_MAX = 127
RAIL_SPEED_MAX_M_S = 5.0
"""Sanity bound on a rail's speed [m/s]; anything faster is a typo."""


class HardwareConfigError(ConfigError):
    """A hardware configuration file is invalid.

    Attributes:
        file: the file (as given to the loader).
        key: dotted key path inside it (``joints.if_mcp.servo_id``), ``""`` for the whole file.
        problem: what was wrong.
    """

    def __init__(self, file: str | Path, key: str, problem: str) -> None:
        self.file = str(file)
        self.key = key
        self.problem = problem
        super().__init__(f"{self.file}: {key}: {problem}" if key else f"{self.file}: {problem}")


# --- dataclasses ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RailSlide:
    """One forearm slide (not a Dynamixel; driver TBD).

    Attributes:
        name: unprefixed slide name (``forearm_tx`` along the keyboard, ``forearm_ty`` toward the keys).
        limits_m: (lower, upper) travel [m] relative to the home position, inside the model's range.
        max_speed_m_s: the axis' rated top speed [m/s].
    """

    name: str
    limits_m: tuple[float, float]
    max_speed_m_s: float


@dataclass(frozen=True)
class RailConfig:
    """The forearm carriage of one hand.

    Attributes:
        driver: name of the rail driver (``"tbd"`` until the axis is built).
        port: its device, or ``None``.
        slides: per unprefixed slide name, in the embodiment's slide order.
    """

    driver: str
    port: str | None
    slides: Mapping[str, RailSlide]


@dataclass(frozen=True)
class HandConfig:
    """One hand: its bus, every joint's servo calibration, and its forearm rail.

    Attributes:
        path: the file it was read from.
        side: ``left`` or ``right``.
        embodiment: embodiment name (``leap``).
        servo_model: Dynamixel model name (``XC330-M288``).
        bus: name of the bus in ``bus.yaml`` the servos are on.
        joints: per unprefixed joint name, in the hand model's kinematic order.
        rail: the forearm rail.
    """

    path: Path
    side: str
    embodiment: str
    servo_model: str
    bus: str
    joints: Mapping[str, JointCalibration]
    rail: RailConfig

    @property
    def prefix(self) -> str:
        """Joint-name prefix of this side (``lh_`` / ``rh_``)."""
        return SIDE_PREFIX[self.side]

    def get_embodiment(self) -> Embodiment:
        """The embodiment this hand belongs to."""
        return get_embodiment(self.embodiment)


@dataclass(frozen=True)
class BusConfig:
    """One Dynamixel bus (one U2D2, one hand).

    Attributes:
        name: bus name (referenced by a hand file's ``bus``).
        port: serial device (``/dev/omnipianist_left``: the udev symlink).
        baudrate: [bit/s] (4000000).
        latency_timer_ms: FTDI latency timer the udev rule sets [ms] (1); checked by the driver.
        return_delay_us: Return Delay Time to write [us] (0; multiple of 2).
        timeout_s: reply timeout per transaction [s].
        retries: extra attempts after a timeout or CRC error.
        operating_mode: Operating Mode (5 = current-based position).
        bus_watchdog_units: Bus Watchdog [units of 20 ms] (1..127); the servos stop if the host is
            silent that long.
    """

    name: str
    port: str
    baudrate: int
    latency_timer_ms: int
    return_delay_us: int
    timeout_s: float
    retries: int
    operating_mode: int
    bus_watchdog_units: int

    @property
    def return_delay_units(self) -> int:
        """Return Delay Time register value [units of 2 us]."""
        return round(self.return_delay_us / RETURN_DELAY_US_PER_UNIT)

    @property
    def bus_watchdog_ms(self) -> float:
        """Bus watchdog period [ms]."""
        return self.bus_watchdog_units * BUS_WATCHDOG_MS_PER_UNIT


@dataclass(frozen=True)
class RateGroup:
    """A group of hand joints with their own rate limit.

    Attributes:
        name: group name (free text, for messages).
        joints: unprefixed joint names.
        rad_per_s: rate limit [rad/s].
    """

    name: str
    joints: tuple[str, ...]
    rad_per_s: float


@dataclass(frozen=True)
class SafetyConfig:
    """Parameters of :class:`omnipianist.safety.SafetyFilter` for every hand.

    Attributes:
        path: the file it was read from.
        margin_rad: distance kept from each hand joint's limits [rad].
        max_rate_rad_per_s: default hand-joint rate limit [rad/s].
        rate_groups: joints with their own rate limit (each joint in at most one group).
        rail_margin_m: distance kept from each slide's limits [m].
        rail_max_speed_m_s: slide rate limit [m/s].
        watchdog: command watchdog timings.
        estop: e-stop heartbeat settings.
    """

    path: Path
    margin_rad: float
    max_rate_rad_per_s: float
    rate_groups: tuple[RateGroup, ...]
    rail_margin_m: float
    rail_max_speed_m_s: float
    watchdog: WatchdogConfig
    estop: EstopConfig

    def max_rate_for(self, joint: str) -> float:
        """Rate limit [rad/s] of an unprefixed hand joint (its group's, else the default)."""
        for group in self.rate_groups:
            if joint in group.joints:
                return group.rad_per_s
        return self.max_rate_rad_per_s


@dataclass(frozen=True)
class HardwareConfig:
    """Everything in ``hardware_config/``, cross-checked.

    Attributes:
        directory: the folder.
        hands: per side (left, right).
        buses: per bus name.
        safety: the safety parameters.
    """

    directory: Path
    hands: Mapping[str, HandConfig]
    buses: Mapping[str, BusConfig]
    safety: SafetyConfig

    def bus_for(self, side: str) -> BusConfig:
        """The bus of the hand on ``side``."""
        return self.buses[self.hands[side].bus]


# --- model ranges -----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _model_ranges(name: str, action_set: str, forearm_z: bool, side: str) -> dict[str, tuple[float, float]]:
    from sim_training.models.scene import build_spec  # heavy (MuJoCo); only needed for validation

    emb = get_embodiment(name, action_set=action_set, forearm_z=forearm_z)  # type: ignore[arg-type]
    spec = build_spec(emb)
    prefix = SIDE_PREFIX[side]
    out: dict[str, tuple[float, float]] = {}
    for joint in emb.slide_names + emb.hand.joint_names:
        lo, hi = spec.joint(prefix + joint).range
        out[joint] = (float(lo), float(hi))
    return out


def model_joint_ranges(embodiment: Embodiment, side: str) -> dict[str, tuple[float, float]]:
    """The model's range of every unprefixed joint of one side: hinges [rad] and slides [m]."""
    return dict(_model_ranges(embodiment.name, embodiment.action_set, embodiment.forearm_z, side))


# --- YAML reading -----------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader; duplicate keys are found on the node tree before construction."""


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _check_duplicates(file: str, node: yaml.Node, path: str) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[object, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else id(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise HardwareConfigError(file, _join(path, key), f"duplicate key (line {line}; first at line {seen[key]})")
            seen[key] = line
            _check_duplicates(file, value_node, _join(path, key))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_duplicates(file, item, f"{path}[{i}]")


def _read_yaml(path: str | Path) -> Any:
    """Parse one YAML file; HardwareConfigError for an unreadable file, bad syntax or duplicate keys."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise HardwareConfigError(file, "", f"cannot read file: {exc.strerror or exc}") from exc
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise HardwareConfigError(file, "", "empty file, expected a mapping")
        _check_duplicates(file, node, "")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise HardwareConfigError(file, "", f"{where}malformed YAML: {problem}") from exc
    finally:
        loader.dispose()


class _Reader:
    """Typed, path-tracking access to one file's parsed YAML; every error names file and key path."""

    def __init__(self, file: str | Path) -> None:
        self.file = str(file)

    def error(self, key: str, problem: str) -> HardwareConfigError:
        return HardwareConfigError(self.file, key, problem)

    def mapping(
        self,
        key: str,
        value: object,
        allowed: Sequence[str],
        *,
        optional: Sequence[str] = (),
        what: str = "key",
        missing_hint: str = "",
    ) -> dict[str, Any]:
        """``value`` as a dict whose keys are exactly ``allowed`` (``optional`` ones may be absent)."""
        if not isinstance(value, dict):
            raise self.error(key, f"expected a mapping, got {_type_name(value)}")
        for k in value:
            if not isinstance(k, str):
                raise self.error(_join(key, k), f"{what} must be a string, got {_type_name(k)}")
            if k not in allowed:
                close = difflib.get_close_matches(k, allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise self.error(_join(key, k), f"unknown {what}{hint}; allowed: {', '.join(allowed)}")
        for k in allowed:
            if k not in value and k not in optional:
                raise self.error(_join(key, k), f"missing {what}{missing_hint}")
        return value

    def integer(self, key: str, value: object, lo: int | None = None, hi: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected an integer, got {_type_name(value)} ({value!r})")
        self._check_range(key, value, lo, hi)
        return value

    def number(
        self, key: str, value: object, lo: float | None = None, hi: float | None = None, *, positive: bool = False
    ) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"expected a number, got {_type_name(value)} ({value!r})")
        x = float(value)
        if not math.isfinite(x):
            raise self.error(key, f"expected a finite number, got {value!r}")
        if positive and x <= 0:
            raise self.error(key, f"must be > 0, got {value!r}")
        self._check_range(key, x, lo, hi)
        return x

    def string(self, key: str, value: object, choices: Sequence[str] | None = None) -> str:
        if not isinstance(value, str) or not value:
            raise self.error(key, f"expected a non-empty string, got {_type_name(value)} ({value!r})")
        if choices is not None and value not in choices:
            raise self.error(key, f"{value!r} is not one of {', '.join(map(repr, choices))}")
        return value

    def boolean(self, key: str, value: object) -> bool:
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {_type_name(value)} ({value!r})")
        return value

    def interval(self, key: str, value: object, unit: str) -> tuple[float, float]:
        """A ``[lo, hi]`` pair of numbers with lo < hi."""
        if not isinstance(value, list) or len(value) != 2:
            raise self.error(key, f"expected a list [lower, upper] in {unit}, got {value!r}")
        lo = self.number(f"{key}[0]", value[0])
        hi = self.number(f"{key}[1]", value[1])
        if not lo < hi:
            raise self.error(key, f"lower {lo} must be < upper {hi} ({unit})")
        return (lo, hi)

    def within(self, key: str, interval: tuple[float, float], model: tuple[float, float], unit: str) -> None:
        lo, hi = interval
        if lo < model[0] or hi > model[1]:
            raise self.error(
                key, f"[{lo}, {hi}] {unit} is outside the model's joint range [{model[0]:.6g}, {model[1]:.6g}] {unit}"
            )

    def _check_range(self, key: str, x: float, lo: float | None, hi: float | None) -> None:
        if (lo is not None and x < lo) or (hi is not None and x > hi):
            lo_s = "-inf" if lo is None else f"{lo:g}"
            hi_s = "inf" if hi is None else f"{hi:g}"
            raise self.error(key, f"{x:g} is outside [{lo_s}, {hi_s}]")


def _type_name(value: object) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _embodiment(r: _Reader, key: str, value: object) -> Embodiment:
    name = r.string(key, value)
    try:
        return get_embodiment(name)
    except OmnipianistError as exc:
        raise r.error(key, str(exc)) from exc


# --- hand -------------------------------------------------------------------------------------------

_HAND_KEYS = ("side", "embodiment", "servo_model", "bus", "joints", "rail")
_JOINT_KEYS = ("servo_id", "offset_rad", "direction", "limits_rad", "gains", "current_limit_ma")


def load_hand_config(path: str | Path) -> HandConfig:
    """Read and validate one hand file (``leap_left.yaml``).

    Raises:
        HardwareConfigError: message ``<file>: <key.path>: <problem>``.
    """
    r = _Reader(path)
    top = r.mapping("", _read_yaml(path), _HAND_KEYS)
    side = r.string("side", top["side"], HAND_SIDES)
    emb = _embodiment(r, "embodiment", top["embodiment"])
    servo_model = r.string("servo_model", top["servo_model"], tuple(CURRENT_LIMIT_MAX_MA))
    bus = r.string("bus", top["bus"])
    ranges = model_joint_ranges(emb, side)

    hand_joints = emb.hand.joint_names
    joints_raw = r.mapping(
        "joints",
        top["joints"],
        hand_joints,
        what=f"joint of the {emb.name} hand",
        missing_hint=f" (every joint of the {emb.name} hand needs an entry)",
    )
    joints: dict[str, JointCalibration] = {}
    id_owner: dict[int, str] = {}
    for name in hand_joints:
        key = f"joints.{name}"
        cal = _joint(r, key, name, joints_raw[name], ranges[name], servo_model)
        if cal.servo_id in id_owner:
            raise r.error(f"{key}.servo_id", f"servo id {cal.servo_id} is already used by joints.{id_owner[cal.servo_id]}")
        id_owner[cal.servo_id] = name
        joints[name] = cal

    rail = _rail(r, top["rail"], emb, ranges)
    return HandConfig(Path(path), side, emb.name, servo_model, bus, joints, rail)


def _joint(
    r: _Reader, key: str, name: str, raw: object, model_range: tuple[float, float], servo_model: str
) -> JointCalibration:
    m = r.mapping(key, raw, _JOINT_KEYS)
    servo_id = r.integer(f"{key}.servo_id", m["servo_id"], 0, SERVO_ID_MAX)
    offset = r.number(f"{key}.offset_rad", m["offset_rad"], -math.pi, math.pi)
    direction = m["direction"]
    if isinstance(direction, bool) or direction not in (1, -1) or not isinstance(direction, int):
        raise r.error(f"{key}.direction", f"must be 1 or -1, got {direction!r}")
    limits = r.interval(f"{key}.limits_rad", m["limits_rad"], "rad")
    r.within(f"{key}.limits_rad", limits, model_range, "rad")
    g = r.mapping(f"{key}.gains", m["gains"], ("p", "i", "d"))
    gains = PositionGains(*(r.integer(f"{key}.gains.{k}", g[k], 0, GAIN_MAX) for k in ("p", "i", "d")))
    current = r.number(f"{key}.current_limit_ma", m["current_limit_ma"], 0, CURRENT_LIMIT_MAX_MA[servo_model], positive=True)
    cal = JointCalibration(name, servo_id, offset, direction, limits, gains, current)
    lo_t, hi_t = cal.limit_ticks()
    if lo_t < POSITION_TICKS_MIN or hi_t > POSITION_TICKS_MAX:
        raise r.error(
            f"{key}.limits_rad",
            f"with offset_rad {offset} and direction {direction} the limits map to ticks [{lo_t}, {hi_t}], "
            f"outside the single-turn range [{POSITION_TICKS_MIN}, {POSITION_TICKS_MAX}]",
        )
    return cal


def _rail(r: _Reader, raw: object, emb: Embodiment, ranges: dict[str, tuple[float, float]]) -> RailConfig:
    m = r.mapping("rail", raw, ("driver", "port", "slides"))
    driver = r.string("rail.driver", m["driver"])
    port = None if m["port"] is None else r.string("rail.port", m["port"])
    slides_raw = r.mapping(
        "rail.slides", m["slides"], emb.slide_names, what="slide", missing_hint=" (every forearm slide needs an entry)"
    )
    slides: dict[str, RailSlide] = {}
    for name in emb.slide_names:
        key = f"rail.slides.{name}"
        s = r.mapping(key, slides_raw[name], ("limits_m", "max_speed_m_s"))
        limits = r.interval(f"{key}.limits_m", s["limits_m"], "m")
        r.within(f"{key}.limits_m", limits, ranges[name], "m")
        speed = r.number(f"{key}.max_speed_m_s", s["max_speed_m_s"], hi=RAIL_SPEED_MAX_M_S, positive=True)
        slides[name] = RailSlide(name, limits, speed)
    return RailConfig(driver, port, slides)


# --- bus --------------------------------------------------------------------------------------------

_BUS_KEYS = (
    "port",
    "baudrate",
    "latency_timer_ms",
    "return_delay_us",
    "timeout_s",
    "retries",
    "operating_mode",
    "bus_watchdog_units",
)


def load_bus_config(path: str | Path) -> dict[str, BusConfig]:
    """Read and validate ``bus.yaml``: ``{buses: {<name>: {port, baudrate, ...}}}``.

    Raises:
        HardwareConfigError: message ``<file>: <key.path>: <problem>`` (also for two buses on one port).
    """
    r = _Reader(path)
    top = r.mapping("", _read_yaml(path), ("buses",))
    raw = top["buses"]
    if not isinstance(raw, dict) or not raw:
        raise r.error("buses", f"expected a non-empty mapping of bus name -> settings, got {raw!r}")
    buses: dict[str, BusConfig] = {}
    port_owner: dict[str, str] = {}
    for name in raw:
        if not isinstance(name, str):
            raise r.error(f"buses.{name}", "bus name must be a string")
        key = f"buses.{name}"
        m = r.mapping(key, raw[name], _BUS_KEYS)
        port = r.string(f"{key}.port", m["port"])
        if port in port_owner:
            raise r.error(f"{key}.port", f"port {port} is already used by buses.{port_owner[port]}")
        port_owner[port] = name
        baud = r.integer(f"{key}.baudrate", m["baudrate"])
        if baud not in SUPPORTED_BAUDRATES:
            raise r.error(f"{key}.baudrate", f"{baud} is not a Dynamixel X330 baud rate ({SUPPORTED_BAUDRATES})")
        delay = r.integer(f"{key}.return_delay_us", m["return_delay_us"], 0, int(RETURN_DELAY_US_MAX))
        if delay % int(RETURN_DELAY_US_PER_UNIT):
            raise r.error(f"{key}.return_delay_us", f"{delay} is not a multiple of {RETURN_DELAY_US_PER_UNIT:g} us")
        mode = r.integer(f"{key}.operating_mode", m["operating_mode"])
        if mode != OPERATING_MODE_CURRENT_BASED_POSITION:
            raise r.error(
                f"{key}.operating_mode",
                f"{mode} is not supported: the hand driver runs current-based position "
                f"({OPERATING_MODE_CURRENT_BASED_POSITION})",
            )
        buses[name] = BusConfig(
            name=name,
            port=port,
            baudrate=baud,
            latency_timer_ms=r.integer(f"{key}.latency_timer_ms", m["latency_timer_ms"], 1, 255),
            return_delay_us=delay,
            timeout_s=r.number(f"{key}.timeout_s", m["timeout_s"], hi=1.0, positive=True),
            retries=r.integer(f"{key}.retries", m["retries"], 0, 10),
            operating_mode=mode,
            bus_watchdog_units=r.integer(f"{key}.bus_watchdog_units", m["bus_watchdog_units"], 1, BUS_WATCHDOG_UNITS_MAX),
        )
    return buses


# --- safety -----------------------------------------------------------------------------------------

_SAFETY_KEYS = ("margin_rad", "max_rate_rad_per_s", "rail", "watchdog", "estop")


def load_safety_config(path: str | Path, embodiment: Embodiment | str = "leap") -> SafetyConfig:
    """Read and validate ``safety.yaml``; rate-group joints are checked against ``embodiment``.

    Raises:
        HardwareConfigError: message ``<file>: <key.path>: <problem>``.
    """
    emb = get_embodiment(embodiment) if isinstance(embodiment, str) else embodiment
    r = _Reader(path)
    top = r.mapping("", _read_yaml(path), _SAFETY_KEYS)
    margin = r.number("margin_rad", top["margin_rad"], 0.0, 0.5)

    rates = r.mapping("max_rate_rad_per_s", top["max_rate_rad_per_s"], ("default", "groups"), optional=("groups",))
    default_rate = r.number("max_rate_rad_per_s.default", rates["default"], positive=True)
    groups: list[RateGroup] = []
    owner: dict[str, str] = {}
    groups_raw = rates.get("groups") or {}
    if not isinstance(groups_raw, dict):
        raise r.error(
            "max_rate_rad_per_s.groups", f"expected a mapping of group name -> {{joints, rad_per_s}}, got {groups_raw!r}"
        )
    for gname, graw in groups_raw.items():
        key = f"max_rate_rad_per_s.groups.{gname}"
        g = r.mapping(key, graw, ("joints", "rad_per_s"))
        if not isinstance(g["joints"], list) or not g["joints"]:
            raise r.error(f"{key}.joints", f"expected a non-empty list of joint names, got {g['joints']!r}")
        names: list[str] = []
        for i, j in enumerate(g["joints"]):
            jkey = f"{key}.joints[{i}]"
            j = r.string(jkey, j)
            if j not in emb.hand.joint_names:
                close = difflib.get_close_matches(j, emb.hand.joint_names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise r.error(jkey, f"{j!r} is not a joint of the {emb.name} hand{hint}")
            if j in owner:
                raise r.error(jkey, f"{j} is already in group {owner[j]}")
            owner[j] = str(gname)
            names.append(j)
        groups.append(RateGroup(str(gname), tuple(names), r.number(f"{key}.rad_per_s", g["rad_per_s"], positive=True)))

    rail = r.mapping("rail", top["rail"], ("margin_m", "max_speed_m_s"))
    wd = r.mapping("watchdog", top["watchdog"], ("hold_after_s", "torque_off_after_s"))
    hold = r.number("watchdog.hold_after_s", wd["hold_after_s"], positive=True)
    off = r.number("watchdog.torque_off_after_s", wd["torque_off_after_s"], positive=True)
    if not off > hold:
        raise r.error("watchdog.torque_off_after_s", f"{off} s must be > hold_after_s ({hold} s)")
    es = r.mapping("estop", top["estop"], ("heartbeat_timeout_s", "require_heartbeat"))
    return SafetyConfig(
        path=Path(path),
        margin_rad=margin,
        max_rate_rad_per_s=default_rate,
        rate_groups=tuple(groups),
        rail_margin_m=r.number("rail.margin_m", rail["margin_m"], 0.0, 0.1),
        rail_max_speed_m_s=r.number("rail.max_speed_m_s", rail["max_speed_m_s"], hi=RAIL_SPEED_MAX_M_S, positive=True),
        watchdog=WatchdogConfig(hold_after_s=hold, torque_off_after_s=off),
        estop=EstopConfig(
            heartbeat_timeout_s=r.number("estop.heartbeat_timeout_s", es["heartbeat_timeout_s"], positive=True),
            require_heartbeat=r.boolean("estop.require_heartbeat", es["require_heartbeat"]),
        ),
    )


# --- everything -------------------------------------------------------------------------------------


def load_hardware(directory: str | Path = HARDWARE_CONFIG_DIR, embodiment: str = "leap") -> HardwareConfig:
    """Load ``<embodiment>_left.yaml``, ``<embodiment>_right.yaml``, ``bus.yaml`` and ``safety.yaml``
    from ``directory`` and cross-check them: the file's side and embodiment match its name, each
    hand's bus exists and is its own, the safety margins leave every joint a non-empty range, and
    the safety rail speed does not exceed what a slide is rated for.

    Raises:
        HardwareConfigError: naming the file and key path that is wrong.
    """
    d = shipped_or_given(directory)
    emb = get_embodiment(embodiment)
    buses = load_bus_config(d / "bus.yaml")
    safety = load_safety_config(d / "safety.yaml", emb)
    hands: dict[str, HandConfig] = {}
    bus_owner: dict[str, str] = {}
    for side in HAND_SIDES:
        path = d / f"{embodiment}_{side}.yaml"
        hand = load_hand_config(path)
        if hand.side != side:
            raise HardwareConfigError(path, "side", f"is {hand.side!r} but the file name says {side!r}")
        if hand.embodiment != emb.name:
            raise HardwareConfigError(path, "embodiment", f"is {hand.embodiment!r}, expected {emb.name!r}")
        if hand.bus not in buses:
            raise HardwareConfigError(path, "bus", f"unknown bus {hand.bus!r}; {d / 'bus.yaml'} defines {sorted(buses)}")
        if hand.bus in bus_owner:
            raise HardwareConfigError(path, "bus", f"bus {hand.bus!r} is already used by the {bus_owner[hand.bus]} hand")
        bus_owner[hand.bus] = side
        for name, cal in hand.joints.items():
            lo, hi = cal.limits_rad
            if lo + safety.margin_rad >= hi - safety.margin_rad:
                raise HardwareConfigError(
                    safety.path,
                    "margin_rad",
                    f"{safety.margin_rad} leaves no range for {path.name}: joints.{name} [{lo}, {hi}]",
                )
        for name, slide in hand.rail.slides.items():
            lo, hi = slide.limits_m
            if lo + safety.rail_margin_m >= hi - safety.rail_margin_m:
                raise HardwareConfigError(
                    safety.path, "rail.margin_m", f"{safety.rail_margin_m} leaves no range for {path.name}: rail.slides.{name}"
                )
            if safety.rail_max_speed_m_s > slide.max_speed_m_s:
                raise HardwareConfigError(
                    safety.path,
                    "rail.max_speed_m_s",
                    f"{safety.rail_max_speed_m_s} m/s exceeds {path.name}: rail.slides.{name}.max_speed_m_s "
                    f"({slide.max_speed_m_s} m/s)",
                )
        hands[side] = hand
    return HardwareConfig(d, hands, buses, safety)


# --- joint order ------------------------------------------------------------------------------------


def _resolve(hand: HandConfig, embodiment: Embodiment | str | None) -> Embodiment:
    if embodiment is None:
        return hand.get_embodiment()
    return get_embodiment(embodiment) if isinstance(embodiment, str) else embodiment


def servo_order(hand: HandConfig, embodiment: Embodiment | str | None = None) -> list[tuple[str, int]]:
    """``(prefixed joint name, servo id)`` for each hand actuator, in the embodiment's actuator order
    (``embodiment.actuator_names(side)`` without the forearm slides, which are not servos).

    A command vector in that order maps entry ``k`` to servo ``servo_order(...)[k][1]``.

    Raises:
        ConfigError: the embodiment differs from the hand's, or an actuator drives several joints
            (no single servo to map it to).
    """
    emb = _resolve(hand, embodiment)
    if emb.name != hand.embodiment:
        raise ConfigError(f"{hand.path}: embodiment: hand is {hand.embodiment!r}, asked to map for {emb.name!r}")
    out: list[tuple[str, int]] = []
    for actuator in emb.hand_actuators:
        joints = emb.hand.actuator_joints[actuator]
        if len(joints) != 1:
            raise ConfigError(f"{hand.path}: actuator {actuator} drives {joints}: no single servo to map it to")
        out.append((hand.prefix + actuator, hand.joints[joints[0]].servo_id))
    return out


def safety_filter_for(hand: HandConfig, safety: SafetyConfig, dt: float, *, include_rails: bool = True) -> SafetyFilter:
    """The safety filter for one hand, in the embodiment's actuator order (prefixed names).

    With ``include_rails`` (the policy node) the vector is the hand's joints then the forearm slides,
    exactly ``embodiment.actuator_names(side)``; without (the Dynamixel driver) it is the hand joints
    only, in :func:`servo_order`. (Here, not in the safety package: the filter knows no hardware.)
    """
    names, lo, hi, margin, rate = filter_limits(hand, safety, include_rails=include_rails)
    return SafetyFilter(names, lo, hi, margin, rate, dt, safety.watchdog, safety.estop)


def filter_limits(
    hand: HandConfig, safety: SafetyConfig, *, include_rails: bool = True, embodiment: Embodiment | str | None = None
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-entry ``(names, lower, upper, margin, max_rate)`` for a :class:`~omnipianist.safety.SafetyFilter`
    of one hand, in the embodiment's actuator order: hand joints [rad, rad/s], then (with
    ``include_rails``) the forearm slides [m, m/s]. Names are prefixed (``lh_if_mcp``)."""
    emb = _resolve(hand, embodiment)
    names: list[str] = []
    rows: list[tuple[float, float, float, float]] = []
    for (prefixed, _), actuator in zip(servo_order(hand, emb), emb.hand_actuators, strict=True):
        joint = emb.hand.actuator_joints[actuator][0]
        lo, hi = hand.joints[joint].limits_rad
        names.append(prefixed)
        rows.append((lo, hi, safety.margin_rad, safety.max_rate_for(joint)))
    if include_rails:
        for slide in emb.slide_names:
            s = hand.rail.slides[slide]
            names.append(hand.prefix + slide)
            rows.append((*s.limits_m, safety.rail_margin_m, safety.rail_max_speed_m_s))
    arr = np.asarray(rows, dtype=float)
    return tuple(names), arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3]
