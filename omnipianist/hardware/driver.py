"""The hand driver core: one Dynamixel bus, its servos, a safety filter, and the lifecycle a ROS node wraps.

Lifecycle (``ros2_ws/.../nodes/hand_driver_node.py`` maps ROS LifecycleNode transitions onto it)::

    configure()   open the port, PING every id (a missing servo is an error naming port and id), check the
                  model numbers, torque off, write the EEPROM settings (Operating Mode, Return Delay Time,
                  Current Limit, Min/Max Position Limit; only where they differ) and the RAM gains, and
                  home the multi-turn channels (the forearm rails, see below)
    activate(t)   read present, re-arm the safety filter there, clear the Bus Watchdog, goal := that, arm
                  the watchdog, torque on
    step(cmd, t)  one control cycle: filter -> Sync Write goals -> Fast Sync Read current/velocity/position,
                  all within an absolute I/O deadline (``io_budget_s``); fault handling below
    keepalive(t)  between the commands of a command-driven driver (lock-step HIL): the safety timers run
                  and the last goals go out again (the servos' Bus Watchdog stays fed) but the filter's ramp
                  does not move: it moves once per command, so how often the host had time for a keep-alive
                  cannot change the goals
    estop(t)      latch the filter's e-stop and put Torque Enable = 0 on the wire before anything else
    deactivate() / shutdown() / on_error()   torque off (shutdown also closes the port)

Fault handling in :meth:`HandDriver.step` (each counted in :meth:`HandDriver.diagnostics` and logged once
per event with the port and servo id):

* CRC errors, truncated or late replies, stray bytes: the bus retries within the deadline and resyncs on
  the header; a cycle whose read fails keeps the last good state, flagged stale per servo.
* a servo that stops answering: the Fast Sync Read names where the chain broke; that servo leaves the fast
  read (the others stay fresh) and is probed every ``probe_every`` cycles with one short read.
* a servo stale for longer than ``persistent_failure_s``, or an unplugged port for that long: torque off
  on every reachable servo, state FAULT (``activate`` again to resume).
* hardware error (status alert bit, e.g. overload): read Hardware Error Status, REBOOT, restore the RAM
  settings (gains, goal current, watchdog), re-arm the filter at the measured position, torque on.
* Bus Watchdog trip (the host was silent too long; checked after any silence longer than 80 % of the
  watchdog period and every ``watchdog_check_every`` cycles): clear, re-arm the filter, re-arm.
* port disappears (unplug): hold last good, retry opening the same name every cycle; when it is back,
  PING and re-activate (within ``persistent_failure_s``) or send torque off and stay FAULT.

A rebooted servo is silent for a few hundred ms: the restore polls PING until it answers (at most
``reboot_timeout_s``) before writing anything to it.

Forearm rails (``rail.driver: dynamixel``): each slide is one more channel, a servo in Extended Position
mode (Operating Mode 4, multi-turn; no Min/Max Position Limit, Profile Velocity as a hardware speed cap)
whose metres <-> ticks mapping is the channel's. Homing (:class:`omnipianist.safety.rail.RailHoming`):
at configure the carriage stands at its home mark, so the reading there becomes ``home``; activation is
refused when a homed rail reads outside its limits. After a reboot the servo has lost its turn count:
the driver adds back the whole turns it lost (the carriage moves less than half a turn while the servo
boots) so the rail keeps its homed frame.

Times: ``now_s`` arguments are the caller's clock (sim time in lock-step, monotonic on hardware) and
drive the filter and the staleness ages; I/O deadlines are always ``time.monotonic()``.
"""

from __future__ import annotations

import enum
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from omnipianist.hardware.channels import TICKS_PER_S_PER_VELOCITY_UNIT, ServoChannel, check_channels, limits_arrays
from omnipianist.hardware.config import BusConfig, SafetyConfig
from omnipianist.hardware.dynamixel import tables as t
from omnipianist.hardware.dynamixel.bus import DynamixelBus
from omnipianist.hardware.dynamixel.tables import BUS_WATCHDOG_TRIPPED
from omnipianist.hardware.errors import BusConnectionError, BusError, BusTimeout, ServoError
from omnipianist.safety.filter import FilterResult, SafetyError, SafetyFilter, State
from omnipianist.safety.rail import RailHoming, turns_lost
from sim_training.constants import CONTROL_DT_S

READ_SPAN = t.span(["present_current", "present_velocity", "present_position"])
"""Read every cycle: 10 bytes per servo (addresses 126..135)."""
MODEL_NUMBERS = {m.name: n for n, m in t.MODELS.items()}
RAIL_PROFILE_VELOCITY_HEADROOM = 1.2
"""Profile Velocity of a rail servo = this x the filter's rail rate limit (a backstop, never the limit)."""

IO_BUDGET_FRACTION = 0.4
"""Default I/O deadline of one driver cycle, as a fraction of the control period."""

log = logging.getLogger("omnipianist.hardware.driver")


class DriverState(enum.Enum):
    UNCONFIGURED = "unconfigured"
    INACTIVE = "inactive"
    """Configured: port open, settings written, torque off."""
    ACTIVE = "active"
    FAULT = "fault"
    """Persistent failure: torque off (where reachable); ``activate`` to resume."""
    FINALIZED = "finalized"


class HandDriverError(BusError):
    """A lifecycle step failed (missing servo, wrong model, torque refused); names port and servo id."""


@dataclass
class ServoHealth:
    """Driver-side view of one servo (bus-level counters are in ``DynamixelBus.stats``)."""

    stale: bool = True
    last_good_s: float | None = None
    missing: bool = False
    """Left out of the Fast Sync Read (stopped answering); probed every few cycles."""
    reboots: int = 0
    watchdog_trips: int = 0
    hardware_errors: int = 0
    last_error: str | None = None


@dataclass
class DriverCounters:
    cycles: int = 0
    cycle_overruns: int = 0
    """Cycles whose I/O ran past ``io_budget_s`` (recovery actions may)."""
    read_failures: int = 0
    write_failures: int = 0
    probes: int = 0
    reboots: int = 0
    restores: int = 0
    watchdog_checks: int = 0
    watchdog_recoveries: int = 0
    disconnects: int = 0
    reconnects: int = 0
    torque_offs: int = 0
    estops: int = 0
    faults: int = 0
    goals_clipped: int = 0
    """Goals clipped to the safe tick range by the driver (the filter already clamps: should stay 0)."""


@dataclass
class HandReading:
    """The hand's state after a cycle, in channel order and ctrl units (last good value where stale).

    Attributes:
        position: [rad | m]; velocity: [rad/s | m/s]; current_ma: [mA].
        stale: per servo, not refreshed this cycle. age_s: caller-clock seconds since the last good read.
        stamp_s: the caller's time of the cycle.
        command: the goal sent this cycle (None: torque off), filter state, and its reasons.
    """

    position: np.ndarray
    velocity: np.ndarray
    current_ma: np.ndarray
    stale: np.ndarray
    age_s: np.ndarray
    stamp_s: float
    command: np.ndarray | None = None
    filter_state: State = State.DISARMED
    reasons: tuple[str, ...] = field(default=())


class HandDriver:
    """One hand on one bus (see module docstring).

    Args:
        channels: the servos, in command order (the vector :meth:`step` takes).
        bus_config: port, baud rate, timeout, retries, Return Delay, Operating Mode, Bus Watchdog.
        safety: watchdog and e-stop timings for the filter (limits and rates come from the channels).
        period_s: control period [s] (the filter's dt).
        io_budget_s: I/O deadline of one cycle [s] (default 40 % of the period).
        port: overrides ``bus_config.port`` (the HIL rig passes the emulator's pty name).
        servo_model: expected model name (``XC330-M288``).
        persistent_failure_s: staleness [s] after which the hand is torqued off (default: the safety
            file's ``torque_off_after_s``).
        reboot_timeout_s: how long a restore waits for a rebooted servo to answer PING [s].
        name: for log messages (``left``).
    """

    def __init__(
        self,
        channels: Sequence[ServoChannel],
        bus_config: BusConfig,
        safety: SafetyConfig,
        *,
        period_s: float = CONTROL_DT_S,
        io_budget_s: float | None = None,
        port: str | None = None,
        servo_model: str = "XC330-M288",
        persistent_failure_s: float | None = None,
        probe_every: int = 5,
        watchdog_check_every: int = 20,
        max_reboots: int = 3,
        name: str = "hand",
        reboot_timeout_s: float = 1.0,
    ) -> None:
        self.channels = list(channels)
        check_channels(self.channels, f"hand driver {name}")
        self.ids = [c.servo_id for c in self.channels]
        self.names = tuple(c.name for c in self.channels)
        self.bus_config = bus_config
        self.port = port or bus_config.port
        self.period_s = period_s
        self.io_budget_s = io_budget_s if io_budget_s is not None else IO_BUDGET_FRACTION * period_s
        self.servo_model = servo_model
        self.persistent_failure_s = (
            persistent_failure_s if persistent_failure_s is not None else safety.watchdog.torque_off_after_s
        )
        self.probe_every = probe_every
        self.watchdog_check_every = watchdog_check_every
        self.max_reboots = max_reboots
        self.reboot_timeout_s = reboot_timeout_s
        self.name = name
        lo, hi, margin, rate = limits_arrays(self.channels)
        self.filter = SafetyFilter(self.names, lo, hi, margin, rate, period_s, safety.watchdog, safety.estop)
        self.bus = DynamixelBus(
            self.port, bus_config.baudrate, timeout_s=bus_config.timeout_s, retries=bus_config.retries,
            raise_on_alert=False,
        )
        self.state = DriverState.UNCONFIGURED
        self.counters = DriverCounters()
        self.health = {i: ServoHealth() for i in self.ids}
        n = len(self.channels)
        self._pos = np.zeros(n)
        self._vel = np.zeros(n)
        self._cur = np.zeros(n)
        self._index = {c.servo_id: k for k, c in enumerate(self.channels)}
        self.homing: dict[int, RailHoming] = {
            c.servo_id: RailHoming(c.name, c.home, c.limits, c.margin) for c in self.channels if c.home is not None
        }
        """Per homed (multi-turn) servo id its homing; see :meth:`home`."""
        self.homed: dict[int, bool] = {i: False for i in self.homing}
        self._last_ticks: dict[int, int] = {}
        self._torque_on = False
        self._torque_off_sent_cycle = -1
        self._disconnected_since: float | None = None
        self.last_estop_wire_s: float | None = None
        """``time.monotonic()`` when the last e-stop's Torque Enable = 0 left (for the latency check)."""
        self.last_error: str | None = None

    # --- helpers ----------------------------------------------------------------------------------

    def _where(self, servo_id: int | None = None) -> str:
        ch = self.channels[self._index[servo_id]].name if servo_id in self._index else None
        sid = f", servo id {servo_id} ({ch})" if servo_id is not None else ""
        return f"[{self.name} hand, port {self.port}{sid}]"

    def _note(self, servo_id: int | None, message: str, level: int = logging.WARNING) -> None:
        self.last_error = message
        if servo_id is not None and servo_id in self.health:
            self.health[servo_id].last_error = message
        log.log(level, "%s %s", self._where(servo_id), message)

    def _channel(self, servo_id: int) -> ServoChannel:
        return self.channels[self._index[servo_id]]

    @property
    def model_number(self) -> int:
        return MODEL_NUMBERS[self.servo_model]

    # --- lifecycle --------------------------------------------------------------------------------

    def configure(self) -> None:
        """Open the port, find every servo, write the settings with torque off (see module docstring).

        Raises:
            BusConnectionError: the port cannot be opened.
            HandDriverError: servos missing (all listed), a wrong model, or a setting that did not stick.
        """
        self.bus.connect()
        missing, wrong = [], []
        models: dict[int, int] = {}
        for servo_id in self.ids:
            try:
                models[servo_id] = self.bus.ping(servo_id)
            except BusError as exc:
                missing.append(servo_id)
                self.health[servo_id].last_error = f"no answer to PING: {exc.cause}"
        if missing:  # a servo that has just been powered (or rebooted) is silent while it boots: poll, bounded
            end = time.monotonic() + self.reboot_timeout_s
            for servo_id in list(missing):
                try:
                    models[servo_id] = self.bus.wait_for_ping(servo_id, max(end - time.monotonic(), self.bus.timeout_s))
                except BusError as exc:
                    self.health[servo_id].last_error = f"no answer to PING: {exc.cause}"
                    continue
                missing.remove(servo_id)
        wrong = [(i, m) for i, m in models.items() if m != self.model_number]
        if missing:
            names = ", ".join(f"{i} ({self._channel(i).name})" for i in missing)
            self.state = DriverState.UNCONFIGURED
            self.bus.disconnect(disable_torque=False)
            raise HandDriverError(f"servo id(s) {names} did not answer PING; check power, cabling and ids",
                                  port=self.port, servo_id=missing[0])
        if wrong:
            detail = ", ".join(f"id {i} is model {m}" for i, m in wrong)
            self.bus.disconnect(disable_torque=False)
            raise HandDriverError(f"expected {self.servo_model} (model {self.model_number}): {detail}",
                                  port=self.port, servo_id=wrong[0][0])
        cfg = self.bus_config
        with self.bus.patient(cfg.setup_timeout_s, cfg.setup_retries):
            self.bus.disable_torque(self.ids)
            self._torque_on = False
            for ch in self.channels:
                self._write_eeprom(ch)
                self._write_ram(ch)
            self.home()
        self.state = DriverState.INACTIVE
        log.info("%s configured %d servos", self._where(), len(self.ids))

    def home(self, ids: Sequence[int] | None = None) -> dict[int, float]:
        """Home the multi-turn channels (all, or ``ids``): the carriage stands at its home mark, so the
        present reading becomes its ``home`` (the channel's offset is replaced). Returns the new offsets.

        Raises:
            BusError: the position could not be read.
        """
        targets = [i for i in (ids if ids is not None else self.homing) if i in self.homing]
        if not targets:
            return {}
        ticks = self.bus.sync_read("present_position", targets)
        out = {}
        for servo_id, raw_ticks in ticks.items():
            k = self._index[servo_id]
            ch = self.channels[k]
            offset = self.homing[servo_id].offset(ch.raw_from_ticks(raw_ticks))
            self.channels[k] = replace(ch, offset=offset)
            self._last_ticks[servo_id] = raw_ticks
            self.homed[servo_id] = True
            out[servo_id] = offset
            log.info("%s homed at %.4f m (offset %.4f m)", self._where(servo_id), self.homing[servo_id].home, offset)
        return out

    def operating_mode_for(self, ch: ServoChannel) -> int:
        """Operating Mode of a channel's servo: Extended Position for multi-turn (rail) channels, else the bus's."""
        return t.OPERATING_MODE_EXTENDED_POSITION if ch.extended else self.bus_config.operating_mode

    def _write_eeprom(self, ch: ServoChannel) -> None:
        lo, hi = ch.limit_ticks()
        wanted = {
            "operating_mode": self.operating_mode_for(ch),
            "return_delay_time": self.bus_config.return_delay_units,
            "current_limit": t.ma_to_current(ch.current_limit_ma, self.model_number),
        }
        if not ch.extended:  # Min/Max Position Limit are unused (and single-turn) in the multi-turn modes
            wanted.update({"min_position_limit": lo, "max_position_limit": hi})
        for item, value in wanted.items():
            if self.bus.read(ch.servo_id, item) != value:  # EEPROM has limited write cycles
                self.bus.write(ch.servo_id, item, value)

    def _write_ram(self, ch: ServoChannel, deadline: float | None = None) -> None:
        items = [
            ("position_p_gain", ch.gains.p),
            ("position_i_gain", ch.gains.i),
            ("position_d_gain", ch.gains.d),
            ("goal_current", t.ma_to_current(ch.current_limit_ma, self.model_number)),
        ]
        if ch.extended:
            items.append(("profile_velocity", self.profile_velocity_for(ch)))
        for item, value in items:
            self.bus.write(ch.servo_id, item, value, deadline=deadline)

    @staticmethod
    def profile_velocity_for(ch: ServoChannel) -> int:
        """Profile Velocity [0.229 rpm units] of a multi-turn channel: the filter's rate limit with headroom,
        within the Profile Velocity range."""
        units = math.ceil(RAIL_PROFILE_VELOCITY_HEADROOM * ch.max_rate / (ch.unit_per_tick * TICKS_PER_S_PER_VELOCITY_UNIT))
        hi = t.X_SERIES["profile_velocity"].hi or 0
        return max(1, min(int(hi), units))

    def activate(self, now_s: float) -> HandReading:
        """Goal := present (through the filter's re-arm), Bus Watchdog armed, torque on.

        Raises:
            HandDriverError / BusError: the state could not be read or torque did not come on.
            SafetyError: the filter refuses to re-arm (no e-stop heartbeat).
        """
        if self.state in (DriverState.UNCONFIGURED, DriverState.FINALIZED):
            raise HandDriverError(f"activate() needs configure() first (state {self.state.value})", port=self.port)
        if not self.bus.is_connected:
            self.bus.connect()
        self._arm(now_s)
        self.state = DriverState.ACTIVE
        log.info("%s active", self._where())
        return self._reading(now_s, self.filter.last_output)

    def _arm(self, now_s: float, ids: Sequence[int] | None = None, deadline: float | None = None) -> None:
        """Read present, re-arm the filter there, clear the watchdog, write goal, arm the watchdog, torque on."""
        ids = list(ids) if ids is not None else list(self.ids)
        data = self.bus.fast_sync_read(READ_SPAN, self.ids, deadline=deadline)
        self._store(data, now_s)
        for servo_id, homing in self.homing.items():
            if not self.homed[servo_id]:
                raise SafetyError(f"{self._where(servo_id)} rail is not homed (configure homes it)")
            homing.check(float(self._pos[self._index[servo_id]]))
        result = self.filter.rearm(now_s, self._pos)
        assert result.command is not None
        units = self.bus_config.bus_watchdog_units
        # clear the watchdog first: a tripped servo refuses goal writes (data range error) until it reads 0
        self.bus.sync_write("bus_watchdog", {i: 0 for i in ids})
        self._write_goals(result.command, ids)
        self.bus.sync_write("bus_watchdog", {i: units for i in ids})
        self.bus.enable_torque(ids)
        on = self.bus.fast_sync_read("torque_enable", ids, deadline=deadline)
        off = [i for i, v in on.items() if v != 1]
        if off:
            raise HandDriverError(f"torque did not come on for servo id(s) {off}", port=self.port, servo_id=off[0])
        for i in ids:
            self.health[i].missing = False
        self._torque_on = True
        self._torque_off_sent_cycle = -1

    def deactivate(self) -> None:
        """Torque off; the port stays open (state INACTIVE)."""
        self._torque_off("deactivate")
        if self.state is not DriverState.FINALIZED:
            self.state = DriverState.INACTIVE

    def shutdown(self) -> None:
        """Torque off and close the port (state FINALIZED)."""
        self._torque_off("shutdown")
        self.bus.disconnect(disable_torque=False)
        self.state = DriverState.FINALIZED

    def on_error(self) -> None:
        """Best-effort torque off (never raises); state FAULT."""
        self._torque_off("error")
        self.state = DriverState.FAULT

    def _torque_off(self, why: str) -> bool:
        """Torque Enable = 0 on every servo (one Sync Write); False if the port is gone."""
        if not self.bus.is_connected:
            return False
        try:
            self.bus.disable_torque(self.ids)
        except BusError as exc:
            self._note(None, f"torque off ({why}) failed: {exc.cause}", logging.ERROR)
            self._handle_connection(exc)
            return False
        self._torque_on = False
        self._torque_off_sent_cycle = self.counters.cycles
        self.counters.torque_offs += 1
        return True

    # --- safety inputs ----------------------------------------------------------------------------

    def heartbeat(self, now_s: float) -> None:
        """The e-stop publisher is alive (forwarded to the filter)."""
        self.filter.heartbeat(now_s)

    def estop(self, now_s: float, reason: str) -> None:
        """Latch the e-stop and send Torque Enable = 0 at once (before any read)."""
        self.filter.estop(now_s, reason)
        self.counters.estops += 1
        if self._torque_off("estop"):
            self.last_estop_wire_s = self.bus.last_write_s
        self._note(None, f"e-stop: {reason}; torque off", logging.ERROR)

    def rearm(self, now_s: float) -> HandReading:
        """Leave an e-stop or a watchdog torque-off: goal := present, torque on (needs a heartbeat)."""
        if self.state is not DriverState.ACTIVE:
            return self.activate(now_s)
        self._arm(now_s)
        return self._reading(now_s, self.filter.last_output)

    # --- the control cycle ------------------------------------------------------------------------

    def step(self, command: np.ndarray | Sequence[float] | None, now_s: float) -> HandReading:
        """One cycle: filter ``command`` (ctrl units, channel order; None = no new command), write, read.

        Never raises for bus faults (they are handled and counted); blocks at most ``io_budget_s`` plus,
        rarely, a recovery action (counted in ``cycle_overruns``).
        """
        start = time.monotonic()
        deadline = start + self.io_budget_s
        self.counters.cycles += 1
        self._last_now = now_s
        if self.state is not DriverState.ACTIVE:
            if self.state is DriverState.FAULT:
                if not self.bus.is_connected:
                    try:
                        self.bus.connect()
                        self._torque_on = True  # unknown after an outage: make sure it goes off
                    except BusConnectionError:
                        pass
                if self.bus.is_connected and self._torque_on:
                    self._torque_off("fault")
            return self._reading(now_s, None)
        if not self.bus.is_connected and not self._reconnect(now_s, deadline):
            self._check_persistent(now_s)
            return self._reading(now_s, None)
        if time.monotonic() - self.bus.last_write_s > 0.8 * self.bus_config.bus_watchdog_ms * 1e-3 or (
            self.counters.cycles % self.watchdog_check_every == 0
        ):
            self._check_watchdog(now_s, deadline)
        if command is None:
            result = self.filter.tick(now_s, self._pos)
        else:
            result = self.filter.filter(command, now_s, self._pos)
        self._send(result)
        if self.bus.is_connected:
            self._read(now_s, deadline)
        if self.bus.is_connected and self.bus.alerts:
            self._recover_hardware_errors(now_s)
        self._check_persistent(now_s)
        if time.monotonic() - start > self.io_budget_s:
            self.counters.cycle_overruns += 1
        return self._reading(now_s, result.command, result)

    def keepalive(self, now_s: float) -> None:
        """A cycle without a command that does not move the filter's ramp (see the module docstring): the
        filter's timers run at ``now_s``; while it stays ACTIVE the last goals are written again (no read),
        else this is a full :meth:`step` without a command (HOLD ramps, torque off goes out)."""
        last = self.filter.last_output
        if self.state is not DriverState.ACTIVE or not self.bus.is_connected or last is None \
                or self.filter.state is not State.ACTIVE or self.filter.check(now_s) is not State.ACTIVE:
            self.step(None, now_s)
            return
        self._last_now = now_s
        if time.monotonic() - self.bus.last_write_s > 0.8 * self.bus_config.bus_watchdog_ms * 1e-3:
            self._check_watchdog(now_s, time.monotonic() + self.io_budget_s)
            last = self.filter.last_output  # a watchdog re-arm re-seeds the filter at the measured position
            if last is None:
                return
        try:
            self._write_goals(last, self.ids)
        except BusError as exc:
            self.counters.write_failures += 1
            self._handle_connection(exc)

    def _send(self, result: FilterResult) -> None:
        if result.command is None:
            # torque off on the transition, then again every second in case a packet was lost
            if self._torque_on or self.counters.cycles - self._torque_off_sent_cycle >= round(1.0 / self.period_s):
                self._torque_off(result.state.value)
            return
        try:
            self._write_goals(result.command, self.ids)
        except BusError as exc:
            self.counters.write_failures += 1
            self._handle_connection(exc)

    def _write_goals(self, command: np.ndarray, ids: Sequence[int]) -> None:
        goals = {}
        for servo_id in ids:
            ch = self._channel(servo_id)
            ticks = ch.to_ticks(float(command[self._index[servo_id]]))
            lo, hi = ch.safe_tick_range()
            if not lo <= ticks <= hi:
                self.counters.goals_clipped += 1
                ticks = min(max(ticks, lo), hi)
            goals[servo_id] = ticks
        self.bus.sync_write("goal_position", goals)

    def _read(self, now_s: float, deadline: float) -> None:
        present = [i for i in self.ids if not self.health[i].missing]
        if present:
            try:
                data = self.bus.fast_sync_read(READ_SPAN, present, deadline=deadline)
                self._store(data, now_s)
            except BusTimeout as exc:
                self.counters.read_failures += 1
                self._mark_stale(present)
                suspect = exc.servo_id
                if suspect is not None and suspect in self.health and not self.health[suspect].missing:
                    self.health[suspect].missing = True
                    self._note(suspect, f"stopped answering ({exc.cause}); left out of the fast read, probing")
                else:
                    self._note(None, f"state read failed: {exc.cause}")
            except ServoError as exc:
                self.counters.read_failures += 1
                self._mark_stale(present)
                self._note(exc.servo_id, f"state read failed: {exc.cause}")
            except BusError as exc:
                self.counters.read_failures += 1
                self._mark_stale(present)
                self._note(exc.servo_id, f"state read failed: {exc.cause}")
                self._handle_connection(exc)
        missing = [i for i in self.ids if self.health[i].missing]
        self._mark_stale(missing)
        if missing and self.bus.is_connected and self.counters.cycles % self.probe_every == 0:
            self._probe(missing, now_s, deadline)

    def _probe(self, ids: Sequence[int], now_s: float, deadline: float) -> None:
        """One short Sync Read of the missing servos; those that answer rejoin the fast read."""
        self.counters.probes += 1
        try:
            data = self.bus.sync_read(READ_SPAN, ids, deadline=max(deadline, time.monotonic() + self.bus.timeout_s))
        except BusError as exc:
            self._handle_connection(exc)
            data = {i: READ_SPAN.decode(raw) for i, raw in self.bus.partial.items()}
        for servo_id in data:
            self.health[servo_id].missing = False
            self._note(servo_id, "answers again; back in the fast read", logging.INFO)
        if data:
            self._store(data, now_s)

    def _store(self, data: Mapping[int, tuple[int, ...]], now_s: float) -> None:
        """Keep one READ_SPAN reading (current, velocity, position) per servo."""
        for servo_id, (current, velocity, position) in data.items():
            k = self._index[servo_id]
            ch = self.channels[k]
            self._last_ticks[servo_id] = position
            self._pos[k] = ch.from_ticks(position)
            self._vel[k] = ch.velocity_from_units(velocity)
            self._cur[k] = t.current_to_ma(current, self.model_number) * ch.direction
            h = self.health[servo_id]
            if h.stale and h.last_good_s is not None and h.last_error is not None:
                log.info("%s fresh again", self._where(servo_id))
            h.stale = False
            h.last_good_s = now_s

    def _mark_stale(self, ids: Sequence[int]) -> None:
        for servo_id in ids:
            self.health[servo_id].stale = True

    def _check_persistent(self, now_s: float) -> None:
        if self.state is not DriverState.ACTIVE:
            return
        worst = None
        for servo_id, h in self.health.items():
            if h.stale and h.last_good_s is not None and now_s - h.last_good_s > self.persistent_failure_s:
                worst = servo_id
                break
        if self._disconnected_since is not None and now_s - self._disconnected_since > self.persistent_failure_s:
            worst = -1
        if worst is None:
            return
        self.counters.faults += 1
        self.state = DriverState.FAULT
        self.filter.estop(now_s, "hand driver fault: persistent bus failure")
        if worst == -1:
            self._note(None, f"port gone for > {self.persistent_failure_s} s: FAULT (torque off when it returns)",
                       logging.ERROR)
        else:
            self._note(worst, f"no valid state for > {self.persistent_failure_s} s "
                              f"(last error: {self.bus.stats.get(worst) and self.bus.stats[worst].last_error}); "
                              "torque off, FAULT", logging.ERROR)
        self._torque_off("persistent failure")

    # --- recoveries -------------------------------------------------------------------------------

    def _handle_connection(self, exc: BusError) -> None:
        if isinstance(exc, BusConnectionError) and self._disconnected_since is None:
            self.counters.disconnects += 1
            self._note(None, f"port lost ({exc.cause}); holding the last good state, reopening", logging.ERROR)
            try:
                self.bus.disconnect(disable_torque=False)
            except (OSError, BusError):
                pass
            self.bus._serial = None  # noqa: SLF001 - a vanished device cannot be closed cleanly
            self._disconnected_since = self._last_now
            self._mark_stale(self.ids)

    _last_now: float = 0.0

    def _reconnect(self, now_s: float, deadline: float) -> bool:
        self._last_now = now_s
        if self._disconnected_since is None:
            self._disconnected_since = now_s
        self._mark_stale(self.ids)
        try:
            self.bus.connect()
        except BusConnectionError:
            return False
        try:
            for servo_id in self.ids:
                self.bus.ping(servo_id, deadline=time.monotonic() + 2 * self.bus.timeout_s)
            if self.state is DriverState.ACTIVE:
                self._arm(now_s)
        except BusError as exc:
            self._note(exc.servo_id, f"port is back but the hand is not ready ({exc.cause})")
            self.bus.disconnect(disable_torque=False)
            return False
        self.counters.reconnects += 1
        self._note(None, f"port back after {now_s - self._disconnected_since:.3f} s; re-armed", logging.WARNING)
        self._disconnected_since = None
        return True

    def _check_watchdog(self, now_s: float, deadline: float) -> None:
        self.counters.watchdog_checks += 1
        ids = [i for i in self.ids if not self.health[i].missing]
        try:
            values = self.bus.fast_sync_read("bus_watchdog", ids, deadline=deadline)
        except BusError as exc:
            self._handle_connection(exc)
            return
        tripped = [i for i, v in values.items() if v == BUS_WATCHDOG_TRIPPED]
        if not tripped:
            return
        for i in tripped:
            self.health[i].watchdog_trips += 1
        self.counters.watchdog_recoveries += 1
        self._note(tripped[0], f"bus watchdog tripped on servo id(s) {tripped} (host silent > "
                               f"{self.bus_config.bus_watchdog_ms:g} ms); re-arming at the measured position")
        try:
            self._arm(now_s)
        except (BusError, SafetyError) as exc:
            self._note(tripped[0], f"watchdog recovery failed: {exc}", logging.ERROR)

    def _recover_hardware_errors(self, now_s: float) -> None:
        alerts, self.bus.alerts = dict(self.bus.alerts), {}
        for servo_id in alerts:
            if servo_id not in self.health:
                continue
            h = self.health[servo_id]
            h.hardware_errors += 1
            try:
                bits = self.bus.read(servo_id, "hardware_error_status")
                what = t.describe_hardware_error(bits)
                if h.reboots >= self.max_reboots:
                    self._note(servo_id, f"hardware error ({what}) again after {h.reboots} reboots: giving up",
                               logging.ERROR)
                    h.last_good_s = min(h.last_good_s or now_s, now_s - self.persistent_failure_s - 1e-9)
                    h.stale = True
                    continue
                self._note(servo_id, f"hardware error: {what}; rebooting and restoring", logging.ERROR)
                self.bus.reboot(servo_id)
                self.bus.alerts.pop(servo_id, None)  # raised by the read above, before the reboot cleared it
                h.reboots += 1
                self.counters.reboots += 1
                self.bus.wait_for_ping(servo_id, self.reboot_timeout_s)  # silent while it boots
                if servo_id in self.homing:
                    self._restore_turns(servo_id)
                self._write_ram(self._channel(servo_id))
                self._arm(now_s)
                self.counters.restores += 1
            except (BusError, SafetyError) as exc:
                self._note(servo_id, f"reboot-and-restore failed: {exc}", logging.ERROR)

    def _restore_turns(self, servo_id: int) -> None:
        """A rebooted multi-turn servo reads within one turn: fold the lost turns into the channel offset."""
        k = self._index[servo_id]
        ch = self.channels[k]
        now_ticks = int(self.bus.read(servo_id, "present_position"))
        last = self._last_ticks.get(servo_id, now_ticks)
        lost = turns_lost(last, now_ticks, t.TICKS_PER_REV)
        if lost:
            self.channels[k] = replace(ch, offset=ch.offset - ch.raw_from_ticks(t.CENTER_TICKS + lost * t.TICKS_PER_REV))
            self._note(servo_id, f"reboot dropped {lost} turn(s) of the multi-turn count; kept the homed frame",
                       logging.INFO)
        self._last_ticks[servo_id] = now_ticks  # the servo's new frame: later reads continue from here

    # --- outputs ----------------------------------------------------------------------------------

    def _reading(self, now_s: float, command: np.ndarray | None, result: FilterResult | None = None) -> HandReading:
        stale = np.array([self.health[i].stale for i in self.ids])
        age = np.array([now_s - h.last_good_s if h.last_good_s is not None else np.inf
                        for h in (self.health[i] for i in self.ids)])
        return HandReading(
            self._pos.copy(), self._vel.copy(), self._cur.copy(), stale, age, now_s,
            None if command is None else np.asarray(command).copy(),
            self.filter.state, result.reasons if result is not None else (),
        )

    def diagnostics(self) -> dict[str, object]:
        """Everything a /diagnostics message needs: driver state, counters, filter, and per servo the bus
        counters (tx, rx_ok, timeouts, crc_errors, servo_errors) and driver health (stale, missing,
        reboots, watchdog trips, hardware errors, last error)."""
        servos = {}
        for ch in self.channels:
            s = self.bus.stats.get(ch.servo_id)
            h = self.health[ch.servo_id]
            entry = asdict(s) if s is not None else {}
            entry.update({k: v for k, v in asdict(h).items() if k != "last_error"})
            entry["last_error"] = h.last_error or (s.last_error if s is not None else None)
            entry["name"] = ch.name
            servos[ch.servo_id] = entry
        return {
            "hand": self.name, "port": self.port, "state": self.state.value, "connected": self.bus.is_connected,
            "last_error": self.last_error, "counters": asdict(self.counters),
            "parser": asdict(self.bus.parser.stats), "filter": self.filter.diagnostics(), "servos": servos,
        }

    def diagnostic_key_values(self) -> dict[str, str]:
        """Flat string key/values for diagnostic_msgs/KeyValue."""
        d: dict[str, Any] = self.diagnostics()
        out = {k: str(d[k]) for k in ("state", "port", "connected", "last_error")}
        out.update({f"driver.{k}": str(v) for k, v in d["counters"].items()})
        out.update({f"filter.{k}": v for k, v in d["filter"].items()})
        for servo_id, entry in d["servos"].items():
            for k, v in entry.items():
                out[f"servo{servo_id}.{k}"] = str(v)
        return out


__all__ = ["READ_SPAN", "DriverState", "HandDriver", "HandDriverError", "HandReading", "ServoHealth"]
