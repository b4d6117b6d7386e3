"""Simulation-only virtual hands for hardware-in-the-loop runs: one emulated Dynamixel per actuator.

The trained policy plays the **Shadow** embodiment, which has no serial hardware. To run it through the
real driver stack (safety filter -> HandDriver -> pty -> emulator -> MuJoCo), ``hardware_config/hil/``
holds a *virtual* hand per side: every actuator of the embodiment (hand actuators in the policy's action
set, coupled tendon actuators such as ``FFJ0`` included, and the forearm slides) gets one emulated servo.
The slides are emulated servos here as on the LEAP rig (one multi-turn Dynamixel per slide). These files are
generated from the embodiment and the scene's actuator ctrl ranges (never typed by hand)::

    .venv/bin/python -m omnipianist.hardware.hil_config          # rewrites hardware_config/hil/*_{left,right}.yaml

and ``tests/unit/test_hardware_config.py`` checks that the shipped files equal what the generator makes.

Format (``<embodiment>_<side>.yaml``)::

    side, embodiment, action_set, simulation_only: true, servo_model, bus
    servos.<unprefixed actuator>: {servo_id, unit: rad|m, unit_per_tick, offset, direction, limits: [lo, hi],
                                   gains: {p, i, d}, current_limit_ma}

Mapping of a servo: ``value = direction * (ticks - 2048) * unit_per_tick - offset`` (see ``channels.py``).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from omnipianist.hardware.channels import ServoChannel, channels_from_hand, check_channels
from omnipianist.hardware.config import HARDWARE_CONFIG_DIR, SafetyConfig, load_hand_config
from omnipianist.hardware.dynamixel.protocol import MAX_ID
from omnipianist.hardware.dynamixel.tables import CENTER_TICKS, MODELS_BY_NAME, RAD_PER_TICK, X_SERIES
from omnipianist.hardware.joints import PositionGains
from omnipianist.hardware.yaml_check import HardwareConfigError, Reader, read_yaml
from sim_training.constants import HAND_SIDES
from sim_training.models.embodiment import ACTION_SETS, SIDE_PREFIX, ActionSet, Embodiment, get_embodiment

HIL_CONFIG_DIR = HARDWARE_CONFIG_DIR / "hil"
"""``hardware_config/hil/``: virtual hands, the emulated buses and the HIL safety parameters."""

HALF_RANGE_TICKS = 2000
"""Generated mappings keep every limit within 2048 +- 2000 ticks (single turn, with slack)."""
SLIDE_M_PER_TICK_CHOICES = (1e-4, 2e-4, 5e-4, 1e-3, 2e-3)
"""Linear resolutions [m/tick] the generator picks from (the finest that fits the travel)."""
VIRTUAL_GAINS = PositionGains(800, 0, 0)
"""Written to the emulated servos; the motion itself comes from the MuJoCo actuator (sim-only)."""
VIRTUAL_CURRENT_LIMIT_MA = 1750.0
VIRTUAL_SERVO_MODEL = "XC330-M288"
_GAIN_MAX = int(X_SERIES["position_p_gain"].hi or 0)


@dataclass(frozen=True)
class VirtualHandConfig:
    """One simulation-only hand: every actuator on an emulated servo.

    Attributes:
        path: the file.
        side: ``left`` | ``right``.
        embodiment: the embodiment (with the file's action set).
        servo_model: the emulated model name.
        bus: bus name in ``hil/bus.yaml``.
        channels: in the embodiment's actuator order (``embodiment.actuator_names(side)``); margin and
            rate are 0 / default until :func:`with_safety` applies a safety file.
    """

    path: Path
    side: str
    embodiment: Embodiment
    servo_model: str
    bus: str
    channels: tuple[ServoChannel, ...]


@functools.lru_cache(maxsize=8)
def actuator_ctrl_ranges(name: str, action_set: ActionSet, side: str) -> dict[str, tuple[float, float]]:
    """Ctrl range of every unprefixed actuator of one side, from the scene spec (the single source)."""
    from sim_training.models.scene import build_spec

    emb = get_embodiment(name, action_set=action_set)
    spec = build_spec(emb)
    prefix = SIDE_PREFIX[side]
    out = {}
    for actuator in emb.hand_actuators + emb.slide_names:
        lo, hi = spec.actuator(prefix + actuator).ctrlrange
        out[actuator] = (float(lo), float(hi))
    return out


def _mapping_for(unit: str, lo: float, hi: float) -> tuple[float, float]:
    """(unit_per_tick, offset) that fit ``[lo, hi]`` in 2048 +- HALF_RANGE_TICKS."""
    if unit == "m":
        reach = max(abs(lo), abs(hi))
        for upt in SLIDE_M_PER_TICK_CHOICES:
            if reach / upt <= HALF_RANGE_TICKS:
                return upt, 0.0
        raise ValueError(f"slide travel [{lo}, {hi}] m does not fit one servo turn")
    if max(abs(lo), abs(hi)) / RAD_PER_TICK <= HALF_RANGE_TICKS:
        return RAD_PER_TICK, 0.0
    return RAD_PER_TICK, round(-(lo + hi) / 2, 6)  # centre the range on 2048 ticks


def _fmt(x: float) -> str:
    return repr(float(x))


def generate_virtual_hand_yaml(embodiment: str, side: str, action_set: ActionSet = "reduced") -> str:
    """The YAML text of the virtual hand for ``embodiment`` / ``side`` (deterministic)."""
    emb = get_embodiment(embodiment, action_set=action_set)
    ranges = actuator_ctrl_ranges(emb.name, emb.action_set, side)
    lines = [
        f"# SIMULATION ONLY: virtual {emb.name} {side} hand for hardware-in-the-loop tests, one emulated",
        "# Dynamixel per actuator (forearm slides included, as on the LEAP rig: one multi-turn servo per slide).",
        f"# Generated by omnipianist.hardware.hil_config.generate_virtual_hand_yaml({emb.name!r}, {side!r}) from",
        "# the embodiment and the scene's actuator ctrl ranges; do not edit by hand. Fields: ../README.md (HIL).",
        "# value = direction * (ticks - 2048) * unit_per_tick - offset",
        f"side: {side}",
        f"embodiment: {emb.name}",
        f"action_set: {emb.action_set}",
        "simulation_only: true",
        f"servo_model: {VIRTUAL_SERVO_MODEL}",
        f"bus: {side}",
        "servos:",
    ]
    for servo_id, actuator in enumerate(emb.hand_actuators + emb.slide_names):
        unit = "m" if actuator in emb.slide_names else "rad"
        lo, hi = ranges[actuator]
        upt, offset = _mapping_for(unit, lo, hi)
        g = VIRTUAL_GAINS
        lines.append(
            f"  {actuator}: {{servo_id: {servo_id}, unit: {unit}, unit_per_tick: {_fmt(upt)}, offset: {_fmt(offset)}, "
            f"direction: 1, limits: [{_fmt(lo)}, {_fmt(hi)}], gains: {{p: {g.p}, i: {g.i}, d: {g.d}}}, "
            f"current_limit_ma: {_fmt(VIRTUAL_CURRENT_LIMIT_MA)}}}"
        )
    return "\n".join(lines) + "\n"


_TOP_KEYS = ("side", "embodiment", "action_set", "simulation_only", "servo_model", "bus", "servos")
_SERVO_KEYS = ("servo_id", "unit", "unit_per_tick", "offset", "direction", "limits", "gains", "current_limit_ma")


def load_virtual_hand(path: str | Path) -> VirtualHandConfig:
    """Read and validate a virtual hand file.

    Raises:
        HardwareConfigError: ``<file>: <key.path>: <problem>`` (unknown/missing actuator, limits outside
            the actuator's ctrl range, a mapping that leaves one servo turn, duplicate ids, ...).
    """
    r = Reader(path)
    top = r.mapping("", read_yaml(path), _TOP_KEYS)
    side = r.string("side", top["side"], HAND_SIDES)
    action_set = r.choice("action_set", top["action_set"], ACTION_SETS)
    name = r.string("embodiment", top["embodiment"])
    try:
        emb = get_embodiment(name, action_set=action_set)
    except Exception as exc:  # ModelError: unknown embodiment
        raise r.error("embodiment", str(exc)) from exc
    if top["simulation_only"] is not True:
        raise r.error("simulation_only", "must be true: virtual hands exist only in simulation")
    servo_model = r.string("servo_model", top["servo_model"], tuple(MODELS_BY_NAME))
    bus = r.string("bus", top["bus"])
    order = emb.hand_actuators + emb.slide_names
    raw = r.mapping("servos", top["servos"], order, what=f"actuator of the {emb.key} embodiment",
                    missing_hint=" (every actuator needs a servo)")
    ranges = actuator_ctrl_ranges(emb.name, emb.action_set, side)
    channels = []
    for actuator in order:
        key = f"servos.{actuator}"
        m = r.mapping(key, raw[actuator], _SERVO_KEYS)
        unit = r.string(f"{key}.unit", m["unit"], ("rad", "m"))
        expected_unit = "m" if actuator in emb.slide_names else "rad"
        if unit != expected_unit:
            raise r.error(f"{key}.unit", f"{actuator} is commanded in {expected_unit}, not {unit}")
        direction = r.direction(f"{key}.direction", m["direction"])
        limits = r.interval(f"{key}.limits", m["limits"], unit)
        lo_m, hi_m = ranges[actuator]
        tol = 1e-9
        if limits[0] < lo_m - tol or limits[1] > hi_m + tol:
            raise r.error(f"{key}.limits", f"[{limits[0]}, {limits[1]}] {unit} is outside the actuator's ctrl range "
                                           f"[{lo_m:.6g}, {hi_m:.6g}] {unit}")
        g = r.mapping(f"{key}.gains", m["gains"], ("p", "i", "d"))
        ch = ServoChannel(
            name=SIDE_PREFIX[side] + actuator,
            servo_id=r.integer(f"{key}.servo_id", m["servo_id"], 0, MAX_ID),
            unit=unit,
            unit_per_tick=r.number(f"{key}.unit_per_tick", m["unit_per_tick"], positive=True),
            offset=r.number(f"{key}.offset", m["offset"]),
            direction=direction,
            limits=limits,
            gains=PositionGains(*(r.integer(f"{key}.gains.{k}", g[k], 0, _GAIN_MAX) for k in ("p", "i", "d"))),
            current_limit_ma=r.number(f"{key}.current_limit_ma", m["current_limit_ma"], 0,
                                      MODELS_BY_NAME[servo_model].current_limit_max_ma, positive=True),
        )
        lo_t, hi_t = ch.limit_ticks()
        if lo_t < 0 or hi_t > 2 * CENTER_TICKS - 1:
            raise r.error(f"{key}.limits", f"with unit_per_tick {ch.unit_per_tick} and offset {ch.offset} the limits "
                                           f"map to ticks [{lo_t}, {hi_t}], outside [0, 4095]")
        channels.append(ch)
    try:
        check_channels(channels, str(path))
    except Exception as exc:
        raise HardwareConfigError(path, "servos", str(exc).split(": ", 1)[-1]) from exc
    return VirtualHandConfig(Path(path), side, emb, servo_model, bus, tuple(channels))


def with_safety(channels: tuple[ServoChannel, ...] | list[ServoChannel], safety: SafetyConfig) -> list[ServoChannel]:
    """Apply a safety file's margins and rate limits (rail values to the ``m`` channels)."""
    out = []
    for ch in channels:
        if ch.unit == "m":
            out.append(replace(ch, margin=safety.rail_margin_m, max_rate=safety.rail_max_speed_m_s))
        else:
            unprefixed = ch.name.split("_", 1)[1]
            out.append(replace(ch, margin=safety.margin_rad, max_rate=safety.max_rate_for(unprefixed)))
    return out


def shipped_virtual_hands(directory: Path = HIL_CONFIG_DIR) -> Mapping[str, Path]:
    """``{file name: path}`` of the generated files the repository ships."""
    return {f"shadow_{side}.yaml": directory / f"shadow_{side}.yaml" for side in HAND_SIDES}


def write_virtual_hands(directory: Path = HIL_CONFIG_DIR) -> list[Path]:
    """(Re)generate the shipped virtual hand files; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for side in HAND_SIDES:
        path = directory / f"shadow_{side}.yaml"
        path.write_text(generate_virtual_hand_yaml("shadow", side), encoding="utf-8")
        out.append(path)
    return out


if __name__ == "__main__":  # pragma: no cover - regeneration helper
    for p in write_virtual_hands(Path(sys.argv[1]) if len(sys.argv) > 1 else HIL_CONFIG_DIR):
        print(p)


def load_channels(path: Path, embodiment: str, safety: SafetyConfig) -> tuple[list[ServoChannel], str]:
    """Channels and bus name of one hand file: a virtual hand (Shadow, or any file in a ``hil`` folder) or a
    real hand file. Needs no MuJoCo (the real hand-driver node reads its hand file with it)."""
    if embodiment == "shadow" or path.parent.name == "hil":
        virtual = load_virtual_hand(path)
        return with_safety(virtual.channels, safety), virtual.bus
    hand = load_hand_config(path)
    return channels_from_hand(hand, safety), hand.bus
