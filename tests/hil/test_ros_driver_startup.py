"""hand_driver node start-up: a driver started before its port exists keeps retrying (autostart) and
configures once the port appears; a failed configure leaves no half-built driver; the retries stop
after configure_timeout_s."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.dds


def _spin_until(executor: Any, predicate: Any, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        executor.spin_once(timeout_sec=0.05)
    return bool(predicate())


def _node(context: Any, port: Path, **params: Any) -> Any:
    from rclpy.parameter import Parameter

    from omnipianist_ros.nodes.hand_driver_node import HandDriverNode

    overrides = [Parameter("side", value="left"), Parameter("port", value=str(port)),
                 Parameter("autostart", value=True)] + [Parameter(k, value=v) for k, v in params.items()]
    return HandDriverNode(context=context, parameter_overrides=overrides)


def test_driver_configures_once_its_port_appears(tmp_path: Path) -> None:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import Bool

    from omnipianist.hardware.emulator import ServoBusEmulator

    port = tmp_path / "ttyDXL_left"
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = _node(context, port)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        assert _spin_until(executor, lambda: node.configure_failures >= 3, 5.0)
        assert node.driver is None, "a failed configure left a driver behind"
        assert node.lifecycle_state == "unconfigured" and not node.gave_up
        with ServoBusEmulator(range(18)) as emu:  # 16 joints + 2 rail servos
            os.symlink(emu.port, port)  # the port appears (as the HIL mock links its ptys)
            assert _spin_until(executor, lambda: node.lifecycle_state == "inactive", 5.0), node.lifecycle_state
            assert node.driver is not None and node.driver.port == str(port)
            assert emu.servos[1].get("operating_mode") == 5  # configure wrote the settings
            for _ in range(40):  # the e-stop heartbeat: autostart activates
                node._on_estop(Bool(data=False))  # noqa: SLF001
                if node.lifecycle_state == "active":
                    break
                executor.spin_once(timeout_sec=0.05)
            assert node.lifecycle_state == "active"
            assert all(s.get("torque_enable") == 1 for s in emu.servos.values())
            node.close()
            executor.shutdown()
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_configure_retries_are_bounded(tmp_path: Path) -> None:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = _node(context, tmp_path / "never", configure_timeout_s=1.0)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        assert _spin_until(executor, lambda: node.gave_up, 5.0)
        failures = node.configure_failures
        assert failures >= 2 and node.driver is None
        t = time.monotonic() + 1.2
        while time.monotonic() < t:
            executor.spin_once(timeout_sec=0.05)
        assert node.configure_failures == failures, "still retrying after configure_timeout_s"
        executor.shutdown()
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
