"""omnipianist: one ament_python package, installable with pip (`pip install -e .`) or colcon."""

from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "omnipianist"


def _data(dest: str, pattern: str) -> tuple[str, list[str]]:
    return (f"share/{PACKAGE}/{dest}", sorted(p for p in glob(pattern, recursive=True) if Path(p).is_file()))


python_packages = find_packages(include=["omnipianist", "omnipianist.*", "sim_training", "sim_training.*",
                                         "policy_export", "policy_export.*"])
python_packages += ["omnipianist_ros"] + [
    "omnipianist_ros." + p for p in find_packages(where="ros2_ws/src/omnipianist_ros")
]

data_files = [
    ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
    (f"share/{PACKAGE}", ["package.xml"]),
    _data("launch", "ros2_ws/launch/*.launch.py"),
    _data("config", "ros2_ws/config/*"),
    _data("hardware_config", "hardware_config/*"),
    _data("hardware_config/hil", "hardware_config/hil/*"),
    _data("models/generalist", "models/generalist/*.onnx"),
    _data("models/generalist", "models/generalist/*.md"),
]

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Sim-to-real piano playing with two dexterous robot hands (MuJoCo, OT, RL, ONNX, ROS 2)",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=python_packages,
    package_dir={"omnipianist_ros": "ros2_ws/src/omnipianist_ros"},
    package_data={"omnipianist": ["dds/*.xml"], "sim_training.music": ["corpus_data/*.mid", "corpus_data/*.json"]},
    data_files=[d for d in data_files if d[1]],
    zip_safe=False,
    # Runtime dependencies are pinned in requirements.lock (installed by `make`); colcon users get
    # the ROS ones from package.xml.
    install_requires=[],
    extras_require={"corpus": ["music21==10.5.1"]},
    entry_points={"console_scripts": [
        "omnipianist = omnipianist.cli:main",
        # ROS 2 nodes (what `ros2 run omnipianist <node>` and the launch files start)
        "omnipianist_mujoco_mock = omnipianist_ros.nodes.main:mujoco_mock_main",
        "omnipianist_score = omnipianist_ros.nodes.main:score_main",
        "omnipianist_policy = omnipianist_ros.nodes.main:policy_main",
        "omnipianist_evaluator = omnipianist_ros.nodes.main:evaluator_main",
        "omnipianist_piano_listener = omnipianist_ros.nodes.main:piano_listener_main",
        "omnipianist_recorder = omnipianist_ros.nodes.main:recorder_main",
        "omnipianist_hand_driver = omnipianist_ros.nodes.main:hand_driver_main",
        "omnipianist_estop_heartbeat = omnipianist_ros.nodes.main:estop_heartbeat_main",
    ]},
)
