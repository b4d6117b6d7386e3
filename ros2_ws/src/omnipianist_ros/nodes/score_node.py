"""score node: the piece -> ``/piano/goal`` at the control rate on the ROS clock (``use_sim_time`` works).

Publishes, every control period: ``/piano/progress`` (std_msgs/Float64MultiArray
``[step, n_steps, start_time_s, state]``; state 0 idle, 1 waiting, 2 playing, 3 done; start_time_s is
NaN while idle), then ``/piano/goal``. Services ``/score/start``, ``/score/stop`` and ``/score/seek``
(std_srvs/Trigger): seek jumps to the writable parameter ``seek_s`` (seconds into the piece; set it
with ``ros2 param set /score seek_s 12.5`` first), starting the score if it is idle.
A bad ``file`` (missing or malformed MIDI) is a ScoreError naming the file, raised at start-up.
"""

from __future__ import annotations

import time
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor, ParameterType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from std_msgs.msg import Float32MultiArray, Float64, Float64MultiArray
from std_srvs.srv import Trigger

from omnipianist_ros import topics
from omnipianist_ros.messages import float64_array, goal_to_msg, time_s
from omnipianist_ros.params import ScoreParams, declare_and_read
from omnipianist_ros.score import ScoreSchedule, ScoreState
from sim_training.constants import CONTROL_DT_S


class ScoreNode(Node):
    def __init__(self, name: str = "score", overrides: list[Parameter[Any]] | None = None, **kwargs: Any) -> None:
        super().__init__(name, parameter_overrides=overrides or [], **kwargs)
        self.params = p = declare_and_read(self, ScoreParams)
        self.schedule = ScoreSchedule.from_piece(p.file, p.tempo_scale, p.lookahead, p.start_delay)
        self.goal_pub = self.create_publisher(Float32MultiArray, topics.GOAL, topics.GOAL_QOS)
        self.progress_pub = self.create_publisher(Float64MultiArray, topics.PROGRESS, topics.PROGRESS_QOS)
        self.stamp_pub = (self.create_publisher(Float64, topics.GOAL_STAMP, topics.GOAL_STAMP_QOS)
                          if p.stamp_goals else None)
        self.create_service(Trigger, topics.SCORE_START, self._on_start)
        self.create_service(Trigger, topics.SCORE_STOP, self._on_stop)
        self.create_service(Trigger, topics.SCORE_SEEK, self._on_seek)
        self.declare_parameter("seek_s", 0.0, ParameterDescriptor(
            type=ParameterType.PARAMETER_DOUBLE, description="/score/seek target: seconds into the piece"))
        self._seek_requested: float | None = None
        self._start_requested = p.autostart
        self.last_state = ScoreState.IDLE
        self.ticks = 0
        self.goal_published_s: float | None = None
        """time.perf_counter() (CLOCK_MONOTONIC) of the last goal publish (loop benchmark)."""
        if p.tick_source == "clock":
            self.create_subscription(Clock, topics.CLOCK, lambda m: self._tick(time_s(m.clock)), topics.CLOCK_QOS)
        else:
            self.create_timer(p.period_s or CONTROL_DT_S, lambda: self._tick(self.get_clock().now().nanoseconds * 1e-9))
        self.get_logger().info(f"score: {p.file!r} x{p.tempo_scale}, {self.schedule.n_steps} steps, "
                               f"lookahead {p.lookahead}, tick on {p.tick_source}")

    def _on_start(self, _req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        self._start_requested = True
        res.success, res.message = True, "starting at the next tick"
        return res

    def _on_stop(self, _req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        self._start_requested = False
        self.schedule.stop()
        res.success, res.message = True, "stopped"
        return res

    def request_seek(self, to_s: float) -> None:
        """Seek to ``to_s`` seconds into the piece at the next tick (what /score/seek does)."""
        self._seek_requested = to_s

    def _on_seek(self, _req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        to_s = float(self.get_parameter("seek_s").value)
        if not 0.0 <= to_s < self.schedule.n_steps * self.schedule.dt_s:
            res.success = False
            res.message = f"seek_s {to_s} is outside the piece (0 .. {self.schedule.n_steps * self.schedule.dt_s:.2f} s)"
            return res
        self._seek_requested = to_s
        res.success, res.message = True, f"seeking to {to_s:.3f} s at the next tick"
        return res

    def _tick(self, now_s: float) -> None:
        sched = self.schedule
        if (self.params.loop and self._seek_requested is None and sched.start_s is not None
                and sched.step_at(now_s) >= sched.n_steps - 1 - self.params.lookahead):
            self._seek_requested = 0.0  # endless play: back to the start before the goals run out
        if self._seek_requested is not None:
            step = self.schedule.seek(now_s, self._seek_requested)
            self._seek_requested, self._start_requested = None, False
            self.get_logger().info(f"score: seek to step {step}")
        if self._start_requested and self.schedule.start_s is None:
            self.schedule.start(now_s)
            self._start_requested = False
        tick = self.schedule.tick(now_s)
        start = self.schedule.start_s if self.schedule.start_s is not None else float("nan")
        self.progress_pub.publish(float64_array([tick.step, self.schedule.n_steps, start, int(tick.state)],
                                                "step,n_steps,start_time_s,state"))
        msg = goal_to_msg(tick.goal)
        self.goal_published_s = time.perf_counter()
        self.goal_pub.publish(msg)
        if self.stamp_pub is not None:
            self.stamp_pub.publish(Float64(data=self.goal_published_s))
        self.ticks += 1
        if tick.state != self.last_state:
            self.get_logger().info(f"score: {tick.state.name.lower()} at t={now_s:.3f} s")
            self.last_state = tick.state
