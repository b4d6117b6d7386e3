"""mujoco_mock node: the simulated hands and piano behind the hardware topics; owns ``/clock``.

Subscribes ``/<side>_hand/position_controller/commands`` (best-effort, depth 1; actuator ctrl units,
``embodiment.actuator_names(side)`` order) and ``/piano/sustain``; publishes, after each control step
(10 physics substeps), ``/clock``, then ``/<side>_hand/joint_states`` and ``/piano/keys`` stamped with
the simulated time (with ``use_sim_time``) or the wall clock (without).

Modes: ``realtime`` steps once per wall-clock control period with the newest commands; ``lockstep``
publishes the state, waits until a command for *this* step arrived from both hands, then steps (as
fast as the graph runs). If no command arrives within ``lockstep_timeout_s`` (e-stop, a lost message)
it steps anyway with the previous ctrl (counted in ``lockstep_timeouts``). Lock-step starts once the
graph is connected (keys subscribers, command publishers) and ``settle_s`` has passed.

HIL (``hil: true``): each hand is a :class:`~omnipianist.hardware.emulator.ServoBusEmulator` on a pty
(linked as ``<hil_port_dir>/ttyDXL_<side>``, the hand drivers' ``port``) whose servos are this
simulation's actuators (:func:`omnipianist.hardware.hil.start_sim_bus`). The mock then does not
subscribe to the command topics: the servos hold the goals the drivers wrote, and each step applies them
to ctrl (under the lock the emulator threads take). It still publishes the full joint states (the
policy's observation stays simulated); the drivers publish their servo readings on
``/<side>_hand/servo_states``. Start: once every servo has been torqued on (the drivers are active) and,
in lock-step, the servo_states publishers exist. Lock-step: after publishing step k the mock waits for
one ``servo_states`` from each driver (a driver with ``trigger: command`` publishes once per command
cycle, after its Sync Write of goals and Fast Sync Read) and until both emulated buses have handled every
byte their drivers sent (a read that timed out under load must not let the physics run ahead of the goals;
counted in ``idle_timeouts`` if it takes longer than ``lockstep_timeout_s``), then steps. In lock-step the
servos' Bus Watchdog measures silence in simulated time: a slow host trips it no more than the real-time
rig would at the same step rate.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from typing import Any

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock as RosClock
from rclpy.clock import ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState, Joy
from std_msgs.msg import Float32, Float64MultiArray

from omnipianist_ros import topics
from omnipianist_ros.messages import joint_state_msg, keys_to_joy, time_from_ns, time_s
from omnipianist_ros.mock import MockPiano
from omnipianist_ros.params import MockParams, declare_and_read, hil_port
from sim_training.constants import CONTROL_DT_S, HAND_SIDES
from sim_training.models.embodiment import action_set_of, get_embodiment
from sim_training.models.scene import build_scene

POLL_S = 0.005


class MockNode(Node):
    def __init__(self, name: str = "mujoco_mock", overrides: list[Parameter[Any]] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(name, parameter_overrides=overrides or [], **kwargs)
        self.params = p = declare_and_read(self, MockParams)
        self.scene = build_scene(get_embodiment(p.embodiment, action_set_of(p.action_set), p.forearm_z))
        self.piano = MockPiano(self.scene)
        group = MutuallyExclusiveCallbackGroup()
        self.clock_pub = self.create_publisher(Clock, topics.CLOCK, topics.CLOCK_QOS)
        self.js_pubs = {s: self.create_publisher(JointState, topics.joint_states(s), topics.JOINT_STATES_QOS)
                        for s in HAND_SIDES}
        self.keys_pub = self.create_publisher(Joy, topics.KEYS, topics.KEYS_QOS)
        self.lock = threading.RLock()
        """Held while stepping: the emulator threads read and write the simulation through it (HIL)."""
        self.emulators: dict[str, Any] = {}
        self.backends: dict[str, Any] = {}
        self.hil_channels: dict[str, Any] = {}
        self.ports: dict[str, str] = {}
        self._port_dir_owned: str | None = None
        self._servo_fresh = {s: False for s in HAND_SIDES}
        self._torqued = False
        if p.hil:
            self._start_buses()
            for side in HAND_SIDES:
                self.create_subscription(JointState, topics.servo_states(side),
                                         lambda m, s=side: self._on_servo_states(s, m), topics.JOINT_STATES_QOS,
                                         callback_group=group)
        else:
            for side in HAND_SIDES:
                self.create_subscription(Float64MultiArray, topics.commands(side),
                                         lambda m, s=side: self._on_command(s, m), topics.COMMAND_SUB_QOS,
                                         callback_group=group)
        self.create_subscription(Float32, topics.SUSTAIN, self._on_sustain, topics.SUSTAIN_QOS, callback_group=group)
        self._pending: dict[str, np.ndarray | None] = {s: None for s in HAND_SIDES}
        self.sustain = 0.0
        self.lockstep_timeouts = 0
        self.idle_timeouts = 0
        """HIL lock-step: steps taken before an emulated bus had handled all its driver sent (after lockstep_timeout_s)."""
        self.bad_commands = 0
        self.started = False
        self._ready_since: float | None = None
        self._published_at = 0.0
        wall = RosClock(clock_type=ClockType.STEADY_TIME)
        if p.mode == "lockstep":
            self.create_timer(POLL_S, self._poll_lockstep, callback_group=group, clock=wall)
        else:
            self.create_timer(p.period_s or CONTROL_DT_S, self._step_realtime, callback_group=group, clock=wall)

    # ------------------------------------------------------------------------------------ HIL buses
    def _start_buses(self) -> None:
        """One emulated bus per hand on this simulation, linked at ``hil_port(hil_port_dir, side)``."""
        from omnipianist.hardware.config import shipped_or_given
        from omnipianist.hardware.hil import HilConfig, load_sim_buses, start_sim_bus

        p = self.params
        folder = shipped_or_given(p.hil_config)
        cfg = HilConfig(embodiment=p.embodiment,
                        hand_files={s: folder / f"{p.embodiment}_{s}.yaml" for s in HAND_SIDES},
                        bus_file=folder / "bus.yaml", safety_file=folder / "safety.yaml", byte_timing=p.hil_byte_timing)
        channels, bus_configs, _ = load_sim_buses(cfg)
        port_dir = p.hil_port_dir
        if not port_dir:
            port_dir = self._port_dir_owned = tempfile.mkdtemp(prefix="omnipianist-hil-")
        os.makedirs(port_dir, exist_ok=True)
        try:
            for side in HAND_SIDES:
                self.hil_channels[side] = channels[side]
                # lock-step: the servos live in simulated time (a step's goals always come within it, so
                # their Bus Watchdog trips only if a driver really went silent, not when the host is slow)
                clock = self._sim_time_s if p.mode == "lockstep" else time.monotonic
                self.backends[side], self.emulators[side] = start_sim_bus(
                    self.piano.model, self.piano.data, channels[side], bus_configs[side], self.lock,
                    byte_timing=cfg.byte_timing, watchdog_clock=clock)
                link = hil_port(port_dir, side)
                if os.path.lexists(link):
                    os.unlink(link)
                os.symlink(self.emulators[side].port, link)
                self.ports[side] = link
        except BaseException:
            self.close()
            raise
        self.get_logger().info("mujoco_mock: HIL buses " + ", ".join(f"{s} {link}" for s, link in self.ports.items()))

    def _sim_time_s(self) -> float:
        return float(self.piano.data.time)

    def close(self) -> None:
        """Stop the emulated buses and remove their links (idempotent; the bringup calls it)."""
        for emu in self.emulators.values():
            emu.stop()
        for link in self.ports.values():
            if os.path.islink(link):
                os.unlink(link)
        self.ports = {}
        if self._port_dir_owned is not None:
            shutil.rmtree(self._port_dir_owned, ignore_errors=True)
            self._port_dir_owned = None

    def _servos_torqued(self) -> bool:
        """HIL: every servo has been torqued on once (latched: the bus watchdog may trip while the graph waits,
        the drivers re-arm at their next cycle)."""
        if not self._torqued and self.backends:
            with self.lock:
                self._torqued = all(all(b.torque.values()) for b in self.backends.values())
        return self._torqued

    def _on_servo_states(self, side: str, _msg: JointState) -> None:
        if not self.started:
            return
        self._servo_fresh[side] = True
        if self.params.mode == "lockstep" and all(self._servo_fresh.values()):
            self._advance()

    # ------------------------------------------------------------------------------------ inputs
    def _on_command(self, side: str, msg: Float64MultiArray) -> None:
        cmd = np.asarray(msg.data, dtype=np.float64)
        if cmd.size != len(self.piano.actuator_names[side]) or not np.isfinite(cmd).all():
            self.bad_commands += 1
            self.get_logger().warning(f"{side} command refused: {cmd.size} values or non-finite",
                                      throttle_duration_sec=1.0)
            return
        self._pending[side] = cmd
        if self.params.mode == "lockstep" and self.started and all(c is not None for c in self._pending.values()):
            self._advance()

    def _on_sustain(self, msg: Float32) -> None:
        self.sustain = float(msg.data)

    # ------------------------------------------------------------------------------------ stepping
    @property
    def finished(self) -> bool:
        return self.params.max_steps > 0 and self.piano.steps >= self.params.max_steps

    def _waiting_for(self) -> str:
        """What the graph still lacks before the first step ('' once it is connected)."""
        keys = self.count_subscribers(topics.KEYS)
        if keys < self.params.wait_for_subscribers:
            return f"{keys}/{self.params.wait_for_subscribers} subscribers of {topics.KEYS}"
        missing = [topics.commands(s) for s in HAND_SIDES if self.count_publishers(topics.commands(s)) < 1]
        if missing:
            return "a publisher of " + ", ".join(missing)
        if self.params.hil:
            if not self._servos_torqued():
                with self.lock:
                    off = {side: [i for i, on in b.torque.items() if not on] for side, b in self.backends.items()}
                return "every servo torqued on (the hand drivers active); torque off: " + ", ".join(
                    f"{side} ids {ids}" for side, ids in off.items() if ids)
            missing = [topics.servo_states(s) for s in HAND_SIDES if self.count_publishers(topics.servo_states(s)) < 1]
            if self.params.mode == "lockstep" and missing:
                return "a publisher of " + ", ".join(missing)
        return ""

    def _graph_ready(self) -> bool:
        waiting = self._waiting_for()
        if waiting:
            self.get_logger().info(f"mujoco_mock: waiting for {waiting}", throttle_duration_sec=2.0)
        return not waiting

    def _poll_lockstep(self) -> None:
        now = time.monotonic()
        if not self.started:
            if not self._graph_ready():
                self._ready_since = None
                return
            if self._ready_since is None:
                self._ready_since = now
            if now - self._ready_since >= self.params.settle_s:
                self.started = True
                self.get_logger().info("mujoco_mock: graph connected, lock-step starts at t=0")
                self._publish_state()
            return
        if not self.finished and now - self._published_at > self.params.lockstep_timeout_s:
            self.lockstep_timeouts += 1
            self._advance()

    def _advance(self) -> None:
        """Apply the pending commands, step the physics one control period, publish the new state."""
        if self.finished:
            return
        for side, cmd in self._pending.items():
            if cmd is not None:
                self.piano.apply(side, cmd)
        self._pending = {s: None for s in HAND_SIDES}
        if self.params.mode == "lockstep":
            # HIL: a driver publishes servo_states after writing this step's goals, but its read may have timed
            # out before the emulator handled them; step only once every byte sent has been handled
            for emu in self.emulators.values():
                if not emu.wait_idle(self.params.lockstep_timeout_s):
                    self.idle_timeouts += 1
        with self.lock:
            for backend in self.backends.values():  # HIL: the goals the emulated servos hold
                backend.apply(self.piano.data.ctrl)
            self.piano.step()
        self._publish_state()

    def _step_realtime(self) -> None:
        if not self.started:
            if self.params.hil and not self._graph_ready():
                return
            self.started = True
            self.get_logger().info("mujoco_mock: graph connected, real-time stepping starts")
            self._publish_state()
            return
        self._advance()

    def _publish_state(self) -> None:
        self._servo_fresh = {s: False for s in HAND_SIDES}
        sim = time_from_ns(self.piano.time_ns)
        self.clock_pub.publish(Clock(clock=sim))
        # Stamps are simulated time when the graph follows /clock; without use_sim_time (real-time mode
        # on the wall clock, as on hardware) they are this node's clock, like a driver's.
        use_sim = self.get_parameter("use_sim_time").value
        t = time_s(sim) if use_sim else self.get_clock().now().nanoseconds * 1e-9
        for side in HAND_SIDES:
            self.js_pubs[side].publish(joint_state_msg(self.piano.joint_names[side], self.piano.hand_q(side),
                                                       self.piano.hand_v(side), t))
        self.keys_pub.publish(keys_to_joy(self.piano.key_state(), self.piano.active(), t))
        self._published_at = time.monotonic()
