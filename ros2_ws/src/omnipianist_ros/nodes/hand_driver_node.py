"""hand_driver node: a ROS 2 LifecycleNode around :class:`omnipianist.hardware.driver.HandDriver` (one hand).

Transitions (the driver core does the work; this node is only plumbing):

* configure: load ``hand_config`` / ``bus_config`` / ``safety_config``, open the port, PING every servo,
  check models, write the EEPROM settings with torque off (``HandDriver.configure``).
* activate: goal := present, torque on, bus watchdog armed (``HandDriver.activate``); then, with
  ``trigger: timer``, the control timer runs one driver cycle per period (absolute I/O deadlines inside the
  driver); with ``trigger: command`` (lock-step HIL) each received command runs one cycle at once, and a
  steady-clock keep-alive (``HandDriver.keepalive``: last goals again, safety timers, no ramp, publishing
  nothing) keeps the servos' bus watchdog fed while no command comes.
* deactivate / cleanup / shutdown / error: torque off (shutdown and cleanup also close the port).

Topics: subscribes ``topics.commands(side)`` (std_msgs/Float64MultiArray, actuator ctrl units in
``embodiment.actuator_names(side)`` order; entries without a servo, e.g. the LEAP forearm rail, are
ignored) with ``topics.COMMAND_SUB_QOS`` (no DDS deadline: the policy's publisher offers none, and a
requested deadline it does not offer makes the pair incompatible, so no command would arrive; the
filter's own watchdog holds and then turns torque off) and ``/estop`` (std_msgs/Bool:
True latches the e-stop, every message is a heartbeat); publishes on ``joint_states_topic`` (default
``topics.joint_states(side)``; ``topics.servo_states(side)`` in a HIL run)
(sensor_msgs/JointState: position, velocity, effort = current [mA]; stale servos keep their last good
value and are listed in the diagnostics) and diagnostic_msgs/DiagnosticArray on ``topics.DIAGNOSTICS`` at 1 Hz.

Parameters: :class:`omnipianist_ros.params.HandDriverParams` (declared read-only with descriptors):
``side``, ``hardware_config`` (folder) or explicit ``hand_config`` / ``bus_config`` / ``safety_config``,
``embodiment``, ``rate_hz``, ``port`` (override), ``autostart`` (configure at once, activate when the
e-stop heartbeat is live), ``configure_timeout_s``, ``trigger``, ``joint_states_topic``.

Start-up with ``autostart`` (a driver may start before its port exists: the HIL mock creates the ptys,
a USB adapter enumerates late): a failed configure leaves no driver behind (the half-built one's port
is closed) and the node UNCONFIGURED; it is retried every 0.5 s (steady clock) until it succeeds or
``configure_timeout_s`` has passed, the failure logged at most once a second.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock as RosClock
from rclpy.clock import ClockType
from rclpy.lifecycle import LifecycleNode, LifecyclePublisher, LifecycleState, TransitionCallbackReturn
from rclpy.publisher import Publisher
from rclpy.timer import Timer
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray

from omnipianist.errors import OmnipianistError
from omnipianist.hardware.config import load_bus_config, load_safety_config
from omnipianist.hardware.driver import DriverState, HandDriver
from omnipianist.hardware.hil_config import load_channels
from omnipianist_ros import topics
from omnipianist_ros.params import HandDriverParams, declare_and_read
from sim_training.models.embodiment import get_embodiment


class HandDriverNode(LifecycleNode):
    def __init__(self, name: str | None = None, overrides: list[Any] | None = None, **kwargs: Any) -> None:
        if overrides is not None:
            kwargs["parameter_overrides"] = list(kwargs.get("parameter_overrides") or []) + list(overrides)
        super().__init__(name or "hand_driver", **kwargs)
        self.params = declare_and_read(self, HandDriverParams)
        self.driver: HandDriver | None = None
        self._timer: Timer | None = None
        self._command: np.ndarray | None = None
        self._pick: np.ndarray = np.zeros(0, dtype=int)
        self._n_actuators = 0
        self._last_diag = 0.0
        self._js_pub: LifecyclePublisher[JointState] | None = None
        self._diag_pub: Publisher[DiagnosticArray] | None = None
        self._subs: list[Any] = []
        self._autostart_timer: Timer | None = None
        self._keepalive_timer: Timer | None = None
        self._last_cycle_s = 0.0
        self.cycles_published = 0
        """Readings published (one per cycle in timer mode, one per command cycle in command mode)."""
        self._steady = RosClock(clock_type=ClockType.STEADY_TIME)
        self._started = time.monotonic()
        self._last_failure_log = -float("inf")
        self.configure_failures = 0
        """Failed configure attempts (autostart retries included)."""
        self.gave_up = False
        """autostart: configure kept failing for configure_timeout_s; no more retries."""
        if self.params.autostart:
            self.trigger_configure()
            # the steady clock: with use_sim_time the ROS clock stands still until the simulation starts,
            # and the simulation (lock-step HIL) waits for the drivers to be active
            self._autostart_timer = self.create_timer(AUTOSTART_RETRY_S, self._try_activate, clock=self._steady)

    def _try_activate(self) -> None:
        """autostart: configure again while UNCONFIGURED (e.g. the port was not there yet; bounded by
        ``configure_timeout_s``), activate while INACTIVE (once the e-stop heartbeat is live); the timer
        goes once the node is ACTIVE (or past any of these states). Every 0.5 s."""
        from lifecycle_msgs.msg import State

        state = self._state_machine.current_state[0]
        if state == State.PRIMARY_STATE_UNCONFIGURED:
            timeout = self.params.configure_timeout_s
            if timeout > 0 and time.monotonic() - self._started > timeout:
                self.gave_up = True
                self.get_logger().error(f"configure failed for {timeout:.0f} s ({self.configure_failures} "
                                        f"attempts); giving up (configure it with `ros2 lifecycle set "
                                        f"{self.get_fully_qualified_name()} configure`)")
                self._stop_autostart()
                return
            self.trigger_configure()
        elif state == State.PRIMARY_STATE_INACTIVE:
            self.trigger_activate()
        else:
            self._stop_autostart()

    def _stop_autostart(self) -> None:
        if self._autostart_timer is not None:
            self.destroy_timer(self._autostart_timer)
            self._autostart_timer = None

    def _log_failure(self, what: str, exc: BaseException) -> None:
        """Error log of a failed transition, at most once a second (autostart retries every 0.5 s)."""
        now = time.monotonic()
        if now - self._last_failure_log >= 1.0:
            self._last_failure_log = now
            self.get_logger().error(f"{what} failed: {exc}")

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # --- transitions --------------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        p = self.params
        side = p.side
        driver: HandDriver | None = None
        try:
            topics.joint_states(side)
            embodiment = p.embodiment
            hand_file, bus_file, safety_file = p.paths()
            hand_path = Path(hand_file)
            safety = load_safety_config(safety_file, embodiment)
            channels, bus_name = load_channels(hand_path, embodiment, safety)
            buses = load_bus_config(bus_file)
            if bus_name not in buses:
                raise OmnipianistError(f"{hand_path}: bus {bus_name!r} is not in {bus_file}")
            if not p.rate_hz > 0:
                raise OmnipianistError(f"{self.get_name()}: rate_hz must be > 0, got {p.rate_hz}")
            driver = HandDriver(channels, buses[bus_name], safety, period_s=1.0 / p.rate_hz,
                                port=p.port or None, name=side)
            names = list(get_embodiment(embodiment).actuator_names(side))
            pick = np.array([names.index(c.name) for c in channels])
            driver.configure()
        except (OmnipianistError, ValueError, OSError) as exc:
            # nothing half-built stays: the next attempt builds the driver from scratch
            if driver is not None:
                _close_quietly(driver)
            self.configure_failures += 1
            self._log_failure("configure", exc)
            return TransitionCallbackReturn.FAILURE
        self.driver = driver
        self._n_actuators = len(names)
        self._pick = pick
        self._js_pub = self.create_lifecycle_publisher(JointState, p.joint_states_topic or topics.joint_states(side),
                                                       topics.JOINT_STATES_QOS)
        self._diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, topics.DIAGNOSTICS_QOS)
        self._subs = [
            self.create_subscription(Float64MultiArray, topics.commands(side), self._on_command,
                                     topics.COMMAND_SUB_QOS),
            self.create_subscription(Bool, topics.ESTOP, self._on_estop, topics.ESTOP_QOS),
        ]
        self.get_logger().info(f"configured {len(channels)} servos on {self.driver.port}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        assert self.driver is not None
        try:
            self.driver.activate(self._now())
        except OmnipianistError as exc:
            self._log_failure("activate", exc)
            self.driver.deactivate()
            return TransitionCallbackReturn.FAILURE
        self._last_cycle_s = time.monotonic()
        if self.params.trigger == "timer":
            self._timer = self.create_timer(self.driver.period_s, self._cycle)
        else:  # command: cycles run in _on_command; this only keeps the bus alive while no command comes
            self._keepalive_timer = self.create_timer(0.5 * self.driver.period_s, self._keepalive, clock=self._steady)
        self.get_logger().info(f"active: torque on, {len(self.driver.names)} channels, trigger {self.params.trigger}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_timer()
        if self.driver is not None:
            self.driver.deactivate()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_timer()
        if self.driver is not None:
            self.driver.on_error()
        return TransitionCallbackReturn.SUCCESS

    def _stop_timer(self) -> None:
        for name in ("_timer", "_keepalive_timer"):
            timer = getattr(self, name)
            if timer is not None:
                self.destroy_timer(timer)
                setattr(self, name, None)

    @property
    def lifecycle_state(self) -> str:
        """The lifecycle state's label (``unconfigured``, ``inactive``, ``active``, ``finalized``)."""
        return str(self._state_machine.current_state[1])

    def close(self) -> None:
        """Torque off and close the port (the bringups call it before destroying the node)."""
        self._stop_autostart()
        self._release()

    def _release(self) -> None:
        self._stop_timer()
        if self.driver is not None:
            self.driver.shutdown()
            self.driver = None
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []

    # --- callbacks ----------------------------------------------------------------------------------

    def _on_command(self, msg: Float64MultiArray) -> None:
        data = np.asarray(msg.data, dtype=float)
        if data.shape != (self._n_actuators,):
            self.get_logger().warning(f"command of length {data.size} ignored; expected {self._n_actuators}",
                                      throttle_duration_sec=1.0)
            return
        self._command = data[self._pick]  # NaNs go through: the filter refuses them and counts it
        if self.params.trigger == "command" and self.driver is not None and self._keepalive_timer is not None:
            self._cycle()

    def _on_estop(self, msg: Bool) -> None:
        if self.driver is None:
            return
        now = self._now()
        self.driver.heartbeat(now)
        if msg.data:
            self.driver.estop(now, "/estop is true")

    def _keepalive(self) -> None:
        """command mode: a keep-alive (no new command, nothing published; the filter's ramp does not move,
        see HandDriver.keepalive) when the bus has been idle a period."""
        driver = self.driver
        if driver is None or time.monotonic() - self._last_cycle_s < driver.period_s:
            return
        self._last_cycle_s = time.monotonic()
        driver.keepalive(self._now())

    def _cycle(self) -> None:
        driver = self.driver
        if driver is None:
            return
        now = self._now()
        command, self._command = self._command, None
        reading = driver.step(command, now)
        self._last_cycle_s = time.monotonic()
        if self._js_pub is not None:
            self.cycles_published += 1
            js = JointState()
            js.header.stamp = self.get_clock().now().to_msg()
            js.name = list(driver.names)
            js.position = reading.position.tolist()
            js.velocity = reading.velocity.tolist()
            js.effort = reading.current_ma.tolist()
            self._js_pub.publish(js)
        mono = time.monotonic()
        if self._diag_pub is not None and mono - self._last_diag >= 1.0:
            self._last_diag = mono
            self._diag_pub.publish(self.diagnostics_msg())
        if driver.state is DriverState.FAULT:
            self.get_logger().error(f"hand driver FAULT: {driver.last_error}", throttle_duration_sec=1.0)

    def diagnostics_msg(self) -> DiagnosticArray:
        assert self.driver is not None
        d = self.driver
        status = DiagnosticStatus()
        status.name = f"hand_driver/{d.name}"
        status.hardware_id = d.port
        stale = any(h.stale for h in d.health.values())
        status.level = (DiagnosticStatus.ERROR if d.state is DriverState.FAULT
                        else DiagnosticStatus.WARN if stale or not d.bus.is_connected else DiagnosticStatus.OK)
        status.message = d.last_error or d.state.value
        status.values = [KeyValue(key=k, value=v) for k, v in d.diagnostic_key_values().items()]
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [status]
        return msg



AUTOSTART_RETRY_S = 0.5
"""autostart: period of the configure / activate attempts [s] (steady clock)."""


def _close_quietly(driver: HandDriver) -> None:
    """Close a driver whose configure failed (its port may be half open); never raises."""
    try:
        if driver.bus.is_connected:
            driver.bus.disconnect(disable_torque=False)
    except Exception:  # noqa: BLE001 - best effort on a failed start-up
        pass
