"""Filter `pip freeze` output into an installable lock file (used by `make lock`).

The ROS 2 wheels (`ros-<name>`) also register dist-info under their bare ROS package name
(`action_msgs`, `rclpy`, ...), which `pip freeze` lists but no registry serves; drop those, and
pin torch without the local `+cpu` label (pip takes the CPU wheel on disk for `torch==2.13.0`).
"""

import re
import sys


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


lines = [ln.strip() for ln in sys.stdin if ln.strip() and not ln.startswith(("-e", "#"))]
names = {norm(ln.split("==")[0]) for ln in lines}
for ln in lines:
    name = norm(ln.split("==")[0])
    if name in ("pip", "omnipianist") or (not name.startswith("ros-") and f"ros-{name}" in names):
        continue
    print(re.sub(r"^torch==2\.13\.0\+cpu$", "torch==2.13.0", ln))
