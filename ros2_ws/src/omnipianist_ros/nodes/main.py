"""One node per process (what ``launch_ros`` starts): ``<kind>_main()`` entry points.

Parameters and remappings come from the ``--ros-args`` on the command line, as launch_ros passes them.
Console scripts to register (setup.py): ``omnipianist_mujoco_mock = omnipianist_ros.nodes.main:mujoco_mock_main``,
``omnipianist_score = ...:score_main``, ``omnipianist_policy = ...:policy_main``,
``omnipianist_evaluator = ...:evaluator_main``.
"""

from __future__ import annotations

import sys

from omnipianist.dds import use_loopback


def run_node(kind: str, argv: list[str] | None = None) -> int:
    use_loopback()
    import rclpy
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

    from omnipianist_ros.bringup import _node_class

    rclpy.init(args=sys.argv if argv is None else argv)
    node = _node_class(kind)(kind)
    executor = MultiThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
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
