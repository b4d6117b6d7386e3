"""Bring a graph up without ``launch``: one process, one rclpy context, one MultiThreadedExecutor.

Use :class:`Graph` as a context manager; it calls :func:`omnipianist.dds.use_loopback` before
``rclpy.init`` (set ``OMNIPIANIST_DDS_PROFILE`` to leave loopback on purpose).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from omnipianist.dds import use_loopback
from omnipianist_ros.config import BringupConfig, NodeSpec


def _node_class(name: str) -> type:
    if name == "mujoco_mock":
        from omnipianist_ros.nodes.mock_node import MockNode

        return MockNode
    if name == "score":
        from omnipianist_ros.nodes.score_node import ScoreNode

        return ScoreNode
    if name == "policy":
        from omnipianist_ros.nodes.policy_node import PolicyNode

        return PolicyNode
    if name == "evaluator":
        from omnipianist_ros.nodes.evaluator_node import EvaluatorNode

        return EvaluatorNode
    raise KeyError(name)


def overrides(spec: NodeSpec) -> list[Any]:
    """rclpy parameter overrides for one node of the config."""
    from rclpy.parameter import Parameter

    return [Parameter(k, value=v) for k, v in spec.ros_parameters().items()]


def create_node(spec: NodeSpec, context: Any) -> Any:
    return _node_class(spec.name)(spec.name, overrides(spec), context=context)


class Graph:
    """The nodes of ``config`` spinning in a background thread (``with Graph(cfg) as g: ...``)."""

    def __init__(self, config: BringupConfig, threads: int = 4) -> None:
        self.config = config
        self.threads = threads
        self.nodes: dict[str, Any] = {}
        self._thread: threading.Thread | None = None
        self.context: Any = None
        self.executor: Any = None

    def __enter__(self) -> Graph:
        use_loopback()
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import MultiThreadedExecutor

        self.context = Context()
        rclpy.init(context=self.context)
        try:
            self.executor = MultiThreadedExecutor(num_threads=self.threads, context=self.context)
            for spec in self.config.nodes:
                node = create_node(spec, self.context)
                self.nodes[spec.name] = node
                self.executor.add_node(node)
        except BaseException:
            self._shutdown()
            raise
        self._thread = threading.Thread(target=self._spin, name="omnipianist-executor", daemon=True)
        self._thread.start()
        return self

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float, poll_s: float = 0.02) -> bool:
        """Wait (wall clock) until ``predicate()``; False on timeout or if the executor thread died."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if predicate():
                return True
            if self._thread is not None and not self._thread.is_alive():
                return predicate()
            time.sleep(poll_s)
        return predicate()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._shutdown()

    def _shutdown(self) -> None:
        import rclpy

        if self.executor is not None:
            self.executor.shutdown(timeout_sec=1.0)
        for node in self.nodes.values():
            node.destroy_node()
        if self.context is not None and self.context.ok():
            rclpy.shutdown(context=self.context)
        if self._thread is not None:
            self._thread.join(timeout=2.0)


def spin_forever(config: BringupConfig) -> None:
    """Run the graph until Ctrl-C."""
    with Graph(config) as g:
        try:
            while g._thread is not None and g._thread.is_alive():
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
