"""Where the shipped files are: a source checkout (or editable install), a colcon install, a pip install.

One resolver for the YAML configs, the hardware configs and the shipped models, so that
``ros2 launch omnipianist sim.launch.py`` on a colcon install finds them in the package's ament
share directory (``install/omnipianist/share/omnipianist/...``), a pip install in
``<prefix>/share/omnipianist/...``, and a checkout in the repository.

Order (:func:`candidates`): the ament index's share directory first (what ``ros2 launch`` /
``get_package_share_directory`` users expect of a sourced workspace), then the source checkout, then
the Python prefix's share directory (pip; after the checkout, so that an editable install reads the
files being edited).

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


def ament_share_directory() -> Path | None:
    """The package's share directory in the ament index (``AMENT_PREFIX_PATH``), or None."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE))
    except Exception:  # noqa: BLE001 - not installed with colcon / ament index not on the path
        return None


def share_directories() -> list[Path]:
    """Share directories to look in: the ament index's (colcon), then the Python prefix's (pip)."""
    ament = ament_share_directory()
    return ([ament] if ament is not None else []) + [Path(sys.prefix) / "share" / PACKAGE]


def candidates(kind: str, name: str = "") -> list[Path]:
    """Where ``kind``/``name`` may be, in the order they are tried: the ament share directory, the
    checkout, the Python prefix's share directory."""
    if kind not in _IN_REPO:
        raise ValueError(f"unknown resource kind {kind!r}; expected one of {sorted(_IN_REPO)}")
    rel = Path(name) if name else Path()
    ament = ament_share_directory()
    out = [ament / kind / rel] if ament is not None else []
    out.append(REPO_ROOT / _IN_REPO[kind] / rel)
    out.append(Path(sys.prefix) / "share" / PACKAGE / kind / rel)
    return out


def resource_path(kind: str, name: str = "") -> Path:
    """The first existing ``kind``/``name`` (a file or a folder); FileNotFoundError listing where it looked."""
    tried = candidates(kind, name)
    for c in tried:
        if c.exists():
            return c
    raise FileNotFoundError(f"{kind}/{name}: not found in {', '.join(str(c) for c in tried)}")
