"""Command safety: the filter every joint command passes through before it reaches a servo.

``filter.py``: :class:`SafetyFilter` (NaN rejection, limit clamp, rate limit, command watchdog,
latched e-stop with heartbeat), plain Python + numpy, shared by the ROS policy node and the hand
driver. Its parameters come from ``hardware_config/safety.yaml`` via
:func:`omnipianist.hardware.config.load_safety_config`. ``rail.py``: :class:`RailHoming` (the forearm
rails' homing at startup and the check that a homed rail is inside its soft limits).
"""

from omnipianist.safety.filter import (
    EstopConfig,
    FilterResult,
    SafetyCounters,
    SafetyError,
    SafetyFilter,
    State,
    WatchdogConfig,
)
from omnipianist.safety.rail import RailHoming, outside_limits, turns_lost

__all__ = [
    "EstopConfig",
    "FilterResult",
    "RailHoming",
    "SafetyCounters",
    "SafetyError",
    "SafetyFilter",
    "State",
    "WatchdogConfig",
    "outside_limits",
    "turns_lost",
]
