"""policy node: joint states + keys + goal -> observation -> policy -> safety filter -> hand commands.

Subscribes ``/<side>_hand/joint_states`` (reordered by name into the embodiment's joint order),
``/piano/keys`` (Joy: axes = key depression), ``/piano/goal``, ``/estop`` (std_msgs/Bool, latched;
True latches ESTOP in both hands' safety filters until the ``/policy/rearm`` service).
Publishes ``/<side>_hand/position_controller/commands`` (Float64MultiArray, actuator ctrl units in
``embodiment.actuator_names(side)`` order; nothing while the filter is in ESTOP/TORQUE_OFF),
``/piano/sustain`` (std_msgs/Float32, 0 | 1) and ``/diagnostics`` at 1 Hz (wall clock).

Refuses to start (raises ContractError) when the policy's contract does not match the embodiment.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock as RosClock
from rclpy.clock import ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState, Joy
from std_msgs.msg import Bool, Float32, Float32MultiArray, Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from omnipianist.safety.filter import SafetyError
from omnipianist_ros import topics
from omnipianist_ros.control import Action, Decision, PolicyController, SafetySettings, StepScheduler, hardware_safety_filters
from omnipianist_ros.messages import JointOrder, chunk_trajectory, float64_array, joy_to_keys, msg_to_goal, time_ns
from omnipianist_ros.params import PolicyParams, declare_and_read
from omnipianist_ros.policies import load_policy
from sim_training.constants import CONTROL_DT_S, HAND_SIDES
from sim_training.models.embodiment import action_set_of, get_embodiment
from sim_training.models.scene import build_scene


class PolicyNode(Node):
    def __init__(self, name: str = "policy", overrides: list[Parameter[Any]] | None = None, **kwargs: Any) -> None:
        super().__init__(name, parameter_overrides=overrides or [], **kwargs)
        self.params = p = declare_and_read(self, PolicyParams)
        scene = build_scene(get_embodiment(p.embodiment, action_set_of(p.action_set), p.forearm_z))
        policy = load_policy(p.policy, scene, p.lookahead)
        safety = SafetySettings(p.safety_margin, p.max_rate, p.max_rate_rail, p.estop_heartbeat_timeout_s)
        filters = None
        if p.hardware_config:  # the rig's limits, rates, watchdog and e-stop (hardware_config/safety.yaml)
            filters, timeout = hardware_safety_filters(scene, p.hardware_config)
            safety = dataclasses.replace(safety, heartbeat_timeout_s=timeout)
        # ContractError here: the node refuses to start
        self.controller = PolicyController(scene, policy, p.lookahead, safety, filters=filters)
        emb = scene.embodiment
        self.orders = {s: JointOrder(emb.joint_names(s), topics.joint_states(s)) for s in HAND_SIDES}
        group = MutuallyExclusiveCallbackGroup()
        self.cmd_pubs = {s: self.create_publisher(Float64MultiArray, topics.commands(s), topics.COMMAND_PUB_QOS)
                         for s in HAND_SIDES}
        self.traj_pubs = ({s: self.create_publisher(JointTrajectory, topics.trajectory(s), topics.TRAJECTORY_QOS)
                           for s in HAND_SIDES} if p.publish_trajectory else {})
        self.sustain_pub = self.create_publisher(Float32, topics.SUSTAIN, topics.SUSTAIN_QOS)
        self.diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, topics.DIAGNOSTICS_QOS)
        for side in HAND_SIDES:
            self.create_subscription(JointState, topics.joint_states(side), lambda m, s=side: self._on_js(s, m),
                                     topics.JOINT_STATES_QOS, callback_group=group)
        self.create_subscription(Joy, topics.KEYS, self._on_keys, topics.KEYS_QOS, callback_group=group)
        self.create_subscription(Float32MultiArray, topics.GOAL, self._on_goal, topics.GOAL_QOS, callback_group=group)
        self.create_subscription(Bool, topics.ESTOP, self._on_estop, topics.ESTOP_QOS, callback_group=group)
        self.create_service(Trigger, topics.POLICY_REARM, self._on_rearm, callback_group=group)
        self._q: dict[str, tuple[int, np.ndarray] | None] = {s: None for s in HAND_SIDES}
        self._keys: tuple[int, np.ndarray] | None = None
        self._goal: np.ndarray | None = None
        self.scheduler = StepScheduler(p.trigger, p.stale_after_s, p.arm_on_start)
        """When to step, the e-stop latch and the first arming (control.py; this node only does what it says)."""
        self._input_errors = 0
        self.commands_sent = 0
        if p.trigger in ("timer", "goal"):
            # hardware (no use_sim_time): the steady clock, immune to system-time jumps; simulation: the
            # ROS clock, i.e. /clock, so the loop follows simulated time
            sim = bool(self.get_parameter("use_sim_time").value)
            self.create_timer(CONTROL_DT_S, self._on_timer, callback_group=group,
                              clock=None if sim else RosClock(clock_type=ClockType.STEADY_TIME))
        self.create_timer(1.0, self._publish_diagnostics, callback_group=group,
                          clock=RosClock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(f"policy: {getattr(policy, 'name', p.policy)} on {emb.key}, trigger {p.trigger}")

    # ------------------------------------------------------------------------------------ inputs
    def _on_js(self, side: str, msg: JointState) -> None:
        try:
            q = self.orders[side].positions(msg.name, msg.position)
        except ValueError as exc:
            self._input_error(str(exc))
            return
        stamp = time_ns(msg.header.stamp)
        self._q[side] = (stamp, q)
        self._do(self.scheduler.joint_states(side, stamp))

    def _on_keys(self, msg: Joy) -> None:
        try:
            key_state, _ = joy_to_keys(msg)
        except ValueError as exc:
            self._input_error(str(exc))
            return
        self._keys = (time_ns(msg.header.stamp), key_state)
        self._do(self.scheduler.keys(self._keys[0]))

    def _on_goal(self, msg: Float32MultiArray) -> None:
        try:
            self._goal = msg_to_goal(msg, self.params.lookahead)
        except ValueError as exc:
            self._input_error(str(exc))
            return
        self._do(self.scheduler.goal(self._now_s()))

    def _on_estop(self, msg: Bool) -> None:
        now = self._now_s()
        self.controller.heartbeat(now)
        if self.scheduler.estop(bool(msg.data)):
            self.controller.estop(now, "/estop asserted")
            self.get_logger().error("policy: e-stop asserted; commands stopped (call /policy/rearm to resume)")

    def _on_rearm(self, _req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        refusal = self.scheduler.rearm_refusal()
        if refusal is not None:
            res.success, res.message = False, refusal
            return res
        try:
            self.controller.arm(self._now_s(), self._hand_q())
        except SafetyError as exc:
            res.success, res.message = False, str(exc)
            return res
        res.success, res.message = True, "armed"
        return res

    def _input_error(self, text: str) -> None:
        self._input_errors += 1
        self.get_logger().error(f"policy: {text}", throttle_duration_sec=1.0)

    # ------------------------------------------------------------------------------------ stepping
    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _hand_q(self) -> np.ndarray:
        return self.controller.assembler.hand_q({s: v[1] for s, v in self._q.items() if v is not None})

    def _on_timer(self) -> None:
        self._do(self.scheduler.timer(self._now_s(), time.monotonic()))

    def _do(self, decision: Decision) -> None:
        if decision.action is Action.STEP:
            self._step(decision.now_s)
        elif decision.action is Action.TICK:
            if decision.stale:
                self.controller.stats.stale_inputs += 1
            self.controller.tick(decision.now_s)

    def _step(self, now_s: float) -> None:
        assert self._goal is not None and self._keys is not None
        hand_q = self._hand_q()
        ctl = self.controller
        if self.scheduler.wants_first_arm(ctl.armed):
            try:
                ctl.arm(now_s, hand_q)  # the first arm only; after that, re-arm is /policy/rearm's
                self.scheduler.first_arm_done()
            except SafetyError as exc:  # e.g. no e-stop heartbeat yet (hardware): keep trying, send nothing
                self.get_logger().warning(f"policy: not armed: {exc}", throttle_duration_sec=2.0)
        self.scheduler.stepped(time.monotonic())
        result = ctl.step(now_s, self._goal, self._keys[1], hand_q)
        stamp = self.get_clock().now().to_msg()
        for side in HAND_SIDES:
            cmd = result.commands[side]
            if cmd is not None:
                self.cmd_pubs[side].publish(float64_array(cmd))
                self.commands_sent += 1
                if side in self.traj_pubs:
                    self.traj_pubs[side].publish(chunk_trajectory(ctl.actuator_names[side], cmd,
                                                                  ctl.chunk_commands(side), ctl.dt, stamp))
        self.sustain_pub.publish(Float32(data=float(result.sustain)))

    def _publish_diagnostics(self) -> None:
        values = self.controller.diagnostics()
        values["input_errors"] = str(self._input_errors)
        values["commands_sent"] = str(self.commands_sent)
        states = {values[f"{s}.state"] for s in HAND_SIDES}
        if "estop" in states or "torque_off" in states:
            level, message = DiagnosticStatus.ERROR, f"safety filter: {', '.join(sorted(states))}"
        elif int(values["overruns"]) or int(values["stale_inputs"]) or self._input_errors:
            level, message = DiagnosticStatus.WARN, "overruns, stale or malformed inputs (see values)"
        else:
            level, message = DiagnosticStatus.OK, "ok"
        status = DiagnosticStatus(level=level, name="omnipianist/policy", message=message, hardware_id="sim",
                                  values=[KeyValue(key=k, value=v) for k, v in values.items()])
        arr = DiagnosticArray(status=[status])
        arr.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(arr)
