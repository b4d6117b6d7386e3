"""estop_heartbeat node: publishes ``/estop`` False (std_msgs/Bool, ``topics.ESTOP_QOS``: latched) at ``rate_hz``.

The software stand-in for the lab's e-stop button node in HIL and simulation graphs: the hand drivers and
the policy's filter (with a heartbeat timeout) need a live e-stop publisher before they arm. It never
asserts the e-stop; a test or an operator publishes True on ``/estop`` for that.

Two clocks: a steady-clock timer (wall time, what a real button node does) and, with ``use_sim_time``,
one heartbeat per ``1/rate_hz`` of simulated time read from ``/clock``, because the receivers judge the
heartbeat's age on their ROS clock, which in a lock-step graph can run many times faster than the wall.
"""

from __future__ import annotations

from typing import Any

from rclpy.clock import Clock as RosClock
from rclpy.clock import ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from std_msgs.msg import Bool

from omnipianist_ros import topics
from omnipianist_ros.messages import time_s
from omnipianist_ros.params import EstopHeartbeatParams, declare_and_read


class EstopHeartbeatNode(Node):
    def __init__(self, name: str = "estop_heartbeat", overrides: list[Parameter[Any]] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(name, parameter_overrides=overrides or [], **kwargs)
        self.params = p = declare_and_read(self, EstopHeartbeatParams)
        self.period_s = 1.0 / p.rate_hz
        self.pub = self.create_publisher(Bool, topics.ESTOP, topics.ESTOP_QOS)
        self.sent = 0
        self._last_sim_s: float | None = None
        self.create_timer(self.period_s, self.beat, clock=RosClock(clock_type=ClockType.STEADY_TIME))
        if self.get_parameter("use_sim_time").value:
            self.create_subscription(Clock, topics.CLOCK, self._on_clock, topics.CLOCK_QOS)
        self.beat()

    def beat(self) -> None:
        self.pub.publish(Bool(data=False))
        self.sent += 1

    def _on_clock(self, msg: Clock) -> None:
        now = time_s(msg.clock)
        if self._last_sim_s is None or now - self._last_sim_s >= self.period_s - 1e-9 or now < self._last_sim_s:
            self._last_sim_s = now
            self.beat()
