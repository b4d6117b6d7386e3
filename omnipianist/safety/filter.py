"""The safety filter every joint command passes through (policy node and hand driver alike).

Plain Python + numpy, no ROS, no wall clock: every entry point takes the caller's timestamp
``now_s`` [s] (monotonic or sim time), so a run is reproducible from its timestamps.

State machine::

    DISARMED --rearm--> ACTIVE <--valid command-- HOLD
                          |  no valid command for hold_after_s      ^
                          +-------------------------------------------+
    ACTIVE/HOLD --no valid command for torque_off_after_s--> TORQUE_OFF
      (counted from the last valid command; right after a rearm, before the first command, the hand
      holds the armed position for first_command_timeout_s, 0 = until the first command)
    any armed state --estop() or heartbeat silent for timeout_s--> ESTOP (latched)
    DISARMED/TORQUE_OFF/ESTOP --rearm(now, measured)--> ACTIVE (seeded at the measured position)

A fresh valid command leaves HOLD by itself; TORQUE_OFF and ESTOP need :meth:`SafetyFilter.rearm`
(the hand may have sagged while unpowered, so the rate limiter restarts from where it is).

Outputs (:class:`FilterResult`.command) are goal positions in ``joint_names`` order, or ``None``
meaning "send nothing and disable torque" (DISARMED, TORQUE_OFF, ESTOP). Invariants, for every pair
of consecutive non-None outputs ``a`` (at t0) then ``b`` (at t1), and every output ``b``:

* ``lower + margin <= b <= upper - margin`` (exactly, per joint);
* ``|b - a| <= max_rate * min(dt, max(t1 - t0, 0))`` per joint (never more than ``max_rate * dt``);
* ``b`` is finite: a command with any NaN/Inf is refused whole.

The pair rule restarts at each :meth:`SafetyFilter.rearm`, whose output is ``clip(measured, lower +
margin, upper - margin)``: equal to the measured position unless the joint rests outside the safe range.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from omnipianist.errors import ConfigError, OmnipianistError

ArrayLike = Sequence[float] | np.ndarray


class SafetyError(OmnipianistError):
    """A safety transition was refused (e.g. re-arming without a live e-stop heartbeat)."""


class State(enum.Enum):
    """Filter state. Only ACTIVE and HOLD produce goal positions (torque on)."""

    DISARMED = "disarmed"
    """Initial state: never armed; torque off until :meth:`SafetyFilter.rearm`."""
    ACTIVE = "active"
    """Commands are clamped, rate limited and passed on."""
    HOLD = "hold"
    """Command watchdog: no valid command for ``hold_after_s``; goal = measured position at entry."""
    TORQUE_OFF = "torque_off"
    """Command watchdog: no valid command for ``torque_off_after_s``; driver disables torque."""
    ESTOP = "estop"
    """Latched emergency stop; torque off; left only via :meth:`SafetyFilter.rearm`."""


@dataclass(frozen=True)
class WatchdogConfig:
    """Command watchdog (documented values are the defaults).

    Attributes:
        hold_after_s: silence [s] after the last valid command before holding position.
        torque_off_after_s: silence [s] after the last valid command before torque off (> hold).
        first_command_timeout_s: after a rearm, how long [s] the hand holds the armed position
            waiting for its first command before torque off; 0 = until the first command (a driver
            is activated before its policy runs, as ros2_control holds position on activation).
    """

    hold_after_s: float = 0.1
    torque_off_after_s: float = 0.5
    first_command_timeout_s: float = 0.0


@dataclass(frozen=True)
class EstopConfig:
    """E-stop heartbeat monitoring.

    Attributes:
        heartbeat_timeout_s: silence [s] of the e-stop publisher after which ESTOP latches.
        require_heartbeat: if True, :meth:`SafetyFilter.rearm` needs a heartbeat younger than the
            timeout and a missing heartbeat latches ESTOP; if False, monitoring starts with the
            first heartbeat received (simulation, bench tests).
    """

    heartbeat_timeout_s: float = 0.5
    require_heartbeat: bool = True


@dataclass
class SafetyCounters:
    """Event counts for /diagnostics (monotonic; never reset by the filter)."""

    nan_rejected: int = 0
    """Commands refused because a value was NaN or infinite."""
    malformed: int = 0
    """Commands refused because their length did not match the joint list."""
    refused: int = 0
    """Commands refused because the state was DISARMED, TORQUE_OFF or ESTOP."""
    clamped: int = 0
    """Accepted commands with at least one joint clamped into the safe range."""
    rate_limited: int = 0
    """Outputs with at least one joint slowed by the rate limit."""
    watchdog_holds: int = 0
    """Entries into HOLD."""
    watchdog_torque_offs: int = 0
    """Entries into TORQUE_OFF."""
    estops: int = 0
    """Entries into ESTOP (explicit or heartbeat timeout)."""
    rearms: int = 0
    """Successful :meth:`SafetyFilter.rearm` calls."""


@dataclass(frozen=True)
class FilterResult:
    """What the filter decided for one call.

    Attributes:
        command: goal positions (joint units: rad or m) in ``joint_names`` order, or ``None`` when
            nothing may be sent and torque must be disabled.
        state: the filter state after the call.
        accepted: the incoming command was accepted (always False for :meth:`SafetyFilter.tick`).
        nan_joints: joints whose commanded value was NaN/Inf (the whole command was refused).
        clamped_joints: joints clamped into ``[lower + margin, upper - margin]``.
        rate_limited_joints: joints whose change was limited by ``max_rate``.
        reasons: human-readable reasons for anything other than a clean pass.
    """

    command: np.ndarray | None
    state: State
    accepted: bool = False
    nan_joints: tuple[str, ...] = ()
    clamped_joints: tuple[str, ...] = ()
    rate_limited_joints: tuple[str, ...] = ()
    reasons: tuple[str, ...] = field(default=())

    @property
    def torque_enabled(self) -> bool:
        """True when the driver may keep torque on and send ``command``."""
        return self.command is not None


def _per_joint(name: str, value: float | ArrayLike, n: int) -> np.ndarray:
    """``value`` as a float array of shape (n,), broadcasting a scalar."""
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        return np.full(n, float(arr))
    if arr.shape != (n,):
        raise ConfigError(f"safety filter: {name} has shape {arr.shape}, expected a scalar or ({n},)")
    return arr.copy()


class SafetyFilter:
    """Clamp, rate-limit, NaN-reject, watchdog and e-stop for one vector of joints.

    Args:
        joint_names: names of the command entries, in order (for messages and diagnostics).
        lower, upper: joint limits [rad or m], per joint.
        margin: distance [rad or m] kept from each limit; scalar or per joint.
        max_rate_rad_per_s: largest speed of the output [rad/s, or m/s for slides]; scalar or per joint.
        dt: nominal call period [s]; one output never moves more than ``max_rate * dt``.
        watchdog: command watchdog timings.
        estop: e-stop heartbeat settings.

    Raises:
        ConfigError: shapes disagree, a value is not finite/positive, a joint's safe range
            ``[lower + margin, upper - margin]`` is empty (names the joint), or hold >= torque-off.
    """

    def __init__(
        self,
        joint_names: Sequence[str],
        lower: ArrayLike,
        upper: ArrayLike,
        margin: float | ArrayLike,
        max_rate_rad_per_s: float | ArrayLike,
        dt: float,
        watchdog: WatchdogConfig | None = None,
        estop: EstopConfig | None = None,
    ) -> None:
        self.joint_names: tuple[str, ...] = tuple(joint_names)
        n = len(self.joint_names)
        if n == 0:
            raise ConfigError("safety filter: no joints")
        lo = _per_joint("lower", lower, n)
        hi = _per_joint("upper", upper, n)
        m = _per_joint("margin", margin, n)
        rate = _per_joint("max_rate_rad_per_s", max_rate_rad_per_s, n)
        for label, arr in (("lower", lo), ("upper", hi), ("margin", m), ("max_rate_rad_per_s", rate)):
            bad = ~np.isfinite(arr)
            if bad.any():
                raise ConfigError(f"safety filter: {label} is not finite for joint {self.joint_names[int(np.argmax(bad))]}")
        if (m < 0).any():
            raise ConfigError(f"safety filter: negative margin for joint {self.joint_names[int(np.argmax(m < 0))]}")
        if (rate <= 0).any():
            j = self.joint_names[int(np.argmax(rate <= 0))]
            raise ConfigError(f"safety filter: max_rate_rad_per_s must be > 0 (joint {j})")
        self.lower_safe = lo + m
        self.upper_safe = hi - m
        empty = self.lower_safe > self.upper_safe
        if empty.any():
            i = int(np.argmax(empty))
            raise ConfigError(
                f"safety filter: joint {self.joint_names[i]} has an empty safe range: [{lo[i]} + {m[i]}, {hi[i]} - {m[i]}]"
            )
        if not (np.isfinite(dt) and dt > 0):
            raise ConfigError(f"safety filter: dt must be a positive number of seconds, got {dt!r}")
        self.max_rate = rate
        self.dt = float(dt)
        self.watchdog = watchdog or WatchdogConfig()
        self.estop_cfg = estop or EstopConfig()
        if not 0 < self.watchdog.hold_after_s < self.watchdog.torque_off_after_s:
            raise ConfigError(
                f"safety filter: need 0 < hold_after_s ({self.watchdog.hold_after_s}) < "
                f"torque_off_after_s ({self.watchdog.torque_off_after_s})"
            )
        if not self.watchdog.first_command_timeout_s >= 0:
            raise ConfigError(f"safety filter: first_command_timeout_s must be >= 0 "
                              f"(0 = hold until the first command), got {self.watchdog.first_command_timeout_s}")
        if not self.estop_cfg.heartbeat_timeout_s > 0:
            raise ConfigError("safety filter: heartbeat_timeout_s must be > 0")

        self.state = State.DISARMED
        self.counters = SafetyCounters()
        self.estop_reason: str = "not armed yet"
        self._last_output: np.ndarray | None = None
        self._last_output_s: float = 0.0
        self._target: np.ndarray | None = None
        self._last_command_s: float = 0.0
        self._commanded = False
        """A valid command arrived since the last rearm (until then the torque-off countdown is
        ``first_command_timeout_s``)."""
        self._last_heartbeat_s: float | None = None
        self._last_measured: np.ndarray | None = None

    # --- inputs --------------------------------------------------------------------------------

    def filter(self, command: ArrayLike, now_s: float, measured: ArrayLike | None = None) -> FilterResult:
        """Filter a newly arrived command (joint units, ``joint_names`` order) at time ``now_s`` [s].

        ``measured`` (optional) is the latest measured position, remembered for HOLD.
        A command with NaN/Inf or the wrong length is refused whole: the output stays at the last
        output, and the refusal does not feed the watchdog.
        """
        self._remember_measured(measured)
        self._advance(now_s)
        n = len(self.joint_names)
        if self.state not in (State.ACTIVE, State.HOLD):
            self.counters.refused += 1
            return FilterResult(None, self.state, reasons=(self._why_off(),))
        try:
            cmd = np.asarray(command, dtype=float)
        except (TypeError, ValueError):  # ragged or non-numeric
            cmd = np.empty((0,))
        if cmd.shape != (n,):
            self.counters.malformed += 1
            return self._refuse(now_s, f"malformed command refused: shape {cmd.shape}, expected {n} numbers")
        bad = ~np.isfinite(cmd)
        if bad.any():
            self.counters.nan_rejected += 1
            idx = np.flatnonzero(bad)
            detail = ", ".join(f"{self.joint_names[i]}={cmd[i]}" for i in idx)
            res = self._refuse(now_s, f"non-finite command refused ({detail})")
            names = tuple(self.joint_names[i] for i in idx)
            return FilterResult(res.command, res.state, False, names, (), res.rate_limited_joints, res.reasons)
        safe = np.clip(cmd, self.lower_safe, self.upper_safe)
        clamped = tuple(self.joint_names[i] for i in np.flatnonzero(safe != cmd))
        reasons: tuple[str, ...] = ()
        if clamped:
            self.counters.clamped += 1
            reasons = (f"clamped to the safe range: {', '.join(clamped)}",)
        self._target = safe
        self._last_command_s = now_s
        self._commanded = True
        self.state = State.ACTIVE
        res = self._output(now_s, reasons=reasons)
        return FilterResult(res.command, res.state, True, (), clamped, res.rate_limited_joints, res.reasons)

    def tick(self, now_s: float, measured: ArrayLike | None = None) -> FilterResult:
        """Periodic call without a new command: run the watchdog and e-stop timers, keep ramping.

        In ACTIVE the output keeps moving (rate limited) toward the last accepted command; in HOLD
        toward the measured position captured on entering HOLD; otherwise ``command`` is None.
        """
        self._remember_measured(measured)
        self._advance(now_s)
        if self.state not in (State.ACTIVE, State.HOLD):
            return FilterResult(None, self.state, reasons=(self._why_off(),))
        return self._output(now_s)

    def check(self, now_s: float) -> State:
        """Run the e-stop heartbeat and command watchdog timers at ``now_s`` without moving the output;
        returns the state (a driver stepped per command uses it between commands, see HandDriver.keepalive)."""
        self._advance(now_s)
        return self.state

    def estop(self, now_s: float, reason: str) -> FilterResult:
        """Latch ESTOP now (e.g. ``/estop`` said True). Torque off until :meth:`rearm`."""
        self._advance(now_s)
        self._latch_estop(reason)
        return FilterResult(None, self.state, reasons=(self._why_off(),))

    def heartbeat(self, now_s: float) -> None:
        """Record a heartbeat of the e-stop publisher. A heartbeat never clears a latched ESTOP;
        one that arrives after the timeout has already expired latches ESTOP first."""
        self._advance(now_s)
        if self._last_heartbeat_s is None or now_s >= self._last_heartbeat_s:
            self._last_heartbeat_s = now_s

    def rearm(self, now_s: float, measured: ArrayLike) -> FilterResult:
        """Leave DISARMED/TORQUE_OFF/ESTOP: seed the output at ``measured`` (clamped to the safe
        range) so the next goal does not jump, restart the watchdog, and go ACTIVE.

        Raises:
            SafetyError: ``measured`` has the wrong shape or a non-finite value (names the joint),
                or a heartbeat is required and none arrived within ``heartbeat_timeout_s``.
        """
        try:
            meas = np.asarray(measured, dtype=float)
        except (TypeError, ValueError) as exc:
            raise SafetyError(f"cannot rearm: measured is not a vector of numbers ({exc})") from exc
        if meas.shape != (len(self.joint_names),):
            raise SafetyError(f"cannot rearm: measured has shape {meas.shape}, expected ({len(self.joint_names)},)")
        bad = ~np.isfinite(meas)
        if bad.any():
            raise SafetyError(f"cannot rearm: measured position of {self.joint_names[int(np.argmax(bad))]} is not finite")
        if self.estop_cfg.require_heartbeat and not self._heartbeat_fresh(now_s):
            age = "none received" if self._last_heartbeat_s is None else f"last {now_s - self._last_heartbeat_s:.3f} s ago"
            raise SafetyError(f"cannot rearm: no e-stop heartbeat within {self.estop_cfg.heartbeat_timeout_s} s ({age})")
        seed = np.clip(meas, self.lower_safe, self.upper_safe)
        self._last_output = seed
        self._last_output_s = now_s
        self._target = seed.copy()
        self._last_command_s = now_s
        self._commanded = False
        self._last_measured = meas.copy()
        self.state = State.ACTIVE
        self.estop_reason = ""
        self.counters.rearms += 1
        outside = tuple(self.joint_names[i] for i in np.flatnonzero(seed != meas))
        reasons = (f"measured outside the safe range, seeded at the nearest bound: {', '.join(outside)}",) if outside else ()
        return FilterResult(seed.copy(), self.state, clamped_joints=outside, reasons=reasons)

    # --- diagnostics ---------------------------------------------------------------------------

    def diagnostics(self) -> dict[str, str]:
        """Key/values for a diagnostic_msgs/DiagnosticStatus: state, e-stop reason, counters."""
        out = {"state": self.state.value, "estop_reason": self.estop_reason}
        out.update({k: str(v) for k, v in asdict(self.counters).items()})
        return out

    @property
    def last_output(self) -> np.ndarray | None:
        """The last goal sent (a copy), or None before the first :meth:`rearm`."""
        return None if self._last_output is None else self._last_output.copy()

    # --- internals -----------------------------------------------------------------------------

    def _heartbeat_fresh(self, now_s: float) -> bool:
        return self._last_heartbeat_s is not None and now_s - self._last_heartbeat_s < self.estop_cfg.heartbeat_timeout_s

    def _advance(self, now_s: float) -> None:
        """Apply every time-driven transition due at ``now_s``: heartbeat timeout, then watchdog."""
        if self.state in (State.ACTIVE, State.HOLD, State.TORQUE_OFF):
            monitoring = self.estop_cfg.require_heartbeat or self._last_heartbeat_s is not None
            if monitoring and not self._heartbeat_fresh(now_s):
                self._latch_estop(f"e-stop heartbeat missing for >= {self.estop_cfg.heartbeat_timeout_s} s")
                return
        silence = now_s - self._last_command_s
        if self.state is State.ACTIVE and silence >= self.watchdog.hold_after_s:
            self.state = State.HOLD
            self.counters.watchdog_holds += 1
            assert self._last_output is not None
            hold = self._last_measured if self._last_measured is not None else self._last_output
            self._target = np.clip(hold, self.lower_safe, self.upper_safe)
        off_after = self.watchdog.torque_off_after_s if self._commanded else self.watchdog.first_command_timeout_s
        if self.state is State.HOLD and off_after > 0 and silence >= off_after:
            self.state = State.TORQUE_OFF
            self.counters.watchdog_torque_offs += 1

    def _latch_estop(self, reason: str) -> None:
        if self.state is not State.ESTOP:
            self.counters.estops += 1
            self.state = State.ESTOP
            self.estop_reason = reason

    def _remember_measured(self, measured: ArrayLike | None) -> None:
        if measured is None:
            return
        try:
            meas = np.asarray(measured, dtype=float)
        except (TypeError, ValueError):
            return  # unusable reading: keep the previous one
        if meas.shape == (len(self.joint_names),) and np.isfinite(meas).all():
            self._last_measured = meas.copy()

    def _refuse(self, now_s: float, reason: str) -> FilterResult:
        """Refuse a command whole: in ACTIVE freeze at the last output (the last good command that
        went out); in HOLD keep holding. The refusal does not feed the watchdog."""
        if self.state is State.ACTIVE:
            self._target = self._last_output
        return self._output(now_s, reasons=(reason,))

    def _why_off(self) -> str:
        if self.state is State.ESTOP:
            return f"estop latched: {self.estop_reason}"
        if self.state is State.TORQUE_OFF:
            return "command watchdog: torque off (rearm needed)"
        if self.state is State.DISARMED:
            return "not armed (rearm needed)"
        return self.state.value

    def _output(self, now_s: float, reasons: tuple[str, ...] = ()) -> FilterResult:
        """One rate-limited step from the last output toward the target (ACTIVE/HOLD only)."""
        if self.state not in (State.ACTIVE, State.HOLD) or self._last_output is None or self._target is None:
            return FilterResult(None, self.state, reasons=reasons + (self._why_off(),))
        elapsed = min(self.dt, max(now_s - self._last_output_s, 0.0))
        step = self.max_rate * elapsed
        delta = self._target - self._last_output
        limited = np.abs(delta) > step
        out = np.where(limited, self._last_output + np.clip(delta, -step, step), self._target)
        # Both ends lie in the (convex) safe box, so clipping only removes rounding and never
        # lengthens the step.
        out = np.clip(out, self.lower_safe, self.upper_safe)
        names = tuple(self.joint_names[i] for i in np.flatnonzero(limited))
        if names:
            self.counters.rate_limited += 1
        self._last_output = out
        self._last_output_s = max(now_s, self._last_output_s)
        if self.state is State.HOLD:
            reasons = reasons + ("command watchdog: holding the measured position",)
        return FilterResult(out.copy(), self.state, rate_limited_joints=names, reasons=reasons)
