"""Hardware configuration: the YAML files in ``hardware_config/`` as validated dataclasses.

Files (see ``hardware_config/README.md`` for every field):

* ``<embodiment>_<side>.yaml`` (``leap_left.yaml``, ``leap_right.yaml``): one hand -> :class:`HandConfig`
  (per-joint :class:`~omnipianist.hardware.joints.JointCalibration` and the forearm :class:`RailConfig`,
  whose slides may each have a :class:`RailServo`);
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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from omnipianist.errors import ConfigError, OmnipianistError
from omnipianist.hardware.dynamixel.protocol import MAX_ID
from omnipianist.hardware.dynamixel.tables import (
    BAUD_RATES,
    BUS_WATCHDOG_MS_PER_UNIT,
    EXTENDED_POSITION_LIMIT,
    MODELS,
    MODELS_BY_NAME,
    OPERATING_MODE_CURRENT_BASED_POSITION,
    POSITION_TICKS_MAX,
    POSITION_TICKS_MIN,
    RETURN_DELAY_US_PER_UNIT,
    TICKS_PER_REV,
    X_SERIES,
    ServoModel,
)
from omnipianist.hardware.joints import JointCalibration, PositionGains, joint_rad_to_ticks, ticks_to_joint_rad
from omnipianist.hardware.yaml_check import HardwareConfigError, Reader, join_key, read_yaml, type_name
from omnipianist.resources import candidates
from omnipianist.safety.filter import EstopConfig, SafetyFilter, WatchdogConfig
from sim_training.constants import HAND_SIDES
from sim_training.models.embodiment import SIDE_PREFIX, ActionSet, Embodiment, get_embodiment

__all__ = [
    "HARDWARE_CONFIG_DIR",
    "BusConfig",
    "HandConfig",
    "HardwareConfig",
    "HardwareConfigError",
    "JointCalibration",
    "PositionGains",
    "RailConfig",
    "RailServo",
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
    "rail_servo_order",
    "servo_order",
    "ticks_to_joint_rad",
]

def _shipped_hardware_config() -> Path:
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

# Servo facts, read from the control tables (omnipianist.hardware.dynamixel.tables / .protocol), never re-typed:
SERVO_ID_MAX = MAX_ID
"""Highest assignable Dynamixel id (253 reserved, 254 broadcast)."""
GAIN_MAX = int(X_SERIES["position_p_gain"].hi or 0)
"""Largest Position P/I/D gain value (Dynamixel units)."""
CURRENT_LIMIT_MAX_MA: dict[str, float] = {m.name: m.current_limit_max_ma for m in MODELS.values()}
"""Largest Current Limit per servo model [mA] (the model's Current Limit range, address 38)."""
SUPPORTED_BAUDRATES: tuple[int, ...] = tuple(BAUD_RATES.values())
"""Baud rates an X330 servo supports [bit/s]."""
RETURN_DELAY_US_MAX = int(X_SERIES["return_delay_time"].hi or 0) * RETURN_DELAY_US_PER_UNIT
BUS_WATCHDOG_UNITS_MAX = int(X_SERIES["bus_watchdog"].hi or 0)
RAIL_SPEED_MAX_M_S = 5.0
"""Sanity bound on a rail's speed [m/s]; anything faster is a typo."""
RAIL_DRIVERS = ("tbd", "dynamixel")
"""``rail.driver`` values: ``tbd`` (no driver: the rails are not driven), ``dynamixel`` (one multi-turn
servo per slide on the hand's bus, driven by the hand driver)."""
RAIL_METRES_PER_REV_MAX = 2.0
"""Sanity bound on a rail's travel per servo revolution [m]."""

_read_yaml = read_yaml
_Reader = Reader
_type_name = type_name
_join = join_key
"""Old private names of the YAML helpers (now :mod:`omnipianist.hardware.yaml_check`)."""


# --- dataclasses ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RailServo:
    """The Dynamixel that drives one forearm slide (Extended Position mode, on the hand's bus).

    Attributes:
        servo_id: its id on the hand's bus (unique among the hand's servos).
        metres_per_rev: carriage travel per servo revolution [m] (belt pulley or pinion: 2*pi*r, times
            any gear ratio in between).
        direction: +1 when ticks up move the carriage toward +limits, else -1.
        home_m: where the carriage stands at startup (its home mark) [m], inside ``limits_m``.
        current_limit_ma: Current Limit [mA].
        gains: Position P/I/D gains.
    """

    servo_id: int
    metres_per_rev: float
    direction: int
    home_m: float
    current_limit_ma: float
    gains: PositionGains

    @property
    def metres_per_tick(self) -> float:
        """Travel per position tick [m]: ``metres_per_rev / 4096``."""
        return self.metres_per_rev / TICKS_PER_REV


@dataclass(frozen=True)
class RailSlide:
    """One forearm slide.

    Attributes:
        name: unprefixed slide name (``forearm_tx`` along the keyboard, ``forearm_ty`` toward the keys).
        limits_m: (lower, upper) travel [m] relative to the home position, inside the model's range.
        max_speed_m_s: the axis' rated top speed [m/s].
        servo: its Dynamixel (``rail.driver: dynamixel``), ``None`` without a driver.
    """

    name: str
    limits_m: tuple[float, float]
    max_speed_m_s: float
    servo: RailServo | None = None


@dataclass(frozen=True)
class RailConfig:
    """The forearm carriage of one hand.

    Attributes:
        driver: ``"dynamixel"`` (the slides' servos are on the hand's bus, driven by the hand driver) or
            ``"tbd"`` (not driven).
        port: its own device (``None``: none, or the hand's bus for ``dynamixel``).
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
        timeout_s: reply timeout per transaction [s] while playing.
        retries: extra attempts after a timeout or CRC error while playing.
        setup_timeout_s: reply timeout per transaction [s] while configuring and calibrating (no
            control period to keep; a host that is briefly busy must not fail start-up).
        setup_retries: extra attempts per transaction while configuring and calibrating.
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
    setup_timeout_s: float = 0.1
    setup_retries: int = 5

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
def _model_ranges(name: str, action_set: ActionSet, forearm_z: bool, side: str) -> dict[str, tuple[float, float]]:
    from sim_training.models.scene import build_spec  # heavy (MuJoCo); only needed for validation

    emb = get_embodiment(name, action_set=action_set, forearm_z=forearm_z)
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


def _embodiment(r: Reader, key: str, value: object) -> Embodiment:
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
    r = Reader(path)
    top = r.mapping("", read_yaml(path), _HAND_KEYS)
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

    owners = {i: f"joints.{name}" for i, name in id_owner.items()}
    rail = _rail(r, top["rail"], emb, ranges, servo_model, owners)
    return HandConfig(Path(path), side, emb.name, servo_model, bus, joints, rail)


def _joint(
    r: Reader, key: str, name: str, raw: object, model_range: tuple[float, float], servo_model: str
) -> JointCalibration:
    m = r.mapping(key, raw, _JOINT_KEYS)
    servo_id = r.integer(f"{key}.servo_id", m["servo_id"], 0, SERVO_ID_MAX)
    offset = r.number(f"{key}.offset_rad", m["offset_rad"], -math.pi, math.pi)
    direction = r.direction(f"{key}.direction", m["direction"])
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


_RAIL_SERVO_KEYS = ("servo_id", "metres_per_rev", "direction", "home_m", "current_limit_ma", "gains")


def _rail(r: Reader, raw: object, emb: Embodiment, ranges: dict[str, tuple[float, float]], servo_model: str,
          id_owner: dict[int, str]) -> RailConfig:
    m = r.mapping("rail", raw, ("driver", "port", "slides"))
    driver = r.string("rail.driver", m["driver"], RAIL_DRIVERS)
    port = None if m["port"] is None else r.string("rail.port", m["port"])
    if driver == "dynamixel" and port is not None:
        raise r.error("rail.port", f"must be null for driver dynamixel: the rail servos share the hand's bus (got {port!r})")
    slides_raw = r.mapping(
        "rail.slides", m["slides"], emb.slide_names, what="slide", missing_hint=" (every forearm slide needs an entry)"
    )
    model = MODELS_BY_NAME[servo_model]
    slides: dict[str, RailSlide] = {}
    for name in emb.slide_names:
        key = f"rail.slides.{name}"
        keys = ("limits_m", "max_speed_m_s") + (_RAIL_SERVO_KEYS if driver == "dynamixel" else ())
        s = r.mapping(key, slides_raw[name], keys,
                      missing_hint=" (driver dynamixel: every slide needs its servo)" if driver == "dynamixel" else "")
        limits = r.interval(f"{key}.limits_m", s["limits_m"], "m")
        r.within(f"{key}.limits_m", limits, ranges[name], "m")
        speed = r.number(f"{key}.max_speed_m_s", s["max_speed_m_s"], hi=RAIL_SPEED_MAX_M_S, positive=True)
        servo = _rail_servo(r, key, s, limits, speed, model, id_owner) if driver == "dynamixel" else None
        slides[name] = RailSlide(name, limits, speed, servo)
    return RailConfig(driver, port, slides)


def _rail_servo(r: Reader, key: str, s: dict[str, object], limits: tuple[float, float], speed: float,
                model: object, id_owner: dict[int, str]) -> RailServo:
    assert isinstance(model, ServoModel)
    servo_id = r.integer(f"{key}.servo_id", s["servo_id"], 0, SERVO_ID_MAX)
    if servo_id in id_owner:
        raise r.error(f"{key}.servo_id", f"servo id {servo_id} is already used by {id_owner[servo_id]}")
    id_owner[servo_id] = key
    per_rev = r.number(f"{key}.metres_per_rev", s["metres_per_rev"], hi=RAIL_METRES_PER_REV_MAX, positive=True)
    direction = r.direction(f"{key}.direction", s["direction"])
    home = r.number(f"{key}.home_m", s["home_m"])
    if not limits[0] <= home <= limits[1]:
        raise r.error(f"{key}.home_m", f"{home} m is outside limits_m [{limits[0]}, {limits[1]}]")
    top = model.no_load_rpm / 60.0 * per_rev
    if speed > top:
        raise r.error(f"{key}.max_speed_m_s", f"{speed} m/s is more than the {model.name} can drive it: "
                                              f"{model.no_load_rpm:g} rpm no-load x {per_rev} m/rev = {top:.3f} m/s")
    turns = max(abs(limits[0] - home), abs(limits[1] - home)) / per_rev
    reach = EXTENDED_POSITION_LIMIT / TICKS_PER_REV - 1  # one turn kept for where homing finds the shaft
    if turns > reach:
        raise r.error(f"{key}.metres_per_rev", f"the travel from home_m is {turns:.1f} servo turns, more than the "
                                               f"{reach:.0f} the Extended Position mode counts")
    g = r.mapping(f"{key}.gains", s["gains"], ("p", "i", "d"))
    gains = PositionGains(*(r.integer(f"{key}.gains.{k}", g[k], 0, GAIN_MAX) for k in ("p", "i", "d")))
    current = r.number(f"{key}.current_limit_ma", s["current_limit_ma"], 0, model.current_limit_max_ma, positive=True)
    return RailServo(servo_id, per_rev, direction, home, current, gains)


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
    "setup_timeout_s",
    "setup_retries",
)
_BUS_OPTIONAL_KEYS = ("setup_timeout_s", "setup_retries")


def _bus_setup(r: Reader, key: str, m: dict[str, Any]) -> dict[str, Any]:
    """The optional start-up timing keys of one bus (absent: the BusConfig defaults)."""
    out: dict[str, Any] = {}
    if "setup_timeout_s" in m:
        out["setup_timeout_s"] = r.number(f"{key}.setup_timeout_s", m["setup_timeout_s"], hi=5.0, positive=True)
    if "setup_retries" in m:
        out["setup_retries"] = r.integer(f"{key}.setup_retries", m["setup_retries"], 0, 20)
    return out


def load_bus_config(path: str | Path) -> dict[str, BusConfig]:
    """Read and validate ``bus.yaml``: ``{buses: {<name>: {port, baudrate, ...}}}``.

    Raises:
        HardwareConfigError: message ``<file>: <key.path>: <problem>`` (also for two buses on one port).
    """
    r = Reader(path)
    top = r.mapping("", read_yaml(path), ("buses",))
    raw = top["buses"]
    if not isinstance(raw, dict) or not raw:
        raise r.error("buses", f"expected a non-empty mapping of bus name -> settings, got {raw!r}")
    buses: dict[str, BusConfig] = {}
    port_owner: dict[str, str] = {}
    for name in raw:
        if not isinstance(name, str):
            raise r.error(f"buses.{name}", "bus name must be a string")
        key = f"buses.{name}"
        m = r.mapping(key, raw[name], _BUS_KEYS, optional=_BUS_OPTIONAL_KEYS)
        port = r.string(f"{key}.port", m["port"])
        if port in port_owner:
            raise r.error(f"{key}.port", f"port {port} is already used by buses.{port_owner[port]}")
        port_owner[port] = name
        baud = r.integer(f"{key}.baudrate", m["baudrate"])
        if baud not in SUPPORTED_BAUDRATES:
            raise r.error(f"{key}.baudrate", f"{baud} is not a Dynamixel X330 baud rate "
                                             f"({', '.join(map(str, SUPPORTED_BAUDRATES))})")
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
            **_bus_setup(r, key, m),
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
    r = Reader(path)
    top = r.mapping("", read_yaml(path), _SAFETY_KEYS)
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
    wd = r.mapping("watchdog", top["watchdog"], ("hold_after_s", "torque_off_after_s", "first_command_timeout_s"),
                   optional=("first_command_timeout_s",))
    hold = r.number("watchdog.hold_after_s", wd["hold_after_s"], positive=True)
    off = r.number("watchdog.torque_off_after_s", wd["torque_off_after_s"], positive=True)
    if not off > hold:
        raise r.error("watchdog.torque_off_after_s", f"{off} s must be > hold_after_s ({hold} s)")
    first = r.number("watchdog.first_command_timeout_s", wd.get("first_command_timeout_s", 0.0), 0.0, 3600.0)
    es = r.mapping("estop", top["estop"], ("heartbeat_timeout_s", "require_heartbeat"))
    return SafetyConfig(
        path=Path(path),
        margin_rad=margin,
        max_rate_rad_per_s=default_rate,
        rate_groups=tuple(groups),
        rail_margin_m=r.number("rail.margin_m", rail["margin_m"], 0.0, 0.1),
        rail_max_speed_m_s=r.number("rail.max_speed_m_s", rail["max_speed_m_s"], hi=RAIL_SPEED_MAX_M_S, positive=True),
        watchdog=WatchdogConfig(hold_after_s=hold, torque_off_after_s=off, first_command_timeout_s=first),
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
    (``embodiment.actuator_names(side)`` without the forearm slides; their servos, when
    ``rail.driver`` is ``dynamixel``, are in :func:`rail_servo_order`).

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


def rail_servo_order(hand: HandConfig) -> list[tuple[str, int]]:
    """``(prefixed slide name, servo id)`` for each forearm slide driven by a Dynamixel (empty unless
    ``rail.driver`` is ``dynamixel``), in the embodiment's slide order: what follows :func:`servo_order`
    in the hand driver's channel vector."""
    return [(hand.prefix + name, s.servo.servo_id) for name, s in hand.rail.slides.items() if s.servo is not None]


def safety_filter_for(hand: HandConfig, safety: SafetyConfig, dt: float, *, include_rails: bool = True) -> SafetyFilter:
    """The safety filter for one hand, in the embodiment's actuator order (prefixed names).

    With ``include_rails`` (the policy node, and the hand driver when the rails are Dynamixels) the
    vector is the hand's joints then the forearm slides, exactly ``embodiment.actuator_names(side)``;
    without, the hand joints only, in :func:`servo_order`. (Here, not in the safety package: the filter knows no hardware.)
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
