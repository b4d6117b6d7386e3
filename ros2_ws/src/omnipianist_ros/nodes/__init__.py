"""The ROS nodes (thin: parameters, topics, timers; the logic lives in the plain-Python modules)."""
