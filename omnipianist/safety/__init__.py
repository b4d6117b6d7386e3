"""Command safety: the filter every joint command passes through before it reaches a servo.

``filter.py``: :class:`SafetyFilter` (NaN rejection, limit clamp, rate limit, command watchdog,
latched e-stop with heartbeat), plain Python + numpy, shared by the ROS policy node and the hand
driver. Its parameters come from ``hardware_config/safety.yaml`` via
:func:`omnipianist.hardware.config.load_safety_config`.
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

__all__ = [
    "EstopConfig",
    "FilterResult",
    "SafetyCounters",
    "SafetyError",
    "SafetyFilter",
    "State",
    "WatchdogConfig",
]
