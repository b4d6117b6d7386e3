"""Bring a graph up without ``launch``: in one process (:class:`Graph`), or one process per node
(:class:`ProcessGraph`, what launch_ros does).

:class:`Graph`: one rclpy context, one executor thread per node; a context manager that calls
:func:`omnipianist.dds.use_loopback` before ``rclpy.init`` (set ``OMNIPIANIST_DDS_PROFILE`` to leave
loopback on purpose). Tests and ``play`` use it: they read the nodes' state directly.

:class:`ProcessGraph`: each node is ``python -m omnipianist_ros.nodes.main KIND --ros-args -r
__node:=NAME --params-file FILE`` (the parameter file of :mod:`omnipianist_ros.launching`, as the
launch files write it), every process with the loopback DDS environment. No GIL is shared between
nodes, so the physics, the policy's inference and the score's timer do not delay each other: the
real-time runs (``omnipianist bench loop``, ``omnipianist bringup --processes``) use it.

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
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from omnipianist.dds import use_loopback
from omnipianist.errors import ConfigError
from omnipianist_ros.config import BringupConfig, NodeSpec
from omnipianist_ros.launching import node_list
from omnipianist_ros.registry import NODES
from omnipianist_ros.spinning import Spinner

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
    return cls


def overrides(spec: NodeSpec) -> list[Any]:
    """rclpy parameter overrides for one node of the config."""
    from rclpy.parameter import Parameter

    return [Parameter(k, value=v) for k, v in spec.ros_parameters().items()]


def create_node(spec: NodeSpec, context: Any) -> Any:
    return _node_class(spec.name)(spec.name, overrides(spec), context=context)



def wait_until(predicate: Callable[[], bool], alive: Callable[[], bool], timeout_s: float, poll_s: float) -> bool:
    """Poll ``predicate()`` (wall clock) until it holds, ``timeout_s`` passes or ``alive()`` turns False."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        if not alive():
            return predicate()
        time.sleep(poll_s)
    return predicate()

class Graph:
    """The nodes of ``config``, each spun by its own SingleThreadedExecutor in a background thread
    (``with Graph(cfg) as g: ...``). ``g.nodes[name]`` is the node; :meth:`add_node` spins another."""

    def __init__(self, config: BringupConfig) -> None:
        self.config = config
        self.nodes: dict[str, Any] = {}
        self.context: Any = None
        self._spinners: list[Spinner] = []
        self._extra: list[Any] = []

    def __enter__(self) -> Graph:
        classes = {spec.name: _node_class(spec.name) for spec in self.config.nodes}  # ConfigError before DDS
        use_loopback()
        import rclpy
        from rclpy.context import Context
        from rclpy.signals import SignalHandlerOptions

        self.context = Context()
        # no rclpy signal handlers: Ctrl-C stays the caller's (a KeyboardInterrupt, or spin_forever's flag)
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
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
        self._spinners.append(Spinner(executor, node.get_name()).start())

    @property
    def alive(self) -> bool:
        return bool(self._spinners) and all(sp.alive for sp in self._spinners)

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float, poll_s: float = 0.02) -> bool:
        """Wait (wall clock) until ``predicate()``; False on timeout or if an executor thread died."""
        return wait_until(predicate, lambda: self.alive, timeout_s, poll_s)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._shutdown()

    def _shutdown(self) -> None:
        import rclpy

        for sp in self._spinners:
            sp.request_stop()
        for sp in self._spinners:  # no callback may run on a node being destroyed
            sp.stop(timeout_s=2.0)
        # reverse start order: consumers before producers (HIL: the drivers torque off and close their
        # ports before the mock stops the emulated buses)
        for node in [*reversed(self._extra), *reversed(list(self.nodes.values()))]:
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()
        if self.context is not None and self.context.ok():
            rclpy.shutdown(context=self.context)
        for sp in self._spinners:  # one still in a callback at stop() ends with the context
            sp.join(timeout_s=2.0)


class ProcessGraph:
    """The nodes of ``config``, one process each (``with ProcessGraph(cfg) as g: ...``).

    ``output``: ``"screen"`` (the children write to this process's stdout / stderr, as launch's
    ``output='screen'``) or ``"log"`` (one ``<name>.log`` per node in :attr:`directory`; :meth:`log`
    reads it). ``env``: extra environment variables for every node. Leaving the block stops every node
    (:meth:`stop`: SIGINT, then SIGKILL after ``stop_timeout_s``).
    """

    def __init__(self, config: BringupConfig, *, output: str = "log", env: dict[str, str] | None = None,
                 node_env: dict[str, dict[str, str]] | None = None, stop_timeout_s: float = 5.0,
                 python: str = sys.executable) -> None:
        if output not in ("screen", "log"):
            raise ValueError(f"output must be 'screen' or 'log', got {output!r}")
        for spec in config.nodes:
            if spec.name not in NODES:
                raise ConfigError(f"unknown node {spec.name!r}; known: {sorted(NODES)}")
        self.config = config
        self.output = output
        self.extra_env = dict(env or {})
        self.node_env = {k: dict(v) for k, v in (node_env or {}).items()}
        """Per node: more environment variables (e.g. ``OMNIPIANIST_RT_PRIORITY`` for the real-time ones)."""
        self.stop_timeout_s = stop_timeout_s
        self.python = python
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.returncodes: dict[str, int] = {}
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.directory: Path | None = None
        self._logs: list[Any] = []

    def command(self, name: str, params_file: str | Path) -> list[str]:
        """The command line of node ``name`` (what launch_ros runs, with ``python -m`` for the script)."""
        return [self.python, "-m", "omnipianist_ros.nodes.main", name, "--ros-args", "-r", f"__node:={name}",
                "--params-file", str(params_file)]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        use_loopback(env)
        env.update(self.extra_env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def __enter__(self) -> ProcessGraph:
        self._tmp = tempfile.TemporaryDirectory(prefix="omnipianist-processes-")
        self.directory = Path(self._tmp.name)
        env = self.environment()
        try:
            for node in node_list(self.config):
                cmd = self.command(node.name, node.write_params(self.directory))
                node_env = {**env, **self.node_env.get(node.name, {})}
                if self.output == "log":
                    log = open(self.directory / f"{node.name}.log", "wb")  # noqa: SIM115 - closed in stop()
                    self._logs.append(log)
                    proc = subprocess.Popen(cmd, env=node_env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
                else:
                    proc = subprocess.Popen(cmd, env=node_env, stdin=subprocess.DEVNULL)
                self.processes[node.name] = proc
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.processes.items()}

    @property
    def alive(self) -> bool:
        return bool(self.processes) and all(p.poll() is None for p in self.processes.values())

    def exited(self) -> dict[str, int]:
        """Nodes that have exited, with their exit status."""
        return {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}

    def log(self, name: str) -> str:
        """What node ``name`` wrote (``output='log'``)."""
        if self.directory is None:
            return ""
        path = self.directory / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float, poll_s: float = 0.1) -> bool:
        """Wait until ``predicate()``; False on timeout or when a node process exited."""
        return wait_until(predicate, lambda: self.alive, timeout_s, poll_s)

    def signal_all(self, sig: int = signal.SIGINT) -> None:
        for p in self.processes.values():
            if p.poll() is None:
                try:
                    p.send_signal(sig)
                except ProcessLookupError:
                    pass

    def stop(self, timeout_s: float | None = None) -> dict[str, int]:
        """SIGINT every node (consumers first, as :class:`Graph` closes them), wait up to ``timeout_s``
        (default ``stop_timeout_s``), SIGKILL what is left; the exit statuses (-9: killed)."""
        timeout = self.stop_timeout_s if timeout_s is None else timeout_s
        for p in reversed(list(self.processes.values())):
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        end = time.monotonic() + timeout
        for name, p in self.processes.items():
            try:
                p.wait(timeout=max(0.0, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            self.returncodes[name] = p.returncode
        for log in self._logs:
            log.close()
        self._logs = []
        return dict(self.returncodes)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def spin_forever(config: BringupConfig, processes: bool = False) -> int:
    """Run the graph until Ctrl-C / SIGTERM (``processes``: one process per node; returns 1 when a node
    exited on its own with an error). The command-line entry: SIGINT and SIGTERM are ignored once it
    returns."""
    stop = threading.Event()
    # SIGINT / SIGTERM (any number: a terminal's Ctrl-C reaches the node processes too) set a flag; no
    # KeyboardInterrupt lands in the shutdown
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    failed: dict[str, int] = {}
    try:
        if not processes:
            with Graph(config) as g:
                while not stop.wait(0.2) and g.alive:
                    pass
        else:
            with ProcessGraph(config, output="screen") as g:
                while not stop.wait(0.2) and g.alive:
                    pass
                failed = {n: rc for n, rc in g.exited().items() if rc != 0}
    finally:
        # the command ends here: a late Ctrl-C must not turn into a KeyboardInterrupt on the way out
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
    for name, rc in failed.items():
        sys.stderr.write(f"bringup: node {name} exited with status {rc}\n")
    return 1 if failed else 0
