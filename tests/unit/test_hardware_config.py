"""hardware_config/: the shipped files load; every kind of bad file is refused naming file and key path;
tick conversions round-trip; servo_order follows the embodiment's actuator order."""

from __future__ import annotations

import copy
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from omnipianist.errors import ConfigError
from omnipianist.hardware.config import (
    HARDWARE_CONFIG_DIR,
    HardwareConfigError,
    filter_limits,
    joint_rad_to_ticks,
    load_bus_config,
    load_hand_config,
    load_hardware,
    load_safety_config,
    model_joint_ranges,
    safety_filter_for,
    servo_order,
    ticks_to_joint_rad,
)
from omnipianist.hardware.joints import JointCalibration, PositionGains
from sim_training.constants import HAND_SIDES
from sim_training.models.embodiment import get_embodiment

LEAP = get_embodiment("leap")


def _valid(name: str) -> dict[str, Any]:
    return yaml.safe_load((HARDWARE_CONFIG_DIR / name).read_text())


# --- the shipped files --------------------------------------------------------------------------------


def test_shipped_config_loads() -> None:
    hw = load_hardware(HARDWARE_CONFIG_DIR)
    assert set(hw.hands) == set(HAND_SIDES)
    for side in HAND_SIDES:
        hand = hw.hands[side]
        assert hand.side == side and hand.embodiment == "leap"
        assert tuple(hand.joints) == LEAP.hand.joint_names
        assert sorted(c.servo_id for c in hand.joints.values()) == list(range(16))
        assert tuple(hand.rail.slides) == LEAP.slide_names
        bus = hw.bus_for(side)
        assert bus.port == f"/dev/omnipianist_{side}"
        assert (bus.baudrate, bus.latency_timer_ms, bus.return_delay_us, bus.operating_mode) == (4_000_000, 1, 0, 5)
        ranges = model_joint_ranges(LEAP, side)
        for name, cal in hand.joints.items():
            assert ranges[name][0] <= cal.limits_rad[0] < cal.limits_rad[1] <= ranges[name][1]
    assert hw.safety.watchdog.hold_after_s == 0.1 and hw.safety.watchdog.torque_off_after_s == 0.5


def test_leap_servo_ids_follow_the_hardware_order() -> None:
    """Within a finger the ids go (rot, mcp, pip, dip); the kinematic order is (mcp, rot, pip, dip)."""
    hand = load_hand_config(HARDWARE_CONFIG_DIR / "leap_left.yaml")
    for k, finger in enumerate(("if", "mf", "rf")):
        ids = [hand.joints[f"{finger}_{j}"].servo_id for j in ("rot", "mcp", "pip", "dip")]
        assert ids == [4 * k, 4 * k + 1, 4 * k + 2, 4 * k + 3]
    assert [hand.joints[j].servo_id for j in ("th_cmc", "th_axl", "th_mcp", "th_ipl")] == [12, 13, 14, 15]


@pytest.mark.parametrize("side", HAND_SIDES)
def test_servo_order_is_the_embodiment_actuator_order(side: str) -> None:
    hand = load_hand_config(HARDWARE_CONFIG_DIR / f"leap_{side}.yaml")
    order = servo_order(hand, LEAP)
    slides = {LEAP.joint_names(side)[0], LEAP.joint_names(side)[1]}
    assert [n for n, _ in order] == [a for a in LEAP.actuator_names(side) if a not in slides]
    for name, servo_id in order:
        assert hand.joints[name.removeprefix(hand.prefix)].servo_id == servo_id
    assert servo_order(hand) == order  # embodiment taken from the file
    names, lo, hi, margin, rate = filter_limits(hand, load_safety_config(HARDWARE_CONFIG_DIR / "safety.yaml"))
    assert names == LEAP.actuator_names(side)
    assert len(lo) == len(hi) == len(margin) == len(rate) == len(names)
    flt = safety_filter_for(hand, load_safety_config(HARDWARE_CONFIG_DIR / "safety.yaml"), 0.05)
    assert flt.joint_names == LEAP.actuator_names(side)


def test_servo_order_refuses_another_embodiment() -> None:
    hand = load_hand_config(HARDWARE_CONFIG_DIR / "leap_left.yaml")
    with pytest.raises(ConfigError, match="leap_left.yaml"):
        servo_order(hand, "shadow")


# --- tick conversions ---------------------------------------------------------------------------------


def _cal(offset: float, direction: int) -> JointCalibration:
    return JointCalibration("if_mcp", 1, offset, direction, (-0.3, 2.2), PositionGains(600, 0, 200), 350.0)


def test_stock_leap_convention() -> None:
    """Stock LEAP (offset 0, direction 1): sim = raw - pi, raw = ticks * 2 pi / 4096."""
    cal = _cal(0.0, 1)
    assert ticks_to_joint_rad(cal, 2048) == 0.0
    for ticks in (0, 1024, 2048, 3000, 4095):
        raw = ticks * 2 * math.pi / 4096
        assert ticks_to_joint_rad(cal, ticks) == pytest.approx(raw - math.pi, abs=1e-12)
    assert joint_rad_to_ticks(cal, math.pi / 2) == 3072
    assert joint_rad_to_ticks(_cal(0.0, -1), math.pi / 2) == 1024
    assert joint_rad_to_ticks(_cal(0.1, 1), -0.1) == 2048  # offset: servo reads 0.1 rad at joint 0


@given(
    ticks=st.integers(0, 4095),
    offset=st.floats(-math.pi, math.pi),
    direction=st.sampled_from((1, -1)),
)
def test_ticks_round_trip(ticks: int, offset: float, direction: int) -> None:
    cal = _cal(offset, direction)
    assert joint_rad_to_ticks(cal, ticks_to_joint_rad(cal, ticks)) == ticks


@given(
    rad=st.floats(-3.0, 3.0),
    offset=st.floats(-0.5, 0.5),
    direction=st.sampled_from((1, -1)),
)
def test_rad_round_trip_within_half_a_tick(rad: float, offset: float, direction: int) -> None:
    cal = _cal(offset, direction)
    back = ticks_to_joint_rad(cal, joint_rad_to_ticks(cal, rad))
    assert abs(back - rad) <= math.pi / 4096 + 1e-12


def test_non_finite_angle_names_the_joint() -> None:
    with pytest.raises(ValueError, match="if_mcp.*servo id 1"):
        joint_rad_to_ticks(_cal(0.0, 1), float("nan"))


# --- bad hand files -----------------------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(d: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for p in parents:
            d = d[p]
        d[last] = value

    return mutate


def _delete(path: str) -> Mutation:
    def mutate(d: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for p in parents:
            d = d[p]
        del d[last]

    return mutate


def _rename(path: str, new: str) -> Mutation:
    def mutate(d: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for p in parents:
            d = d[p]
        d[new] = d.pop(last)

    return mutate


HAND_MUTATIONS: list[tuple[str, Mutation, str, str]] = [
    ("missing top key", _delete("bus"), "bus", "missing key"),
    ("unknown top key", _set("colour", "red"), "colour", "unknown key"),
    ("bad side", _set("side", "middle"), "side", "not one of"),
    ("unknown embodiment", _set("embodiment", "robotis"), "embodiment", "unknown hand"),
    ("unknown servo model", _set("servo_model", "AX-12"), "servo_model", "not one of"),
    ("missing joint", _delete("joints.th_ipl"), "joints.th_ipl", "missing joint"),
    ("unknown joint", _rename("joints.if_mcp", "if_mpc"), "joints.if_mpc", "did you mean 'if_mcp'"),
    ("prefixed joint", _rename("joints.if_mcp", "lh_if_mcp"), "joints.lh_if_mcp", "unknown joint"),
    ("missing joint key", _delete("joints.if_mcp.servo_id"), "joints.if_mcp.servo_id", "missing key"),
    ("typo joint key", _rename("joints.if_mcp.servo_id", "servo_idd"), "joints.if_mcp.servo_idd", "did you mean 'servo_id'"),
    ("servo id as string", _set("joints.if_mcp.servo_id", "1"), "joints.if_mcp.servo_id", "expected an integer"),
    ("servo id as float", _set("joints.if_mcp.servo_id", 1.0), "joints.if_mcp.servo_id", "expected an integer"),
    ("servo id out of range", _set("joints.if_mcp.servo_id", 253), "joints.if_mcp.servo_id", "outside"),
    ("duplicate servo id", _set("joints.mf_rot.servo_id", 0), "joints.mf_rot.servo_id", "already used by joints.if_rot"),
    ("direction 0", _set("joints.if_pip.direction", 0), "joints.if_pip.direction", "must be 1 or -1"),
    ("direction 2", _set("joints.if_pip.direction", 2), "joints.if_pip.direction", "must be 1 or -1"),
    ("direction bool", _set("joints.if_pip.direction", True), "joints.if_pip.direction", "must be 1 or -1"),
    ("direction float", _set("joints.if_pip.direction", -1.0), "joints.if_pip.direction", "must be 1 or -1"),
    ("offset string", _set("joints.if_dip.offset_rad", "0.1"), "joints.if_dip.offset_rad", "expected a number"),
    ("offset nan", _set("joints.if_dip.offset_rad", float("nan")), "joints.if_dip.offset_rad", "finite"),
    ("limits above model", _set("joints.if_mcp.limits_rad", [-0.3, 2.5]), "joints.if_mcp.limits_rad", "model's joint range"),
    ("limits below model", _set("joints.th_mcp.limits_rad", [-1.5, 1.0]), "joints.th_mcp.limits_rad", "model's joint range"),
    ("limits reversed", _set("joints.if_mcp.limits_rad", [1.0, 0.5]), "joints.if_mcp.limits_rad", "must be <"),
    ("limits one value", _set("joints.if_mcp.limits_rad", [1.0]), "joints.if_mcp.limits_rad", "expected a list"),
    ("limits string", _set("joints.if_mcp.limits_rad", ["a", 1.0]), "joints.if_mcp.limits_rad[0]", "expected a number"),
    (
        "offset pushes limits off the turn",
        _set("joints.th_axl.offset_rad", 1.5),
        "joints.th_axl.limits_rad",
        "single-turn",
    ),
    ("gain missing", _delete("joints.if_mcp.gains.d"), "joints.if_mcp.gains.d", "missing key"),
    ("gain negative", _set("joints.if_mcp.gains.p", -1), "joints.if_mcp.gains.p", "outside"),
    ("gains not a mapping", _set("joints.if_mcp.gains", [600, 0, 200]), "joints.if_mcp.gains", "expected a mapping"),
    ("current too high", _set("joints.if_mcp.current_limit_ma", 5000), "joints.if_mcp.current_limit_ma", "outside"),
    ("current zero", _set("joints.if_mcp.current_limit_ma", 0), "joints.if_mcp.current_limit_ma", "must be > 0"),
    ("joint not a mapping", _set("joints.if_mcp", 3), "joints.if_mcp", "expected a mapping"),
    ("rail missing", _delete("rail"), "rail", "missing key"),
    ("rail slide missing", _delete("rail.slides.forearm_ty"), "rail.slides.forearm_ty", "missing slide"),
    ("rail slide unknown", _rename("rail.slides.forearm_ty", "forearm_tz"), "rail.slides.forearm_tz", "unknown slide"),
    ("rail limits outside", _set("rail.slides.forearm_ty.limits_m", [-0.2, 0.05]), "rail.slides.forearm_ty.limits_m", "model"),
    ("rail speed zero", _set("rail.slides.forearm_tx.max_speed_m_s", 0), "rail.slides.forearm_tx.max_speed_m_s", "> 0"),
    ("rail port int", _set("rail.port", 3), "rail.port", "expected a non-empty string"),
    ("rail driver unknown", _set("rail.driver", "stepper"), "rail.driver", "is not one of 'tbd', 'dynamixel'"),
    ("rail port on dynamixel", _set("rail.port", "/dev/ttyUSB3"), "rail.port", "share the hand's bus"),
    ("rail servo missing", _delete("rail.slides.forearm_tx.servo_id"), "rail.slides.forearm_tx.servo_id",
     "missing key (driver dynamixel"),
    ("rail servo id of a joint", _set("rail.slides.forearm_tx.servo_id", 3), "rail.slides.forearm_tx.servo_id",
     "already used by joints.if_dip"),
    ("rail servo ids shared", _set("rail.slides.forearm_ty.servo_id", 16), "rail.slides.forearm_ty.servo_id",
     "already used by rail.slides.forearm_tx"),
    ("rail metres per rev zero", _set("rail.slides.forearm_tx.metres_per_rev", 0), "rail.slides.forearm_tx.metres_per_rev",
     "> 0"),
    ("rail too fast for the servo", _set("rail.slides.forearm_tx.metres_per_rev", 0.04),
     "rail.slides.forearm_tx.max_speed_m_s", "81 rpm no-load x 0.04 m/rev = 0.054 m/s"),
    ("rail home outside", _set("rail.slides.forearm_ty.home_m", 0.2), "rail.slides.forearm_ty.home_m", "outside limits_m"),
    ("rail direction", _set("rail.slides.forearm_ty.direction", 2), "rail.slides.forearm_ty.direction", "must be 1 or -1"),
    ("rail current", _set("rail.slides.forearm_ty.current_limit_ma", 3000), "rail.slides.forearm_ty.current_limit_ma",
     "outside"),
    ("rail gains", _delete("rail.slides.forearm_ty.gains.p"), "rail.slides.forearm_ty.gains.p", "missing key"),
    ("rail servo keys without driver", _set("rail.driver", "tbd"), "rail.slides.forearm_tx.servo_id", "unknown key"),
]


@pytest.mark.parametrize(("mutate", "key", "problem"), [m[1:] for m in HAND_MUTATIONS], ids=[m[0] for m in HAND_MUTATIONS])
def test_bad_hand_file_names_file_and_key(tmp_path: Path, mutate: Mutation, key: str, problem: str) -> None:
    data = copy.deepcopy(_valid("leap_left.yaml"))
    mutate(data)
    path = tmp_path / "leap_left.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError) as exc:
        load_hand_config(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: {key}: "), msg
    assert problem in msg, msg
    assert isinstance(exc.value, HardwareConfigError) and exc.value.key == key


def test_valid_dump_round_trips(tmp_path: Path) -> None:
    """The mutation harness itself: an unmutated dump loads."""
    path = tmp_path / "leap_left.yaml"
    path.write_text(yaml.safe_dump(_valid("leap_left.yaml"), sort_keys=False))
    assert load_hand_config(path).joints["if_rot"].servo_id == 0


def test_malformed_yaml_gives_the_line(tmp_path: Path) -> None:
    text = (HARDWARE_CONFIG_DIR / "leap_left.yaml").read_text().splitlines()
    i = next(k for k, line in enumerate(text) if line.lstrip().startswith("if_pip:"))
    text[i] = text[i].replace("current_limit_ma: 350}", "current_limit_ma: 350")  # unclosed flow mapping
    path = tmp_path / "leap_left.yaml"
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(ConfigError, match=r"leap_left\.yaml: line \d+, column \d+: malformed YAML") as exc:
        load_hand_config(path)
    line = int(str(exc.value).split("line ")[1].split(",")[0])
    assert i + 1 <= line <= i + 2


def test_duplicate_yaml_key_is_refused(tmp_path: Path) -> None:
    text = (HARDWARE_CONFIG_DIR / "leap_left.yaml").read_text().splitlines()
    i = next(k for k, line in enumerate(text) if line.lstrip().startswith("if_pip:"))
    text.insert(i + 1, text[i])  # if_pip twice: PyYAML would silently keep the last one
    path = tmp_path / "leap_left.yaml"
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(
        ConfigError, match=rf"leap_left\.yaml: joints\.if_pip: duplicate key \(line {i + 2}; first at line {i + 1}\)"
    ):
        load_hand_config(path)


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a\n- b\n", "just a string\n"])
def test_not_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "leap_left.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"leap_left\.yaml: (empty file|: expected a mapping|expected a mapping)"):
        load_hand_config(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.yaml: cannot read file"):
        load_hand_config(tmp_path / "nope.yaml")


# --- bad bus / safety files ---------------------------------------------------------------------------

BUS_MUTATIONS: list[tuple[str, Mutation, str, str]] = [
    ("missing baudrate", _delete("buses.left.baudrate"), "buses.left.baudrate", "missing key"),
    ("typo", _rename("buses.left.timeout_s", "timeout"), "buses.left.timeout", "did you mean 'timeout_s'"),
    ("odd baudrate", _set("buses.left.baudrate", 3_500_000), "buses.left.baudrate", "not a Dynamixel"),
    ("baudrate string", _set("buses.left.baudrate", "4000000"), "buses.left.baudrate", "expected an integer"),
    ("latency 0", _set("buses.left.latency_timer_ms", 0), "buses.left.latency_timer_ms", "outside"),
    ("odd return delay", _set("buses.left.return_delay_us", 3), "buses.left.return_delay_us", "multiple of 2"),
    ("position mode 3", _set("buses.right.operating_mode", 3), "buses.right.operating_mode", "current-based position"),
    ("watchdog off", _set("buses.left.bus_watchdog_units", 0), "buses.left.bus_watchdog_units", "outside"),
    ("negative timeout", _set("buses.left.timeout_s", -0.1), "buses.left.timeout_s", "must be > 0"),
    ("shared port", _set("buses.right.port", "/dev/omnipianist_left"), "buses.right.port", "already used by buses.left"),
    ("no buses", _set("buses", {}), "buses", "non-empty mapping"),
    ("setup timeout 0", _set("buses.left.setup_timeout_s", 0), "buses.left.setup_timeout_s", "must be > 0"),
    ("setup retries 99", _set("buses.left.setup_retries", 99), "buses.left.setup_retries", "outside"),
]


def test_bus_setup_timing_is_optional(tmp_path: Path) -> None:
    data = copy.deepcopy(_valid("bus.yaml"))
    data["buses"]["right"].update(setup_timeout_s=0.25, setup_retries=7)
    path = tmp_path / "bus.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    buses = load_bus_config(path)
    assert (buses["left"].setup_timeout_s, buses["left"].setup_retries) == (0.1, 5)  # absent: the defaults
    assert (buses["right"].setup_timeout_s, buses["right"].setup_retries) == (0.25, 7)
    assert buses["left"].setup_timeout_s > buses["left"].timeout_s


@pytest.mark.parametrize(("mutate", "key", "problem"), [m[1:] for m in BUS_MUTATIONS], ids=[m[0] for m in BUS_MUTATIONS])
def test_bad_bus_file_names_file_and_key(tmp_path: Path, mutate: Mutation, key: str, problem: str) -> None:
    data = copy.deepcopy(_valid("bus.yaml"))
    mutate(data)
    path = tmp_path / "bus.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError) as exc:
        load_bus_config(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: {key}: ") and problem in msg, msg


SAFETY_MUTATIONS: list[tuple[str, Mutation, str, str]] = [
    ("missing margin", _delete("margin_rad"), "margin_rad", "missing key"),
    ("margin negative", _set("margin_rad", -0.01), "margin_rad", "outside"),
    ("rate zero", _set("max_rate_rad_per_s.default", 0.0), "max_rate_rad_per_s.default", "must be > 0"),
    (
        "group unknown joint",
        _set("max_rate_rad_per_s.groups.abduction.joints", ["if_rot", "if_rott"]),
        "max_rate_rad_per_s.groups.abduction.joints[1]",
        "did you mean 'if_rot'",
    ),
    (
        "joint in two groups",
        _set("max_rate_rad_per_s.groups.thumb", {"joints": ["th_cmc", "if_rot"], "rad_per_s": 5.0}),
        "max_rate_rad_per_s.groups.thumb.joints[1]",
        "already in group abduction",
    ),
    ("hold after torque off", _set("watchdog.hold_after_s", 0.6), "watchdog.torque_off_after_s", "must be > hold_after_s"),
    ("watchdog typo", _rename("watchdog.hold_after_s", "hold_s"), "watchdog.hold_s", "did you mean 'hold_after_s'"),
    ("heartbeat string", _set("estop.require_heartbeat", "yes please"), "estop.require_heartbeat", "expected true or false"),
    ("heartbeat timeout zero", _set("estop.heartbeat_timeout_s", 0), "estop.heartbeat_timeout_s", "must be > 0"),
    ("rail speed", _set("rail.max_speed_m_s", 50.0), "rail.max_speed_m_s", "outside"),
]


@pytest.mark.parametrize(("mutate", "key", "problem"), [m[1:] for m in SAFETY_MUTATIONS], ids=[m[0] for m in SAFETY_MUTATIONS])
def test_bad_safety_file_names_file_and_key(tmp_path: Path, mutate: Mutation, key: str, problem: str) -> None:
    data = copy.deepcopy(_valid("safety.yaml"))
    mutate(data)
    path = tmp_path / "safety.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError) as exc:
        load_safety_config(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: {key}: ") and problem in msg, msg


# --- cross-file checks --------------------------------------------------------------------------------


def _copy_dir(tmp_path: Path) -> Path:
    d = tmp_path / "hw"
    shutil.copytree(HARDWARE_CONFIG_DIR, d)
    return d


def _edit(path: Path, mutate: Mutation) -> None:
    data = yaml.safe_load(path.read_text())
    mutate(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.mark.parametrize(
    ("file", "mutate", "where", "problem"),
    [
        ("leap_left.yaml", _set("side", "right"), "leap_left.yaml: side", "file name says 'left'"),
        ("leap_right.yaml", _set("bus", "middle"), "leap_right.yaml: bus", "unknown bus 'middle'"),
        ("leap_right.yaml", _set("bus", "left"), "leap_right.yaml: bus", "already used by the left hand"),
        (
            "leap_left.yaml",
            _set("joints.if_dip.limits_rad", [0.0, 0.03]),
            "safety.yaml: margin_rad",
            "leaves no range for leap_left.yaml: joints.if_dip",
        ),
        ("safety.yaml", _set("rail.max_speed_m_s", 2.0), "safety.yaml: rail.max_speed_m_s", "exceeds"),
    ],
)
def test_cross_file_checks(tmp_path: Path, file: str, mutate: Mutation, where: str, problem: str) -> None:
    d = _copy_dir(tmp_path)
    _edit(d / file, mutate)
    with pytest.raises(ConfigError) as exc:
        load_hardware(d)
    msg = str(exc.value)
    assert where in msg and problem in msg, msg


# --- simulation-only virtual hands (hardware_config/hil/) ----------------------------------------------


def test_shipped_virtual_hands_equal_the_generator() -> None:
    from omnipianist.hardware.hil_config import generate_virtual_hand_yaml, shipped_virtual_hands

    for name, path in shipped_virtual_hands().items():
        side = name.removeprefix("shadow_").removesuffix(".yaml")
        assert path.read_text() == generate_virtual_hand_yaml("shadow", side), (
            f"{path} is stale: run .venv/bin/python -m omnipianist.hardware.hil_config"
        )


def test_virtual_hand_covers_every_actuator_in_action_order() -> None:
    from omnipianist.hardware.hil_config import HIL_CONFIG_DIR, load_virtual_hand
    from sim_training.models.scene import build_scene

    scene = build_scene("shadow")
    for side in ("left", "right"):
        hand = load_virtual_hand(HIL_CONFIG_DIR / f"shadow_{side}.yaml")
        names = [c.name for c in hand.channels]
        assert names == list(hand.embodiment.actuator_names(side))
        for ch in hand.channels:
            a = scene.model.actuator(ch.name).id
            assert ch.limits == pytest.approx(tuple(scene.model.actuator_ctrlrange[a]))
            lo, hi = ch.limit_ticks()
            assert 0 <= lo < hi <= 4095
            for value in (ch.limits[0], ch.limits[1], 0.5 * sum(ch.limits)):
                assert ch.from_ticks(ch.to_ticks(value)) == pytest.approx(value, abs=ch.unit_per_tick / 2 + 1e-12)


def test_virtual_hand_errors_name_the_key(tmp_path) -> None:  # noqa: ANN001
    from omnipianist.hardware.config import HardwareConfigError
    from omnipianist.hardware.hil_config import HIL_CONFIG_DIR, load_virtual_hand

    text = (HIL_CONFIG_DIR / "shadow_left.yaml").read_text()
    cases = {
        "servos.FFJ3.limits": text.replace("limits: [-0.261799, 1.5708]", "limits: [-0.261799, 2.5]", 1),
        "servos.FFJ9": text.replace("  FFJ0:", "  FFJ9:", 1),
        "simulation_only": text.replace("simulation_only: true", "simulation_only: false"),
        "servos.WRJ1.unit": text.replace("WRJ1: {servo_id: 1, unit: rad", "WRJ1: {servo_id: 1, unit: m", 1),
    }
    for key, bad in cases.items():
        path = tmp_path / "shadow_left.yaml"
        path.write_text(bad)
        with pytest.raises(HardwareConfigError) as info:
            load_virtual_hand(path)
        assert key in str(info.value) and str(path) in str(info.value), str(info.value)


def test_hil_bus_and_safety_files_load() -> None:
    from omnipianist.hardware.config import load_bus_config, load_safety_config
    from omnipianist.hardware.hil_config import HIL_CONFIG_DIR

    buses = load_bus_config(HIL_CONFIG_DIR / "bus.yaml")
    assert set(buses) == {"left", "right"} and all(b.baudrate == 4_000_000 for b in buses.values())
    assert load_safety_config(HIL_CONFIG_DIR / "safety.yaml", "shadow").max_rate_rad_per_s > 0


def test_servo_facts_come_from_the_control_tables() -> None:
    """config.py re-types no servo fact: ids, gains, baud rates and current limits are the tables'."""
    from omnipianist.hardware import config
    from omnipianist.hardware.dynamixel import protocol, tables

    assert config.SERVO_ID_MAX == protocol.MAX_ID == 252
    assert config.GAIN_MAX == tables.X_SERIES["position_p_gain"].hi == 16383
    assert config.SUPPORTED_BAUDRATES == (9600, 57600, 115200, 1_000_000, 2_000_000, 3_000_000, 4_000_000)
    assert config.CURRENT_LIMIT_MAX_MA["XC330-M288"] == 2352.0  # e-manual Current Limit range, XC330-M288
    assert config.RETURN_DELAY_US_MAX == 508 and config.BUS_WATCHDOG_UNITS_MAX == 127
    # the old private helpers stay importable (re-exported from the public yaml_check module)
    from omnipianist.hardware.yaml_check import Reader, read_yaml

    assert config._Reader is Reader and config._read_yaml is read_yaml  # noqa: SLF001


def test_rail_servos_load_and_dump(tmp_path: Path) -> None:
    from omnipianist.hardware.calibration import dump_hand_yaml

    hand = load_hand_config(HARDWARE_CONFIG_DIR / "leap_left.yaml")
    assert hand.rail.driver == "dynamixel" and hand.rail.port is None
    tx = hand.rail.slides["forearm_tx"].servo
    assert tx is not None and tx.servo_id == 16 and tx.metres_per_tick == pytest.approx(tx.metres_per_rev / 4096)
    path = tmp_path / "leap_left.yaml"
    path.write_text(dump_hand_yaml(hand))
    assert load_hand_config(path).rail == hand.rail


def test_rail_servo_order_follows_the_slides() -> None:
    from omnipianist.hardware.config import rail_servo_order

    hand = load_hand_config(HARDWARE_CONFIG_DIR / "leap_right.yaml")
    assert rail_servo_order(hand) == [("rh_forearm_tx", 16), ("rh_forearm_ty", 17)]
    ids = [i for _, i in servo_order(hand)] + [i for _, i in rail_servo_order(hand)]
    assert len(set(ids)) == len(ids) == 18
