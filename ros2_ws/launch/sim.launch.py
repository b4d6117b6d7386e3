"""The simulation graph for users with a full ROS 2 install: ``ros2 launch omnipianist sim.launch.py``.

Arguments (``ros2 launch omnipianist sim.launch.py --show-args``): ``config:=`` (a bringup YAML path or
the name of a shipped one; default ``sim.yaml``), ``policy:=`` (``prior`` or an .onnx policy, e.g.
``models/generalist/fmt_residual_shadow.onnx``), ``piece:=``, ``tempo:=``, ``embodiment:=``, ``report:=``
('' = the YAML's value). The YAML is found and read at launch time, through the same loader as
``omnipianist bringup``; one process per node. The logic is :mod:`omnipianist_ros.launching`.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from omnipianist_ros.launching import launch_actions, launch_arguments

GRAPH = "sim"


def _nodes(context, *args, **kwargs):
    values = {a.name: LaunchConfiguration(a.name).perform(context) for a in launch_arguments(GRAPH)}
    return launch_actions(GRAPH, values, Node, LifecycleNode)


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        *(DeclareLaunchArgument(a.name, default_value=a.default, description=a.description)
          for a in launch_arguments(GRAPH)),
        OpaqueFunction(function=_nodes),
    ])
