"""The policy node's step scheduler (control.StepScheduler), without DDS: when it steps, ticks the
watchdogs or waits, for each trigger; the e-stop latch; the first arming and the rearm refusals."""

from __future__ import annotations

import pytest

from omnipianist_ros.control import Action, StepScheduler

MS = 1_000_000  # ns


def _inputs(s: StepScheduler, stamp_ns: int) -> list[Action]:
    return [s.joint_states("left", stamp_ns).action, s.joint_states("right", stamp_ns).action,
            s.keys(stamp_ns).action]


def test_lockstep_steps_once_per_simulation_step() -> None:
    s = StepScheduler("lockstep", stale_after_s=0.15)
    assert _inputs(s, 50 * MS) == [Action.NONE] * 3  # no goal yet
    d = s.goal(0.05)
    assert d.action is Action.STEP and d.now_s == pytest.approx(0.05)  # the inputs' stamp
    s.stepped(1.0)
    assert s.goal(0.05).action is Action.NONE  # same stamps again: no second step for step k
    # next step: both hands and the keys at 100 ms; the goal already came
    assert _inputs(s, 100 * MS) == [Action.NONE, Action.NONE, Action.STEP]
    s.stepped(1.05)
    assert s.timer(0.1, 1.06).action is Action.NONE  # lock-step ignores the control timer


def test_lockstep_waits_for_matching_stamps_and_a_new_goal() -> None:
    s = StepScheduler("lockstep", stale_after_s=0.15)
    s.goal(0.0)
    assert s.joint_states("left", 50 * MS).action is Action.NONE
    assert s.joint_states("right", 40 * MS).action is Action.NONE
    assert s.keys(50 * MS).action is Action.NONE  # right hand is behind
    assert s.joint_states("right", 50 * MS).action is Action.STEP
    s.stepped(0.0)
    assert _inputs(s, 100 * MS) == [Action.NONE] * 3  # no goal since the last step
    assert s.goal(0.1).action is Action.STEP
    s.stepped(0.0)
    assert _inputs(s, 50 * MS)[-1] is Action.NONE  # an older stamp never steps


def test_timer_steps_with_fresh_inputs_and_ticks_when_stale() -> None:
    s = StepScheduler("timer", stale_after_s=0.15)
    d = s.timer(1.0, 0.0)
    assert (d.action, d.stale) == (Action.TICK, True)  # nothing received yet
    _inputs(s, 1000 * MS)
    assert s.goal(1.0).action is Action.NONE  # the goal does not trigger in timer mode
    assert s.timer(1.05, 0.05).action is Action.STEP
    d = s.timer(1.2, 0.2)  # inputs 200 ms old
    assert (d.action, d.stale, d.now_s) == (Action.TICK, True, 1.2)
    s.joint_states("left", 1200 * MS)
    assert s.timer(1.2, 0.2).stale  # the right hand and the keys are still old


def test_goal_trigger_steps_on_goals_and_the_timer_only_guards() -> None:
    s = StepScheduler("goal", stale_after_s=0.15, dt=0.05)
    _inputs(s, 1000 * MS)
    assert s.goal(1.01).action is Action.STEP
    s.stepped(10.0)
    assert s.timer(1.03, 10.03).action is Action.NONE  # a step came within 1.5 periods
    d = s.timer(1.2, 10.08)
    assert (d.action, d.stale) == (Action.TICK, False)  # goals stopped: the watchdogs run
    d = s.goal(1.3)  # inputs 300 ms old
    assert (d.action, d.stale) == (Action.TICK, True)


def test_estop_latch_and_arming() -> None:
    s = StepScheduler("timer", stale_after_s=0.15, arm_on_start=True)
    assert s.rearm_refusal() == "no joint states yet"
    assert s.wants_first_arm(armed=False)
    assert s.estop(True) is True and s.estop(True) is False  # latched once
    assert not s.wants_first_arm(armed=False)
    _inputs(s, 0)
    assert s.rearm_refusal() == "/estop is still asserted"
    assert s.estop(False) is False and s.rearm_refusal() is None
    assert s.wants_first_arm(armed=False) and not s.wants_first_arm(armed=True)
    s.first_arm_done()
    assert not s.wants_first_arm(armed=False)  # later arms are the rearm service's
    assert not StepScheduler("timer", 0.15, arm_on_start=False).wants_first_arm(armed=False)
    with pytest.raises(ValueError, match="trigger"):
        StepScheduler("sometimes", 0.15)
