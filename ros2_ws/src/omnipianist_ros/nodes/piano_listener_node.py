"""piano_listener node: a real digital piano's MIDI input -> ``/piano/keys`` (sensor_msgs/Joy), stamped at receipt.

Opens the MIDI input named by ``port`` (mido + python-rtmidi); each message is stamped with this
node's clock when the backend hands it over (rtmidi's callback thread) and ``/piano/keys`` is
published at once when a key changed, and at least every ``publish_period_s`` otherwise. An object
with ``iter_pending()`` can be passed as ``port=`` instead (tests, virtual ports): it is polled at
``rate_hz`` and stamped at the poll.
"""

from __future__ import annotations

import threading
from typing import Any

from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Joy

from omnipianist_ros import topics
from omnipianist_ros.messages import keys_to_joy
from omnipianist_ros.midi_input import KeyTracker, open_input
from omnipianist_ros.params import PianoListenerParams, declare_and_read


class PianoListenerNode(Node):
    def __init__(self, name: str = "piano_listener", overrides: list[Parameter[Any]] | None = None,
                 port: Any = None, **kwargs: Any) -> None:
        super().__init__(name, parameter_overrides=overrides or [], **kwargs)
        self.params = p = declare_and_read(self, PianoListenerParams)
        self.tracker = KeyTracker(p.channel)
        self.keys_pub = self.create_publisher(Joy, topics.KEYS, topics.KEYS_QOS)
        self._lock = threading.Lock()
        self._last_publish_s = float("-inf")
        self.published = 0
        if port is None:
            self.port = open_input(p.port, callback=self._on_message)  # ConfigError names the port
            self.get_logger().info(f"piano_listener: listening on {getattr(self.port, 'name', p.port)!r}")
        else:
            self.port = port
            self.create_timer(1.0 / p.rate_hz, self._poll)
        if p.publish_period_s > 0:
            self.create_timer(p.publish_period_s, self._keepalive)

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_message(self, msg: Any) -> None:
        """Backend thread: stamp at receipt, publish on change."""
        now = self._now_s()
        with self._lock:
            if self.tracker.feed(msg):
                self._publish(now)

    def _poll(self) -> None:
        now = self._now_s()
        with self._lock:
            if self.tracker.feed_all(self.port.iter_pending()):
                self._publish(now)

    def _keepalive(self) -> None:
        now = self._now_s()
        with self._lock:
            if now - self._last_publish_s >= 0.9 * self.params.publish_period_s:
                self._publish(now)

    def _publish(self, stamp_s: float) -> None:
        self.keys_pub.publish(keys_to_joy(self.tracker.key_state(), self.tracker.active, stamp_s, "piano_midi"))
        self._last_publish_s = stamp_s
        self.published += 1

    def close(self) -> None:
        close = getattr(self.port, "close", None)
        if close is not None:
            close()
