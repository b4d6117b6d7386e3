"""The real rig for users with a full ROS 2 install: ``ros2 launch omnipianist hardware.launch.py``.

Reads ``hardware.yaml`` (``config:=...`` for another) at launch time, through the same loader as
``omnipianist bringup``; ``hardware_config:=DIR`` overrides the hardware_config folder of every node
(drivers and the policy's safety filter), plus ``policy:=``, ``piece:=``, ``tempo:=``, ``embodiment:=``,
``report:=`` as in sim.launch.py. One process per node; the hand drivers (``hand_driver_left`` /
``hand_driver_right``, one ``omnipianist_hand_driver`` executable) are lifecycle nodes: configure and
activate them with ``ros2 lifecycle set /hand_driver_left configure`` / ``activate`` (or ``autostart: true``).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from omnipianist_ros.launching import launch_actions, launch_arguments

GRAPH = "hardware"


def _nodes(context, *args, **kwargs):
    values = {a.name: LaunchConfiguration(a.name).perform(context) for a in launch_arguments(GRAPH)}
    return launch_actions(GRAPH, values, Node, LifecycleNode)


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        *(DeclareLaunchArgument(a.name, default_value=a.default, description=a.description)
          for a in launch_arguments(GRAPH)),
        OpaqueFunction(function=_nodes),
    ])
