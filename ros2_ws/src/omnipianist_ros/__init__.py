"""ROS 2 nodes of omnipianist: thin adapters over the plain-Python modules (no logic lives here)."""
