"""Topic and service names and their QoS (ros2_control names; README "ROS 2 graph"). One home for each.

Importing this module touches no DDS (``rclpy.qos`` is plain data), so the unit tests read it.
"""

from __future__ import annotations

from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from sim_training.constants import HAND_SIDES

GOAL = "/piano/goal"
KEYS = "/piano/keys"
SUSTAIN = "/piano/sustain"
PROGRESS = "/piano/progress"
ESTOP = "/estop"
DIAGNOSTICS = "/diagnostics"
CLOCK = "/clock"
F1 = "/evaluator/f1"
REPORT = "/evaluator/report"
SCORE_START = "/score/start"
SCORE_STOP = "/score/stop"
SCORE_SEEK = "/score/seek"
GOAL_STAMP = "/score/goal_stamp"
"""std_msgs/Float64: CLOCK_MONOTONIC seconds of each /piano/goal publish (score ``stamp_goals``; loop benchmark)."""
"""std_srvs/Trigger: jump to the step in the score node's ``seek_step`` parameter (set it first)."""
ONSET_F1 = "/evaluator/onset_f1"
POLICY_REARM = "/policy/rearm"


def joint_states(side: str) -> str:
    """``/left_hand/joint_states`` | ``/right_hand/joint_states``."""
    _check_side(side)
    return f"/{side}_hand/joint_states"


def servo_states(side: str) -> str:
    """``/<side>_hand/servo_states``: a hand driver's servo readings (sensor_msgs/JointState, one entry per
    servo, actuator names) when the full joint states come from elsewhere (the MuJoCo mock in a HIL run)."""
    _check_side(side)
    return f"/{side}_hand/servo_states"


def commands(side: str) -> str:
    """``/<side>_hand/position_controller/commands`` (std_msgs/Float64MultiArray, actuator ctrl units)."""
    _check_side(side)
    return f"/{side}_hand/position_controller/commands"


def trajectory(side: str) -> str:
    """``/<side>_hand/position_controller/joint_trajectory`` (trajectory_msgs/JointTrajectory: action chunks)."""
    _check_side(side)
    return f"/{side}_hand/position_controller/joint_trajectory"


def _check_side(side: str) -> None:
    if side not in HAND_SIDES:
        raise ValueError(f"unknown hand side {side!r}; expected one of {HAND_SIDES}")


def _reliable(depth: int, transient_local: bool = False) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if transient_local else DurabilityPolicy.VOLATILE)


JOINT_STATES_QOS = _reliable(10)
COMMAND_PUB_QOS = _reliable(1)
"""The policy publishes commands reliably, depth 1 (only the newest command matters)."""
COMMAND_SUB_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
"""Receivers (mock, hand driver) take commands best-effort, depth 1: a late command is worthless."""


def command_sub_qos(deadline_s: float) -> QoSProfile:
    """:data:`COMMAND_SUB_QOS` plus a DDS deadline. Only for a publisher that offers a deadline at least as
    short: against :data:`COMMAND_PUB_QOS` (no deadline) the QoS is incompatible and nothing arrives, which
    is why the hand driver subscribes with :data:`COMMAND_SUB_QOS` (its filter has the command watchdog)."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT,
                      deadline=Duration(seconds=deadline_s))


TRAJECTORY_QOS = _reliable(1)
GOAL_QOS = _reliable(1)
GOAL_CHECK_QOS = _reliable(10)
GOAL_STAMP_QOS = _reliable(100)
"""The evaluator keeps every goal (it pairs them with /piano/progress); compatible with GOAL_QOS."""
KEYS_QOS = _reliable(100)
"""The evaluator must see every step's keys: a deep history on both ends, so an evaluator a few periods
behind (a loaded machine, a lock-step graph running faster than real time) loses none (5 s at 20 Hz)."""
SUSTAIN_QOS = _reliable(1)
PROGRESS_QOS = _reliable(10)
ESTOP_QOS = _reliable(1, transient_local=True)
"""Latched: a late joiner sees the current e-stop state at once."""
DIAGNOSTICS_QOS = _reliable(10)
CLOCK_QOS = _reliable(1)
F1_QOS = _reliable(10)
ONSET_F1_QOS = _reliable(10)
REPORT_QOS = _reliable(1, transient_local=True)
