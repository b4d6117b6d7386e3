"""The hand_driver LifecycleNode against the pty emulator: configure / activate / cycle / deactivate."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.dds


def test_lifecycle_drives_the_emulated_hand() -> None:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter
    from std_msgs.msg import Bool, Float64MultiArray

    from omnipianist.hardware.emulator import ServoBusEmulator
    from omnipianist.hardware.hil import wait_until
    from omnipianist_ros.nodes.hand_driver_node import HandDriverNode

    with ServoBusEmulator(range(18)) as emu:
        context = rclpy.Context()
        rclpy.init(context=context)
        try:
            node = HandDriverNode(context=context, parameter_overrides=[
                Parameter("side", value="left"), Parameter("port", value=emu.port)])
            assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
            assert emu.servos[1].get("operating_mode") == 5
            assert emu.servos[16].get("operating_mode") == 4  # the forearm rail: an extra channel, multi-turn
            assert node.driver is not None and node.driver.names[-2:] == ("lh_forearm_tx", "lh_forearm_ty")
            node._on_estop(Bool(data=False))  # noqa: SLF001 - the heartbeat the filter needs to arm
            assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
            assert all(s.get("torque_enable") == 1 for s in emu.servos.values())
            executor = SingleThreadedExecutor(context=context)
            executor.add_node(node)
            n = node._n_actuators  # noqa: SLF001
            node._on_command(Float64MultiArray(data=[0.1] * n))  # noqa: SLF001
            for _ in range(5):
                node._on_estop(Bool(data=False))  # noqa: SLF001
                executor.spin_once(timeout_sec=0.1)
            assert node.driver is not None and node.driver.counters.cycles >= 1
            msg = node.diagnostics_msg()
            assert msg.status[0].hardware_id == emu.port
            assert any(kv.key == "servo1.timeouts" for kv in msg.status[0].values)
            node._on_estop(Bool(data=True))  # noqa: SLF001
            assert wait_until(lambda: all(s.get("torque_enable") == 0 for s in emu.servos.values()))
            assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
            assert node.trigger_shutdown() == TransitionCallbackReturn.SUCCESS
            assert emu.status_error_summary() == []
            executor.shutdown()
            node.destroy_node()
        finally:
            rclpy.shutdown(context=context)


def test_command_trigger_cycles_once_per_command() -> None:
    """trigger=command (lock-step HIL): each command runs one bus cycle and publishes one reading on
    joint_states_topic; while no command comes, hold cycles keep the bus alive and publish nothing."""
    import time

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter
    from std_msgs.msg import Bool, Float64MultiArray

    from omnipianist.hardware.emulator import ServoBusEmulator
    from omnipianist_ros.nodes.hand_driver_node import HandDriverNode

    with ServoBusEmulator(range(18)) as emu:
        context = rclpy.Context()
        rclpy.init(context=context)
        try:
            node = HandDriverNode(context=context, parameter_overrides=[
                Parameter("side", value="left"), Parameter("port", value=emu.port),
                Parameter("trigger", value="command"), Parameter("joint_states_topic", value="/left_hand/servo_states")])
            assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
            assert node._js_pub.topic_name == "/left_hand/servo_states"  # noqa: SLF001
            node._on_estop(Bool(data=False))  # noqa: SLF001
            assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
            assert node._timer is None  # noqa: SLF001 - no periodic control cycle in command mode
            n = node._n_actuators  # noqa: SLF001
            for k in range(3):
                node._on_command(Float64MultiArray(data=[0.1] * n))  # noqa: SLF001
                assert node.cycles_published == k + 1
            assert node.driver is not None
            cycles = node.driver.counters.cycles
            executor = SingleThreadedExecutor(context=context)
            executor.add_node(node)
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                executor.spin_once(timeout_sec=0.05)
            assert node.driver.counters.cycles > cycles  # hold cycles ran ...
            assert node.cycles_published == 3  # ... and published nothing
            assert node.lifecycle_state == "active"
            node.close()
            assert node.driver is None
            executor.shutdown()
            node.destroy_node()
        finally:
            rclpy.shutdown(context=context)
