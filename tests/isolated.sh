#!/usr/bin/env bash
# Run a command in a private network namespace with only loopback up, with the loopback Fast DDS
# profile: nothing the tests start (DDS, Ray, servers) can reach or bind another address.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
export FASTDDS_DEFAULT_PROFILES_FILE="$here/omnipianist/dds/fastdds_loopback.xml"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${OMNIPIANIST_ROS_DISCOVERY_RANGE:-SYSTEM_DEFAULT}"  # see omnipianist/dds/__init__.py
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 101 ))}"
export MUJOCO_GL="${MUJOCO_GL:-egl}"
export RAY_USAGE_STATS_ENABLED=0
if [ "${OMNIPIANIST_NO_NETNS:-0}" = "1" ]; then
  exec "$@"
fi
if ! unshare -n true 2>/dev/null; then
  echo "tests/isolated.sh: cannot create a network namespace (unshare -n needs root or user namespaces)." >&2
  echo "  Run as root, enable unprivileged user namespaces, or set OMNIPIANIST_NO_NETNS=1 to run" >&2
  echo "  without isolation (the loopback DDS profile still applies)." >&2
  exit 2
fi
exec unshare -n bash -c 'ip link set lo up && exec "$@"' bash "$@"
