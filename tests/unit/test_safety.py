"""SafetyFilter: invariants over random command streams (NaN/Inf, random timing), command watchdog,
latched e-stop with heartbeat, and re-arm without a jump."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnipianist.errors import ConfigError
from omnipianist.hardware.config import HARDWARE_CONFIG_DIR, load_hardware, safety_filter_for
from omnipianist.safety import EstopConfig, SafetyError, SafetyFilter, State, WatchdogConfig

NAMES = ("a", "b", "c")
LOWER = np.array([-1.0, 0.0, -0.5])
UPPER = np.array([1.0, 2.0, 0.05])
MARGIN = np.array([0.05, 0.1, 0.01])
RATE = np.array([4.0, 8.0, 1.0])
DT = 0.01
WD = WatchdogConfig(hold_after_s=0.1, torque_off_after_s=0.5)
LO_SAFE = LOWER + MARGIN
HI_SAFE = UPPER - MARGIN


def make(require_heartbeat: bool = False, timeout_s: float = 0.5) -> SafetyFilter:
    return SafetyFilter(NAMES, LOWER, UPPER, MARGIN, RATE, DT, WD, EstopConfig(timeout_s, require_heartbeat))


def armed(
    t: float = 0.0, at: tuple[float, ...] = (0.0, 1.0, 0.0), require_heartbeat: bool = False, timeout_s: float = 0.5
) -> SafetyFilter:
    f = make(require_heartbeat, timeout_s)
    if require_heartbeat:
        f.heartbeat(t)
    f.rearm(t, np.array(at))
    return f


# --- properties ---------------------------------------------------------------------------------------

value = st.one_of(
    st.floats(-5.0, 5.0),
    st.sampled_from([math.nan, math.inf, -math.inf]),
)
event = st.tuples(
    st.sampled_from(["cmd", "cmd", "cmd", "tick", "hb", "rearm"]),
    st.one_of(st.just(0.0), st.floats(0.0, 0.02), st.floats(0.0, 0.7)),
    st.lists(value, min_size=3, max_size=3),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(events=st.lists(event, max_size=80), heartbeats=st.booleans())
def test_outputs_stay_safe_over_random_streams(events: list, heartbeats: bool) -> None:
    f = make(require_heartbeat=heartbeats)
    t = 0.0
    f.heartbeat(t)
    prev: tuple[float, np.ndarray] | None = None  # (time, output) of the last output since a (re)arm
    nan_count = 0
    for kind, gap, values, with_measured in events:
        t += gap
        vec = np.array(values)
        measured = np.clip(np.nan_to_num(vec), -3.0, 3.0) if with_measured else None
        if kind == "rearm":
            if f.state in (State.ACTIVE, State.HOLD):
                continue
            meas = np.clip(np.nan_to_num(vec), -3.0, 3.0)
            try:
                res = f.rearm(t, meas)
            except SafetyError:
                assert heartbeats
                continue
            assert res.command is not None
            np.testing.assert_array_equal(res.command, np.clip(meas, LO_SAFE, HI_SAFE))  # no jump from measured
            prev = (t, res.command)
            continue
        if kind == "hb":
            f.heartbeat(t)
            continue
        if kind == "cmd":
            before = f.counters.nan_rejected
            res = f.filter(vec, t, measured)
            if f.state in (State.ACTIVE, State.HOLD) and not np.isfinite(vec).all():
                assert not res.accepted and res.nan_joints
                assert f.counters.nan_rejected == before + 1
                nan_count += 1
        else:
            res = f.tick(t, measured)
        if res.command is None:
            assert f.state in (State.DISARMED, State.TORQUE_OFF, State.ESTOP)
            prev = None
            continue
        out = res.command
        assert np.isfinite(out).all()
        assert (out >= LO_SAFE).all() and (out <= HI_SAFE).all(), out
        if prev is not None:
            t0, last = prev
            step = np.abs(out - last)
            assert (step <= RATE * DT + 1e-12).all(), (step, RATE * DT)
            assert (step <= RATE * min(DT, max(t - t0, 0.0)) + 1e-12).all()
        prev = (t, out)
    assert f.counters.nan_rejected == nan_count


@settings(max_examples=100, deadline=None)
@given(cmds=st.lists(st.lists(st.floats(-5.0, 5.0), min_size=3, max_size=3), min_size=1, max_size=30))
def test_converges_to_the_clamped_command(cmds: list[list[float]]) -> None:
    """At the regular tick, a held command is reached after enough ticks, clamped into the safe box."""
    f = armed()
    t = 0.0
    for c in cmds:
        t += DT
        f.filter(np.array(c), t)
    target = np.clip(np.array(cmds[-1]), LO_SAFE, HI_SAFE)
    for _ in range(int(np.max((HI_SAFE - LO_SAFE) / (RATE * DT))) + 2):
        t += DT
        res = f.filter(np.array(cmds[-1]), t)
    assert res.command is not None
    np.testing.assert_array_equal(res.command, target)


# --- NaN handling -------------------------------------------------------------------------------------


def test_nan_refused_whole_and_names_the_joint() -> None:
    f = armed()
    out = f.filter([0.02, 1.02, 0.0], 0.01).command
    res = f.filter([0.5, math.nan, math.inf], 0.02)
    assert not res.accepted
    assert res.nan_joints == ("b", "c")
    assert "b=nan" in res.reasons[0] and "c=inf" in res.reasons[0]
    np.testing.assert_array_equal(res.command, out)  # held at the last good output, not partially applied
    assert f.counters.nan_rejected == 1


def test_malformed_command_is_refused() -> None:
    f = armed()
    res = f.filter([0.1, 0.2], 0.01)
    assert not res.accepted and f.counters.malformed == 1
    np.testing.assert_array_equal(res.command, [0.0, 1.0, 0.0])


def test_clamp_and_rate_limit_are_reported() -> None:
    f = armed()
    res = f.filter([5.0, 1.0, 0.0], DT)
    assert res.clamped_joints == ("a",) and res.rate_limited_joints == ("a",)
    assert res.command is not None and res.command[0] == pytest.approx(RATE[0] * DT)
    assert f.counters.clamped == 1 and f.counters.rate_limited == 1


# --- watchdog -----------------------------------------------------------------------------------------


def test_watchdog_holds_measured_then_torques_off() -> None:
    f = armed(at=(0.0, 1.0, 0.0))
    f.filter([0.0, 1.0, 0.0], 0.0)
    measured = np.array([0.01, 1.02, 0.0])
    assert f.tick(0.0999, measured).state is State.ACTIVE
    res = f.tick(0.1, measured)
    assert res.state is State.HOLD and f.counters.watchdog_holds == 1
    res = f.tick(0.11)
    np.testing.assert_allclose(res.command, measured)  # the hold target is the measured position
    assert f.tick(0.4999).state is State.HOLD
    res = f.tick(0.5)
    assert res.state is State.TORQUE_OFF and res.command is None and not res.torque_enabled
    assert f.counters.watchdog_torque_offs == 1
    # A command does not restart a torqued-off hand: that needs rearm().
    assert f.filter([0.0, 1.0, 0.0], 0.51).command is None and f.counters.refused == 1
    assert f.rearm(0.52, measured).state is State.ACTIVE


def test_fresh_command_leaves_hold() -> None:
    f = armed()
    f.filter([0.0, 1.0, 0.0], 0.0)
    assert f.tick(0.2).state is State.HOLD
    res = f.filter([0.0, 1.0, 0.0], 0.25)
    assert res.accepted and res.state is State.ACTIVE


def test_watchdog_decided_by_timestamps_not_tick_calls() -> None:
    """A command after >= torque_off_after_s of silence is refused even without a tick in between."""
    f = armed()
    f.filter([0.0, 1.0, 0.0], 0.0)
    res = f.filter([0.0, 1.0, 0.0], 0.6)
    assert res.command is None and f.state is State.TORQUE_OFF
    assert f.counters.watchdog_holds == 1 and f.counters.watchdog_torque_offs == 1


def test_nan_does_not_feed_the_watchdog() -> None:
    f = armed()
    f.filter([0.0, 1.0, 0.0], 0.0)
    for k in range(1, 12):
        f.filter([math.nan, 1.0, 0.0], k * 0.01)
    assert f.state is State.HOLD


# --- e-stop -------------------------------------------------------------------------------------------


def test_estop_latches_through_commands_and_heartbeats() -> None:
    f = armed(require_heartbeat=True)
    f.filter([0.2, 1.0, 0.0], 0.01)
    res = f.estop(0.02, "button")
    assert res.state is State.ESTOP and res.command is None and f.counters.estops == 1
    for k in range(3, 60):
        t = k * 0.01
        f.heartbeat(t)
        assert f.filter([0.2, 1.0, 0.0], t).command is None
        assert f.tick(t).command is None
    assert f.state is State.ESTOP and f.estop_reason == "button"
    assert f.diagnostics()["state"] == "estop" and f.diagnostics()["estops"] == "1"
    measured = np.array([0.03, 1.1, -0.2])
    res = f.rearm(0.6, measured)
    assert res.state is State.ACTIVE
    np.testing.assert_array_equal(res.command, measured)  # re-seeded: no jump from where the hand is
    nxt = f.filter([0.9, 1.9, 0.0], 0.6 + DT).command
    assert nxt is not None and (np.abs(nxt - measured) <= RATE * DT + 1e-12).all()


def test_estop_by_heartbeat_timeout() -> None:
    f = armed(require_heartbeat=True, timeout_s=0.5)
    f.heartbeat(0.3)
    for k in range(1, 82):
        t = k * 0.01
        res = f.filter([0.0, 1.0, 0.0], t)
        if t < 0.8 - 1e-9:
            assert res.state is State.ACTIVE, t
    assert f.state is State.ESTOP and "heartbeat" in f.estop_reason
    f.heartbeat(0.81)  # a late heartbeat does not clear the latch
    assert f.tick(0.82).state is State.ESTOP


def test_late_heartbeat_latches_before_it_counts() -> None:
    f = armed(require_heartbeat=True, timeout_s=0.5)
    f.filter([0.0, 1.0, 0.0], 0.1)
    f.heartbeat(0.7)  # 0.7 s after the last one (t=0): the timeout expired first
    assert f.state is State.ESTOP


def test_rearm_needs_a_live_heartbeat() -> None:
    f = make(require_heartbeat=True)
    with pytest.raises(SafetyError, match="heartbeat"):
        f.rearm(0.0, np.zeros(3) + [0.0, 1.0, 0.0])
    f.heartbeat(1.0)
    with pytest.raises(SafetyError, match="heartbeat"):
        f.rearm(1.6, np.array([0.0, 1.0, 0.0]))
    with pytest.raises(SafetyError, match="b is not finite"):
        f.rearm(1.1, np.array([0.0, math.nan, 0.0]))
    assert f.rearm(1.1, np.array([0.0, 1.0, 0.0])).state is State.ACTIVE


def test_disarmed_until_rearm() -> None:
    f = make()
    assert f.state is State.DISARMED
    assert f.filter([0.0, 1.0, 0.0], 0.0).command is None
    assert f.tick(0.1).command is None
    assert f.counters.refused == 1


def test_rearm_outside_the_safe_range_seeds_at_the_bound() -> None:
    f = make()
    res = f.rearm(0.0, np.array([-1.0, 1.0, 0.05]))
    np.testing.assert_array_equal(res.command, [LO_SAFE[0], 1.0, HI_SAFE[2]])
    assert res.clamped_joints == ("a", "c")


# --- construction -------------------------------------------------------------------------------------


def test_empty_safe_range_names_the_joint() -> None:
    with pytest.raises(ConfigError, match="joint c has an empty safe range"):
        SafetyFilter(NAMES, LOWER, UPPER, [0.0, 0.0, 0.5], RATE, DT, WD)


def test_bad_watchdog_order() -> None:
    with pytest.raises(ConfigError, match="hold_after_s"):
        SafetyFilter(NAMES, LOWER, UPPER, 0.0, RATE, DT, WatchdogConfig(0.5, 0.1))


def test_for_hand_uses_the_config() -> None:
    hw = load_hardware(HARDWARE_CONFIG_DIR)
    hand = hw.hands["right"]
    f = safety_filter_for(hand, hw.safety, 0.05, include_rails=False)
    assert len(f.joint_names) == 16 and f.joint_names[1] == "rh_if_rot"
    assert f.lower_safe[0] == pytest.approx(hand.joints["if_mcp"].limits_rad[0] + hw.safety.margin_rad)
    assert f.max_rate[1] == hw.safety.max_rate_for("if_rot")
    assert f.watchdog == hw.safety.watchdog and f.estop_cfg == hw.safety.estop


@pytest.mark.parametrize("bad", [[0.1, 0.2], [[0.1], [0.2, 0.3], [0.4]], ["x", "y", "z"], 0.5])
def test_malformed_commands_never_raise(bad: object) -> None:
    f = armed()
    res = f.filter(bad, 0.01)  # type: ignore[arg-type]
    assert not res.accepted and res.command is not None and f.counters.malformed == 1


# --- forearm rails: homing and soft limits ------------------------------------------------------------


def test_rail_homing_makes_the_startup_reading_read_home() -> None:
    from omnipianist.safety.rail import RailHoming

    homing = RailHoming("lh_forearm_tx", home=0.02, limits=(-0.36, 0.1), margin=0.005)
    offset = homing.offset(0.731)  # raw reading at the mark (any turn count)
    assert 0.731 - offset == pytest.approx(0.02)
    homing.check(0.1)
    homing.check(-0.361)  # within the tolerance
    with pytest.raises(SafetyError, match=r"lh_forearm_tx: measured 0\.2000 m is outside its limits"):
        homing.check(0.2)


def test_rail_home_outside_the_soft_limits_is_a_config_error() -> None:
    from omnipianist.safety.rail import RailHoming

    with pytest.raises(ConfigError, match="home 0.098 m is outside the soft limits"):
        RailHoming("rh_forearm_ty", home=0.098, limits=(-0.045, 0.1), margin=0.005)


def test_turns_lost_and_outside_limits() -> None:
    from omnipianist.safety.rail import outside_limits, turns_lost

    assert turns_lost(2 * 4096 + 500, 520, 4096) == 2
    assert turns_lost(-3 * 4096 + 100, 4000, 4096) == -4
    assert turns_lost(300, 310, 4096) == 0
    assert outside_limits(["a", "b"], [0.5, -0.2], [0.0, -0.1], [1.0, 0.1]) == ["b (-0.2000 outside [-0.1, 0.1])"]


def test_armed_hand_holds_until_its_first_command() -> None:
    """After a rearm and before any command the hand holds the armed pose (no torque-off countdown),
    as a driver is activated before its policy runs; after the first command the watchdog counts."""
    f = armed(at=(0.0, 1.0, 0.0))
    assert f.tick(0.2).state is State.HOLD
    res = f.tick(30.0)
    assert res.state is State.HOLD and res.torque_enabled
    np.testing.assert_allclose(res.command, [0.0, 1.0, 0.0])
    assert f.filter([0.0, 1.0, 0.0], 30.05).accepted
    assert f.tick(30.6).state is State.TORQUE_OFF


def test_first_command_timeout_bounds_the_wait() -> None:
    f = SafetyFilter(NAMES, LOWER, UPPER, 0.0, RATE, DT,
                     WatchdogConfig(hold_after_s=0.1, torque_off_after_s=0.5, first_command_timeout_s=2.0),
                     EstopConfig(heartbeat_timeout_s=0.5, require_heartbeat=False))
    f.rearm(0.0, [0.0, 1.0, 0.0])
    assert f.tick(1.99).state is State.HOLD
    assert f.tick(2.0).state is State.TORQUE_OFF
    with pytest.raises(ConfigError, match="first_command_timeout_s"):
        SafetyFilter(NAMES, LOWER, UPPER, 0.0, RATE, DT, WatchdogConfig(0.1, 0.5, -1.0))
