"""The safety filter in the policy node's command path: properties over random command streams
(hypothesis), and NaN from a policy never reaching a command."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from omnipianist.safety.filter import EstopConfig, SafetyFilter, State, WatchdogConfig
from omnipianist_ros.control import PolicyController, SafetySettings, sim_safety_filters
from omnipianist_ros.policies import PriorPolicy
from sim_training.constants import CONTROL_DT_S, HAND_SIDES

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

N = 4
LOWER = np.array([-1.0, 0.0, -0.5, 0.2])
UPPER = np.array([1.0, 1.5, 0.5, 0.3])
MARGIN = 0.02
RATE = np.array([8.0, 4.0, 8.0, 1.0])
DT = CONTROL_DT_S
EPS = 1e-12

value = st.one_of(st.floats(-5, 5), st.just(float("nan")), st.just(float("inf")), st.just(float("-inf")))
event = st.tuples(st.floats(0.0, 0.2),                       # time since the previous call [s]
                  st.sampled_from(["cmd", "cmd", "cmd", "tick", "estop", "rearm"]),
                  st.lists(value, min_size=N, max_size=N))


def _check_stream(events: list[tuple[float, str, list[float]]]) -> None:
    f = SafetyFilter([f"j{i}" for i in range(N)], LOWER, UPPER, MARGIN, RATE, DT, WatchdogConfig(),
                     EstopConfig(heartbeat_timeout_s=1.0, require_heartbeat=False))
    t = 0.0
    prev: tuple[float, np.ndarray] | None = None
    out = f.rearm(t, np.clip(np.zeros(N), LOWER, UPPER))
    prev = (t, out.command)
    for gap, kind, values in events:
        t += gap
        if kind == "cmd":
            res = f.filter(np.array(values), t)
            if not np.isfinite(values).all():
                assert not res.accepted  # refused whole (named in nan_joints when armed)
        elif kind == "tick":
            res = f.tick(t)
        elif kind == "estop":
            res = f.estop(t, "test")
            assert res.command is None and f.state is State.ESTOP
        else:
            res = f.rearm(t, np.clip(np.nan_to_num(np.array(values)), LOWER, UPPER))
            prev = (t, res.command)
            continue
        if res.command is None:
            continue
        b = res.command
        assert np.isfinite(b).all(), "a non-finite value passed the filter"
        assert (b >= LOWER + MARGIN - EPS).all() and (b <= UPPER - MARGIN + EPS).all(), b
        if prev is not None and prev[1] is not None:
            t0, a = prev
            allowed = RATE * min(DT, max(t - t0, 0.0))
            assert (np.abs(b - a) <= allowed + 1e-9).all(), (b - a, allowed)
        prev = (t, b)


@settings(max_examples=300, deadline=None)
@given(st.lists(event, min_size=1, max_size=60))
def test_filter_output_within_limits_rate_and_finite(events: list[tuple[float, str, list[float]]]) -> None:
    _check_stream(events)


def test_estop_latches_until_explicit_rearm() -> None:
    f = SafetyFilter(["a"], [-1.0], [1.0], 0.0, 1.0, DT, WatchdogConfig(),
                     EstopConfig(heartbeat_timeout_s=0.5, require_heartbeat=True))
    f.heartbeat(0.0)
    f.rearm(0.0, [0.0])
    f.estop(0.01, "button")
    f.heartbeat(0.02)  # a heartbeat, or /estop going False, never clears the latch
    assert f.filter([0.5], 0.05).command is None and f.state is State.ESTOP
    assert f.rearm(0.06, [0.0]).command is not None and f.state is State.ACTIVE
    # heartbeat silent for longer than the timeout latches ESTOP by itself
    assert f.filter([0.1], 0.7).command is None and f.state is State.ESTOP


class _NaNPolicy(PriorPolicy):
    def act(self, obs: np.ndarray) -> np.ndarray:
        a = super().act(obs)
        a[::3] = np.nan
        return a


def test_nan_action_never_reaches_a_command(shadow_scene: Any) -> None:
    ctl = PolicyController(shadow_scene, _NaNPolicy(shadow_scene, 10), 10, SafetySettings())
    hq = shadow_scene.home_qpos[shadow_scene.hand_qpos_adr]
    ctl.arm(0.0, hq)
    goal = np.zeros((11, 89), dtype=np.float32)
    for k in range(1, 5):
        res = ctl.step(k * DT, goal, np.zeros(88, np.float32), hq)
        for side in HAND_SIDES:
            assert res.filtered[side].nan_joints, side
            cmd = res.commands[side]
            assert cmd is None or np.isfinite(cmd).all()


def test_sim_filters_limits_are_actuator_ranges(shadow_scene: Any) -> None:
    filters = sim_safety_filters(shadow_scene, SafetySettings(margin=0.01))
    lo = np.concatenate([filters[s].lower_safe for s in HAND_SIDES])
    np.testing.assert_allclose(lo, shadow_scene.action_ctrl_low + 0.01)
