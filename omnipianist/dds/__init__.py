"""DDS on loopback: the Fast DDS profile every DDS-touching process of the project uses.

Call :func:`use_loopback` before ``rclpy.init()`` (Fast DDS reads the environment when the first
participant is created). The profile binds UDP to 127.0.0.1 and uses shared memory; with it,
``ss -uanp`` shows no socket on any other address.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

PROFILE_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"
OVERRIDE_ENV = "OMNIPIANIST_DDS_PROFILE"
"""Set this to your own Fast DDS profile to leave loopback on purpose (e.g. a multi-host lab graph)."""
RANGE_OVERRIDE_ENV = "OMNIPIANIST_ROS_DISCOVERY_RANGE"

DISCOVERY_RANGE = "SYSTEM_DEFAULT"
"""Why not ``LOCALHOST``: with ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``, rmw_fastrtps (kilted)
appends its own UDPv4 transport *without* an interface whitelist and a default unicast metatraffic
locator to whatever the XML profile says, so every participant also binds a UDP socket on 0.0.0.0
(measured with ``ss -uanp``; ``tests/integration/test_dds_loopback.py``). ``SYSTEM_DEFAULT`` leaves
discovery entirely to the XML profile, which binds 127.0.0.1 only and discovers peers through the
127.0.0.1 initial-peer list: the same localhost-only discovery, with no socket on another address.
Set ``OMNIPIANIST_ROS_DISCOVERY_RANGE=LOCALHOST`` to get the stock ROS behaviour anyway."""


def loopback_profile_path() -> Path:
    """Path of the shipped loopback-only Fast DDS profile."""
    return Path(str(resources.files(__package__) / "fastdds_loopback.xml"))


def loopback_environment() -> dict[str, str]:
    """The environment variables that confine ROS 2 / Fast DDS to this host."""
    profile = os.environ.get(OVERRIDE_ENV) or str(loopback_profile_path())
    return {
        PROFILE_ENV: profile,
        "ROS_AUTOMATIC_DISCOVERY_RANGE": os.environ.get(RANGE_OVERRIDE_ENV) or DISCOVERY_RANGE,
        "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp",
    }


def use_loopback(env: dict[str, str] | os._Environ[str] | None = None) -> dict[str, str]:
    """Write :func:`loopback_environment` into ``env`` (default: this process) and return it."""
    target = os.environ if env is None else env
    values = loopback_environment()
    target.update(values)
    return values
