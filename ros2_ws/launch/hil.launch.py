"""Hardware in the loop for users with a full ROS 2 install: ``ros2 launch omnipianist hil.launch.py``.

The graph of ``hil.yaml`` (``config:=...`` for another): the MuJoCo mock serving one emulated Dynamixel
bus (pty) per hand, the two hand drivers (``LifecycleNode``, autostart: they configure as soon as their
port exists and activate when the e-stop heartbeat is live), the heartbeat, score, policy and evaluator:
one process per node. Arguments as sim.launch.py (``policy:=``, ``piece:=``, ``tempo:=``,
``embodiment:=``, ``report:=``); the YAML is found and read at launch time (:mod:`omnipianist_ros.launching`).
The drivers open the ports the mock links under ``hil_port_dir``.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from omnipianist_ros.launching import launch_actions, launch_arguments

GRAPH = "hil"


def _nodes(context, *args, **kwargs):
    values = {a.name: LaunchConfiguration(a.name).perform(context) for a in launch_arguments(GRAPH)}
    return launch_actions(GRAPH, values, Node, LifecycleNode)


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        *(DeclareLaunchArgument(a.name, default_value=a.default, description=a.description)
          for a in launch_arguments(GRAPH)),
        OpaqueFunction(function=_nodes),
    ])
