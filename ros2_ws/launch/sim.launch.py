"""The simulation graph for users with a full ROS 2 install: ``ros2 launch omnipianist sim.launch.py``.

Reads the same YAML as ``omnipianist bringup`` (``config:=/path/to.yaml``, default the shipped
``sim.yaml``), validated by the same loader, and starts one process per node with its parameters.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from omnipianist_ros.config import EXECUTABLES, config_path, load_bringup_config


def _nodes(context, *args, **kwargs):
    cfg = load_bringup_config(LaunchConfiguration("config").perform(context))
    return [Node(package="omnipianist", executable=EXECUTABLES[spec.name], name=spec.name, output="screen",
                 parameters=[spec.ros_parameters()])
            for spec in cfg.nodes]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("config", default_value=str(config_path("sim.yaml")),
                              description="bringup YAML (ros2_ws/config/sim.yaml format)"),
        OpaqueFunction(function=_nodes),
    ])
