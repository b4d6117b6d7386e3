"""recorder node: every topic of the graph (or the ``topics`` listed) to one MCAP file.

Topics are discovered every ``discovery_period_s``; each is subscribed raw (CDR bytes, no
deserialisation) with a QoS its publishers can serve (reliable and transient-local only when every
publisher is), and written as received (CDR bytes, ``log_time`` = this node's clock) through
:class:`omnipianist_ros.mcap_writer.McapWriter` (``mcap.writer.Writer``, un-chunked). The file is flushed
and fsynced every ``flush_period_s`` (<= 1 s): a crash loses at most that much, and the file cut short
still reads (``mcap_writer.read_mcap``, ``mcap recover``). ``close()`` (and node destruction) writes the
summary and footer.
"""

from __future__ import annotations

import importlib
import time
from typing import Any

from rclpy.clock import Clock as RosClock
from rclpy.clock import ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from omnipianist_ros.mcap_writer import McapWriter, SchemaError
from omnipianist_ros.params import RecorderParams, declare_and_read


def get_message(type_name: str) -> type:
    """``pkg/msg/Type`` -> the Python message class (rosidl_runtime_py is not installed here)."""
    pkg, kind, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


class RecorderNode(Node):
    def __init__(self, name: str = "recorder", overrides: list[Parameter[Any]] | None = None, **kwargs: Any) -> None:
        super().__init__(name, parameter_overrides=overrides or [], **kwargs)
        self.params = p = declare_and_read(self, RecorderParams)
        self.path = time.strftime(p.output)
        self.writer: McapWriter | None = McapWriter(self.path)
        self.wanted = {t.strip() for t in p.topics.split(",") if t.strip()}
        self.recorded: dict[str, str] = {}
        self.skipped: dict[str, str] = {}
        self._subs: list[Any] = []
        steady = RosClock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(p.discovery_period_s, self.discover, clock=steady)
        self.create_timer(p.flush_period_s, self.flush, clock=steady)
        self.discover()
        self.get_logger().info(f"recorder: writing {self.path}")

    def _qos(self, topic: str) -> QoSProfile:
        infos = self.get_publishers_info_by_topic(topic)
        reliable = bool(infos) and all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
        latched = bool(infos) and all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos)
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                          reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)

    def discover(self) -> None:
        """Subscribe to topics not recorded yet (the ones with a publisher, so the QoS can be chosen)."""
        if self.writer is None:  # closed
            return
        for topic, types in self.get_topic_names_and_types():
            if topic in self.recorded or topic in self.skipped or (self.wanted and topic not in self.wanted):
                continue
            if not self.get_publishers_info_by_topic(topic):
                continue
            type_name = types[0]
            try:
                msg_type = get_message(type_name)
                self.writer.channel(topic, type_name)
            except (SchemaError, ValueError, AttributeError, ModuleNotFoundError) as exc:
                self.skipped[topic] = str(exc)
                self.get_logger().warning(f"recorder: not recording {topic} ({type_name}): {exc}")
                continue
            self._subs.append(self.create_subscription(
                msg_type, topic, lambda data, t=topic, n=type_name: self._on_message(t, n, data),
                self._qos(topic), raw=True))
            self.recorded[topic] = type_name

    def _on_message(self, topic: str, type_name: str, data: bytes) -> None:
        if self.writer is not None:
            self.writer.write(topic, type_name, data, self.get_clock().now().nanoseconds)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        """Write the summary and footer and close the file (idempotent)."""
        if self.writer is not None:
            self.writer.close()
            self.get_logger().info(f"recorder: {self.writer.messages} messages on {len(self.recorded)} topics "
                                   f"in {self.path}")
            self.writer = None

    def destroy_node(self) -> None:
        self.close()
        super().destroy_node()
