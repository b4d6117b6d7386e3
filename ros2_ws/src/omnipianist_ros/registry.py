"""The node registry: every node kind of the graph, in one table.

Read by the bringup YAML loader (:mod:`omnipianist_ros.config`: kind -> parameter dataclass), the
launch-free bringup (:mod:`omnipianist_ros.bringup`: kind -> node class, in one process or one process
per node), the launch files (through :mod:`omnipianist_ros.launching`: kind -> console script,
lifecycle or not), ``setup.py`` (the ``console_scripts``) and :mod:`omnipianist_ros.nodes.main` (the
entry points).

This module imports nothing of the project (and nothing outside the standard library) at module
level: ``setup.py`` loads it by path, before anything is installed. Classes are named by strings and
imported on demand (:meth:`NodeKind.params_class`, :meth:`NodeKind.node_class`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

NODE_MAIN_MODULE = "omnipianist_ros.nodes.main"
PARAMS_MODULE = "omnipianist_ros.params"


@dataclass(frozen=True)
class NodeKind:
    name: str
    """The node's name and its ``bringup.nodes`` entry (``hand_driver_left``)."""
    params: str
    """Its parameter dataclass in :mod:`omnipianist_ros.params`."""
    module: str
    """Module of the node class."""
    cls: str
    """The node class."""
    executable: str
    """Console script (``ros2 run omnipianist <executable>``; what launch_ros starts)."""
    entry: str
    """Function of :mod:`omnipianist_ros.nodes.main` behind the console script."""
    lifecycle: bool = False
    """A ROS 2 managed (lifecycle) node: launch files start it as ``launch_ros.actions.LifecycleNode``."""
    hardware: bool = False
    """Talks to hardware (or its emulation): ImportErrors of its module are reported as 'not available'."""

    @property
    def console_script(self) -> str:
        """The ``console_scripts`` line of setup.py."""
        return f"{self.executable} = {NODE_MAIN_MODULE}:{self.entry}"

    def params_class(self) -> type:
        return getattr(importlib.import_module(PARAMS_MODULE), self.params)

    def node_class(self) -> type:
        """The node class (imports its module: rclpy and the node's dependencies)."""
        return getattr(importlib.import_module(self.module), self.cls)


_N = "omnipianist_ros.nodes."
NODES: dict[str, NodeKind] = {k.name: k for k in (
    NodeKind("mujoco_mock", "MockParams", _N + "mock_node", "MockNode", "omnipianist_mujoco_mock", "mujoco_mock_main"),
    NodeKind("score", "ScoreParams", _N + "score_node", "ScoreNode", "omnipianist_score", "score_main"),
    NodeKind("policy", "PolicyParams", _N + "policy_node", "PolicyNode", "omnipianist_policy", "policy_main"),
    NodeKind("evaluator", "EvaluatorParams", _N + "evaluator_node", "EvaluatorNode", "omnipianist_evaluator",
             "evaluator_main"),
    NodeKind("piano_listener", "PianoListenerParams", _N + "piano_listener_node", "PianoListenerNode",
             "omnipianist_piano_listener", "piano_listener_main"),
    NodeKind("recorder", "RecorderParams", _N + "recorder_node", "RecorderNode", "omnipianist_recorder",
             "recorder_main"),
    # one executable for both hands: launch_ros names it hand_driver_left / _right and passes ``side``
    NodeKind("hand_driver_left", "HandDriverParams", _N + "hand_driver_node", "HandDriverNode",
             "omnipianist_hand_driver", "hand_driver_main", lifecycle=True, hardware=True),
    NodeKind("hand_driver_right", "HandDriverParams", _N + "hand_driver_node", "HandDriverNode",
             "omnipianist_hand_driver", "hand_driver_main", lifecycle=True, hardware=True),
    NodeKind("estop_heartbeat", "EstopHeartbeatParams", _N + "estop_heartbeat_node", "EstopHeartbeatNode",
             "omnipianist_estop_heartbeat", "estop_heartbeat_main"),
)}
"""Node kind -> :class:`NodeKind`, in the order the graphs list them."""


def node_kind(name: str) -> NodeKind:
    """The kind of node ``name``; KeyError listing the known kinds."""
    try:
        return NODES[name]
    except KeyError:
        raise KeyError(f"unknown node {name!r}; known: {list(NODES)}") from None


def console_scripts() -> list[str]:
    """setup.py's ``console_scripts`` for the nodes (one per executable)."""
    seen: dict[str, str] = {}
    for kind in NODES.values():
        seen.setdefault(kind.executable, kind.console_script)
    return list(seen.values())


def executable_kind(executable: str) -> NodeKind:
    """The (first) kind started by ``executable``."""
    for kind in NODES.values():
        if kind.executable == executable:
            return kind
    raise KeyError(f"no node kind has the executable {executable!r}")
