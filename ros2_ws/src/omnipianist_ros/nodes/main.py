"""One node per process (what ``launch_ros`` starts): ``<kind>_main()`` entry points.

Parameters and remappings come from the ``--ros-args`` on the command line, as launch_ros passes them.
Console scripts to register (setup.py): ``omnipianist_mujoco_mock = omnipianist_ros.nodes.main:mujoco_mock_main``,
``omnipianist_score = ...:score_main``, ``omnipianist_policy = ...:policy_main``,
``omnipianist_evaluator = ...:evaluator_main``, ``omnipianist_piano_listener = ...:piano_listener_main``,
``omnipianist_recorder = ...:recorder_main``, ``omnipianist_estop_heartbeat = ...:estop_heartbeat_main``,
``omnipianist_hand_driver = ...:hand_driver_main`` (one
executable for both hands: launch_ros names it ``hand_driver_left`` / ``hand_driver_right`` and passes
``side``).
"""

from __future__ import annotations

import sys

from omnipianist.dds import use_loopback


def run_node(kind: str, argv: list[str] | None = None) -> int:
    use_loopback()
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    from omnipianist_ros.bringup import _node_class

    cls = _node_class(kind)  # ConfigError (e.g. "hand driver node not available: ...") before DDS starts
    rclpy.init(args=sys.argv if argv is None else argv)
    node = cls(kind)
    executor = SingleThreadedExecutor()  # see bringup.py: MultiThreadedExecutor spins
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        close = getattr(node, "close", None)
        if close is not None:
            close()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


def mujoco_mock_main() -> int:
    return run_node("mujoco_mock")


def score_main() -> int:
    return run_node("score")


def policy_main() -> int:
    return run_node("policy")


def evaluator_main() -> int:
    return run_node("evaluator")


def piano_listener_main() -> int:
    return run_node("piano_listener")


def recorder_main() -> int:
    return run_node("recorder")


def estop_heartbeat_main() -> int:
    return run_node("estop_heartbeat")


def hand_driver_main() -> int:
    return run_node("hand_driver_left")  # same class for both hands; the node name and ``side`` come from --ros-args
