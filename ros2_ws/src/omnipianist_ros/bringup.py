"""Bring a graph up without ``launch``: one process, one rclpy context, one executor thread per node.

Use :class:`Graph` as a context manager; it calls :func:`omnipianist.dds.use_loopback` before
``rclpy.init`` (set ``OMNIPIANIST_DDS_PROFILE`` to leave loopback on purpose).

Why one ``SingleThreadedExecutor`` per node and not one ``MultiThreadedExecutor`` for all (the cause
of the real-time stall, issue #7): rclpy's MultiThreadedExecutor hands each ready callback to a
thread pool as a Task, and every time its wait loop comes round it *re-yields and re-submits* every
Task that a pool thread has not started yet. Until a worker thread gets the GIL, the executor thread
therefore spins (measured: ~3,400 pool submissions/s for ~300 real callbacks/s on a 2-core machine
under load), holding the GIL against the very callbacks it dispatches; the policy's IK step went
from ~1 ms to 50-150 ms, inputs went stale, the command watchdog held and then turned torque off
(loop period p99 ~ 0.2-1 s). A SingleThreadedExecutor runs each callback in its own thread and only
waits when there is nothing to do, and one per node keeps a slow node (physics) from delaying the
policy's timer; MuJoCo releases the GIL while it steps.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from omnipianist.dds import use_loopback
from omnipianist.errors import ConfigError
from omnipianist_ros.config import BringupConfig, NodeSpec
from omnipianist_ros.registry import NODES

NODE_CLASSES: dict[str, tuple[str, str]] = {name: (kind.module, kind.cls) for name, kind in NODES.items()}
"""Node name -> (module, class): a view of :data:`omnipianist_ros.registry.NODES`."""

HAND_DRIVERS = tuple(name for name, kind in NODES.items() if kind.hardware)


def _node_class(name: str) -> type:
    """The node class for a node name. ConfigError for an unknown name or a hand driver that is not
    installed ("hand driver node not available: ..."), never a bare ImportError."""
    if name not in NODE_CLASSES:
        raise ConfigError(f"unknown node {name!r}; known: {sorted(NODE_CLASSES)}")
    module_name, cls_name = NODE_CLASSES[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if name in HAND_DRIVERS:
            raise ConfigError(f"hand driver node not available: cannot import {module_name} ({exc}); "
                              f"{name} needs ros2_ws/src/omnipianist_ros/nodes/hand_driver_node.py") from exc
        raise
    cls = getattr(module, cls_name, None)
    if cls is None:
        what = "hand driver node not available" if name in HAND_DRIVERS else "node class missing"
        raise ConfigError(f"{what}: {module_name} has no class {cls_name}")
    return cls  # type: ignore[no-any-return]


def overrides(spec: NodeSpec) -> list[Any]:
    """rclpy parameter overrides for one node of the config."""
    from rclpy.parameter import Parameter

    return [Parameter(k, value=v) for k, v in spec.ros_parameters().items()]


def create_node(spec: NodeSpec, context: Any) -> Any:
    return _node_class(spec.name)(spec.name, overrides(spec), context=context)


class Graph:
    """The nodes of ``config``, each spun by its own SingleThreadedExecutor in a background thread
    (``with Graph(cfg) as g: ...``). ``g.nodes[name]`` is the node; :meth:`add_node` spins another."""

    def __init__(self, config: BringupConfig) -> None:
        self.config = config
        self.nodes: dict[str, Any] = {}
        self.context: Any = None
        self._spinners: list[tuple[Any, threading.Thread]] = []
        self._extra: list[Any] = []

    def __enter__(self) -> Graph:
        classes = {spec.name: _node_class(spec.name) for spec in self.config.nodes}  # ConfigError before DDS
        use_loopback()
        import rclpy
        from rclpy.context import Context

        self.context = Context()
        rclpy.init(context=self.context)
        try:
            for spec in self.config.nodes:
                self.nodes[spec.name] = classes[spec.name](spec.name, overrides(spec), context=self.context)
            # the classes are resolved and every node constructed before anything spins
            for node in self.nodes.values():
                self._spin(node)
        except BaseException:
            self._shutdown()
            raise
        return self

    def add_node(self, node: Any) -> None:
        """Spin an extra node (a probe) in this graph's context; destroyed with the graph."""
        self._extra.append(node)
        self._spin(node)

    def _spin(self, node: Any) -> None:
        from rclpy.executors import SingleThreadedExecutor

        executor = SingleThreadedExecutor(context=self.context)
        executor.add_node(node)
        thread = threading.Thread(target=self._run, args=(executor,), name=f"spin-{node.get_name()}",
                                  daemon=True)
        self._spinners.append((executor, thread))
        thread.start()

    @staticmethod
    def _run(executor: Any) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            executor.spin()
        except ExternalShutdownException:
            pass

    @property
    def alive(self) -> bool:
        return bool(self._spinners) and all(t.is_alive() for _, t in self._spinners)

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float, poll_s: float = 0.02) -> bool:
        """Wait (wall clock) until ``predicate()``; False on timeout or if an executor thread died."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if predicate():
                return True
            if not self.alive:
                return predicate()
            time.sleep(poll_s)
        return predicate()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._shutdown()

    def _shutdown(self) -> None:
        import rclpy

        for executor, _ in self._spinners:
            executor.shutdown(timeout_sec=1.0)
        for _, thread in self._spinners:  # no callback may run on a node being destroyed
            thread.join(timeout=2.0)
        # reverse start order: consumers before producers (HIL: the drivers torque off and close their
        # ports before the mock stops the emulated buses)
        for node in [*reversed(self._extra), *reversed(list(self.nodes.values()))]:
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()
        if self.context is not None and self.context.ok():
            rclpy.shutdown(context=self.context)
        for _, thread in self._spinners:
            thread.join(timeout=2.0)


def spin_forever(config: BringupConfig) -> None:
    """Run the graph until Ctrl-C."""
    with Graph(config) as g:
        try:
            while g.alive:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
