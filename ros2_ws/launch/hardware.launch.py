"""The real rig for users with a full ROS 2 install: ``ros2 launch omnipianist hardware.launch.py``.

Reads the same YAML as ``omnipianist bringup`` (``config:=...``, default the shipped ``hardware.yaml``;
``hardware_config:=...`` overrides the hardware_config folder of every node), validated by the same
loader. One process per node; the hand drivers (``hand_driver_left`` / ``hand_driver_right``, one
``omnipianist_hand_driver`` executable) are lifecycle nodes: configure and activate them with
``ros2 lifecycle set /hand_driver_left configure`` / ``activate`` (or ``autostart: true``).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from omnipianist_ros.config import EXECUTABLES, config_path, load_bringup_config

HAND_DRIVERS = ("hand_driver_left", "hand_driver_right")


def _nodes(context, *args, **kwargs):
    cfg = load_bringup_config(LaunchConfiguration("config").perform(context))
    hw = LaunchConfiguration("hardware_config").perform(context)
    actions = []
    for spec in cfg.nodes:
        params = spec.ros_parameters()
        if hw and "hardware_config" in params:
            params["hardware_config"] = hw
        if spec.name in HAND_DRIVERS:
            actions.append(LifecycleNode(package="omnipianist", executable=EXECUTABLES[spec.name], name=spec.name,
                                         namespace="", output="screen", parameters=[params]))
        else:
            actions.append(Node(package="omnipianist", executable=EXECUTABLES[spec.name], name=spec.name,
                                output="screen", parameters=[params]))
    return actions


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("config", default_value=str(config_path("hardware.yaml")),
                              description="bringup YAML (ros2_ws/config/hardware.yaml format)"),
        DeclareLaunchArgument("hardware_config", default_value="",
                              description="hardware_config/ folder ('' = the YAML's)"),
        OpaqueFunction(function=_nodes),
    ])
