"""Hardware in the loop for users with a full ROS 2 install: ``ros2 launch omnipianist hil.launch.py``.

The graph of ``ros2_ws/config/hil.yaml`` (``config:=...`` to use another): the MuJoCo mock serving one
emulated Dynamixel bus (pty) per hand, the two hand drivers (``LifecycleNode``, autostart: they configure
at once and activate when the e-stop heartbeat is live), the heartbeat, score, policy and evaluator —
one process per node, parameters from the same YAML through the same loader as ``omnipianist bringup``.
The drivers open the ports the mock links under ``hil_port_dir``.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from omnipianist_ros.config import EXECUTABLES, config_path, load_bringup_config

HAND_DRIVERS = ("hand_driver_left", "hand_driver_right")


def _nodes(context, *args, **kwargs):
    cfg = load_bringup_config(LaunchConfiguration("config").perform(context))
    actions = []
    for spec in cfg.nodes:
        params = [spec.ros_parameters()]
        if spec.name in HAND_DRIVERS:
            actions.append(LifecycleNode(package="omnipianist", executable=EXECUTABLES[spec.name], name=spec.name,
                                         namespace="", output="screen", parameters=params))
        else:
            actions.append(Node(package="omnipianist", executable=EXECUTABLES[spec.name], name=spec.name,
                                output="screen", parameters=params))
    return actions


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("config", default_value=str(config_path("hil.yaml")),
                              description="bringup YAML (ros2_ws/config/hil.yaml format)"),
        OpaqueFunction(function=_nodes),
    ])
