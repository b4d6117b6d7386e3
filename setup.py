"""omnipianist: one ament_python package, installable with pip (`pip install -e .`) or colcon."""

import importlib.util
import os
import sys
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "omnipianist"
HERE = Path(__file__).resolve().parent


def _registry():  # the node registry, loaded by path (nothing is installed yet)
    path = HERE / "ros2_ws" / "src" / "omnipianist_ros" / "registry.py"
    spec = importlib.util.spec_from_file_location("_omnipianist_node_registry", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _tree(dest: str, src: str) -> list[tuple[str, list[str]]]:
    """Every file under ``src`` (recursively) into ``share/omnipianist/<dest>/<same sub-folders>``."""
    out = []
    for folder, dirs, files in sorted(os.walk(src)):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
        rel = os.path.relpath(folder, src)
        target = f"share/{PACKAGE}/{dest}" + ("" if rel == "." else f"/{Path(rel).as_posix()}")
        paths = sorted(os.path.join(folder, f) for f in files if not f.endswith(".pyc"))
        if paths:
            out.append((target, paths))
    return out


python_packages = find_packages(include=["omnipianist", "omnipianist.*", "sim_training", "sim_training.*",
                                         "policy_export", "policy_export.*"])
python_packages += ["omnipianist_ros"] + [
    "omnipianist_ros." + p for p in find_packages(where="ros2_ws/src/omnipianist_ros")
]

# What `ros2 launch omnipianist ...` reads from the package's share directory (omnipianist.resources):
# the launch files, every bringup YAML, hardware_config/ and models/ (both recursively).
data_files = [
    ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
    (f"share/{PACKAGE}", ["package.xml"]),
    *_tree("launch", "ros2_ws/launch"),
    *_tree("config", "ros2_ws/config"),
    *_tree("hardware_config", "hardware_config"),
    *_tree("models", "models"),
]

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Sim-to-real piano playing with two dexterous robot hands (MuJoCo, OT, RL, ONNX, ROS 2)",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=python_packages,
    package_dir={"omnipianist_ros": "ros2_ws/src/omnipianist_ros"},
    package_data={"omnipianist": ["dds/*.xml", "py.typed"], "sim_training": ["py.typed"], "policy_export": ["py.typed"],
                  "omnipianist_ros": ["py.typed"], "sim_training.music": ["corpus_data/*.mid", "corpus_data/*.json"]},
    data_files=data_files,
    zip_safe=False,
    # Runtime dependencies are pinned in requirements.lock (installed by `make`); colcon users get
    # the ROS ones from package.xml.
    install_requires=[],
    extras_require={"corpus": ["music21==10.5.1"]},
    entry_points={"console_scripts": [
        "omnipianist = omnipianist.cli:main",
        # ROS 2 nodes (what `ros2 run omnipianist <node>` and the launch files start): the node registry
        *_registry().console_scripts(),
    ]},
)
