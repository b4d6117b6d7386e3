"""Where the shipped files are: a source checkout (or editable install), a colcon install, a pip install.

One resolver for the YAML configs, the hardware configs and the shipped models, so that
``ros2 launch omnipianist sim.launch.py`` on a colcon install finds them in the package's ament
share directory (``install/omnipianist/share/omnipianist/...``), a pip install in
``<prefix>/share/omnipianist/...``, and a checkout in the repository.

=================  ======================  ============================
kind               in the repository       in a share directory
=================  ======================  ============================
``config``         ``ros2_ws/config``      ``config``
``hardware_config``  ``hardware_config``   ``hardware_config``
``models``         ``models``              ``models``
``launch``         ``ros2_ws/launch``      ``launch``
=================  ======================  ============================
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "omnipianist"
REPO_ROOT = Path(__file__).resolve().parents[1]
_IN_REPO = {"config": "ros2_ws/config", "hardware_config": "hardware_config", "models": "models",
            "launch": "ros2_ws/launch"}


def share_directories() -> list[Path]:
    """Share directories to look in, most specific first: the ament index's (colcon), then the
    Python prefix's (pip)."""
    dirs: list[Path] = []
    try:
        from ament_index_python.packages import get_package_share_directory

        dirs.append(Path(get_package_share_directory(PACKAGE)))
    except Exception:  # noqa: BLE001 - not installed with colcon / ament index not on the path
        pass
    dirs.append(Path(sys.prefix) / "share" / PACKAGE)
    return dirs


def candidates(kind: str, name: str = "") -> list[Path]:
    """Where ``kind``/``name`` may be, in the order they are tried: the checkout, then the share dirs."""
    if kind not in _IN_REPO:
        raise ValueError(f"unknown resource kind {kind!r}; expected one of {sorted(_IN_REPO)}")
    rel = Path(name) if name else Path()
    return [REPO_ROOT / _IN_REPO[kind] / rel] + [d / kind / rel for d in share_directories()]


def resource_path(kind: str, name: str = "") -> Path:
    """The first existing ``kind``/``name`` (a file or a folder); FileNotFoundError listing where it looked."""
    tried = candidates(kind, name)
    for c in tried:
        if c.exists():
            return c
    raise FileNotFoundError(f"{kind}/{name}: not found in {', '.join(str(c) for c in tried)}")
