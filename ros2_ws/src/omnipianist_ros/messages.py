"""numpy <-> ROS message conversions (no node, no DDS).

Units: joint positions rad (hinges) / m (slides); commands in actuator ctrl units (see
:mod:`omnipianist_ros.control`); key state = fraction of key travel 0..1 (Joy axes), key active
(Joy buttons) = within 0.5 degrees of the bottom of travel.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from builtin_interfaces.msg import Duration as DurationMsg
from builtin_interfaces.msg import Time
from sensor_msgs.msg import JointState, Joy
from std_msgs.msg import Float32MultiArray, Float64MultiArray, MultiArrayDimension, MultiArrayLayout
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from sim_training.constants import GOAL_WIDTH, NUM_KEYS


def time_msg(t_s: float) -> Time:
    """builtin_interfaces/Time of ``t_s`` seconds (rounded to the nanosecond)."""
    ns = round(t_s * 1e9)
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def time_s(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def time_ns(stamp: Time) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def goal_to_msg(goal: np.ndarray) -> Float32MultiArray:
    """(lookahead+1, 89) float32 goal window -> Float32MultiArray with dims ``step`` x ``key``."""
    g = np.asarray(goal, dtype=np.float32)
    if g.ndim != 2 or g.shape[1] != GOAL_WIDTH:
        raise ValueError(f"goal must be (lookahead + 1, {GOAL_WIDTH}), got {g.shape}")
    layout = MultiArrayLayout(dim=[MultiArrayDimension(label="step", size=g.shape[0], stride=g.size),
                                   MultiArrayDimension(label="key", size=GOAL_WIDTH, stride=GOAL_WIDTH)])
    msg = Float32MultiArray(layout=layout)
    msg.data = g.ravel()  # rclpy takes a float32 array as is (array('f'))
    return msg


def msg_to_goal(msg: Float32MultiArray, lookahead: int) -> np.ndarray:
    """Float32MultiArray -> (lookahead+1, 89) float32; ValueError if the size does not match."""
    data = np.asarray(msg.data, dtype=np.float32)
    want = (lookahead + 1) * GOAL_WIDTH
    if data.size != want:
        raise ValueError(f"/piano/goal has {data.size} values, expected (lookahead {lookahead} + 1) x "
                         f"{GOAL_WIDTH} = {want}: score and policy lookahead differ")
    return data.reshape(lookahead + 1, GOAL_WIDTH)


def keys_to_joy(key_state: np.ndarray, active: np.ndarray, stamp_s: float, frame_id: str = "piano") -> Joy:
    """(88,) key depression 0..1 and (88,) active -> Joy (axes = depression, buttons = active)."""
    msg = Joy()
    msg.header.stamp = time_msg(stamp_s)
    msg.header.frame_id = frame_id
    msg.axes = np.asarray(key_state, dtype=np.float32)
    msg.buttons = [int(b) for b in np.asarray(active, dtype=bool)]
    return msg


def joy_to_keys(msg: Joy) -> tuple[np.ndarray, np.ndarray]:
    """Joy -> ((88,) float32 key depression, (88,) bool active); ValueError on a wrong size."""
    axes = np.asarray(msg.axes, dtype=np.float32)
    buttons = np.asarray(msg.buttons, dtype=np.int64)
    if axes.size != NUM_KEYS or buttons.size != NUM_KEYS:
        raise ValueError(f"/piano/keys must carry {NUM_KEYS} axes and {NUM_KEYS} buttons, "
                         f"got {axes.size} and {buttons.size}")
    return axes, buttons.astype(bool)


def joint_state_msg(names: Sequence[str], position: np.ndarray, velocity: np.ndarray | None,
                    stamp_s: float) -> JointState:
    msg = JointState()
    msg.header.stamp = time_msg(stamp_s)
    msg.name = list(names)
    msg.position = np.asarray(position, dtype=np.float64)
    if velocity is not None:
        msg.velocity = np.asarray(velocity, dtype=np.float64)
    return msg


def float64_array(values: npt.ArrayLike, label: str = "") -> Float64MultiArray:
    v = np.asarray(values, dtype=np.float64)
    layout = MultiArrayLayout(dim=[MultiArrayDimension(label=label, size=v.size, stride=v.size)] if label else [])
    msg = Float64MultiArray(layout=layout)
    msg.data = v
    return msg


class JointOrder:
    """Reorder JointState positions by name into a fixed joint order.

    The index map is computed once per distinct name list (drivers send the same list every time).
    Raises ValueError naming the joints missing from a message.
    """

    def __init__(self, names: Sequence[str], topic: str = "joint_states") -> None:
        self.names = tuple(names)
        self.topic = topic
        self._cached_names: tuple[str, ...] | None = None
        self._index = np.zeros(0, dtype=np.int64)

    def positions(self, msg_names: Sequence[str], positions: Sequence[float]) -> np.ndarray:
        names = tuple(msg_names)
        if names != self._cached_names:
            where = {n: i for i, n in enumerate(names)}
            missing = [n for n in self.names if n not in where]
            if missing:
                raise ValueError(f"{self.topic}: joints missing from the message: {missing}")
            self._index = np.array([where[n] for n in self.names], dtype=np.int64)
            self._cached_names = names
        pos = np.asarray(positions, dtype=np.float64)
        if pos.size != len(names):
            raise ValueError(f"{self.topic}: {len(names)} names but {pos.size} positions")
        return pos[self._index]


def time_from_ns(ns: int) -> Time:
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def duration_msg(t_s: float) -> DurationMsg:
    ns = round(t_s * 1e9)
    return DurationMsg(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def chunk_trajectory(names: Sequence[str], command: np.ndarray, rest: Sequence[np.ndarray], dt_s: float,
                     stamp: Time) -> JointTrajectory:
    """The action chunk as a JointTrajectory: point 0 = this step's (filtered) command at
    ``time_from_start`` 0, then the chunk's later actions at ``k * dt_s`` (ctrl units, ``names`` order)."""
    msg = JointTrajectory()
    msg.header.stamp = stamp
    msg.joint_names = list(names)
    for k, values in enumerate([command, *rest]):
        msg.points.append(JointTrajectoryPoint(positions=np.asarray(values, dtype=np.float64),
                                               time_from_start=duration_msg(k * dt_s)))
    return msg


def builtin_time_zero() -> Time:
    return Time(sec=0, nanosec=0)
