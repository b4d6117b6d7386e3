"""HandDriver lifecycle on the real LEAP hand files against the pty emulator, and guided calibration."""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from omnipianist.hardware.calibration import add_calibrate_args, dump_hand_yaml, run_calibrate, run_calibration
from omnipianist.hardware.channels import channels_from_hand
from omnipianist.hardware.config import HARDWARE_CONFIG_DIR, load_bus_config, load_hand_config, load_safety_config
from omnipianist.hardware.driver import DriverState, HandDriver, HandDriverError
from omnipianist.hardware.dynamixel import protocol as p
from omnipianist.hardware.dynamixel.bus import DynamixelBus
from omnipianist.hardware.dynamixel.tables import RAD_PER_TICK
from omnipianist.hardware.emulator import ServoBusEmulator
from omnipianist.hardware.hil import wait_until

HAND = load_hand_config(HARDWARE_CONFIG_DIR / "leap_left.yaml")
BUS = load_bus_config(HARDWARE_CONFIG_DIR / "bus.yaml")["left"]
SAFETY = load_safety_config(HARDWARE_CONFIG_DIR / "safety.yaml")
CHANNELS = channels_from_hand(HAND, SAFETY)
IDS = [c.servo_id for c in CHANNELS]


@pytest.fixture
def emulator() -> Iterator[ServoBusEmulator]:
    with ServoBusEmulator(sorted(IDS), return_delay_time=250) as emu:  # factory Return Delay (500 us)
        yield emu
        assert emu.error is None
        assert emu.status_error_summary() == []  # the driver never makes a servo refuse an instruction


def make_driver(emu: ServoBusEmulator) -> HandDriver:
    return HandDriver(CHANNELS, BUS, SAFETY, port=emu.port, name="left")


def test_configure_writes_settings_with_torque_off_then_activate_holds_present(emulator: ServoBusEmulator) -> None:
    emulator.physics.set_position(1, 2300)  # if_mcp rests off-centre
    drv = make_driver(emulator)
    drv.configure()
    assert drv.state is DriverState.INACTIVE
    for ch in CHANNELS:
        s = emulator.servos[ch.servo_id]
        assert s.get("return_delay_time") == 0 and s.get("torque_enable") == 0
        assert s.get("position_p_gain") == ch.gains.p and s.get("position_d_gain") == ch.gains.d
        if ch.extended:  # a forearm rail: multi-turn, no position limits, its own current limit
            assert s.get("operating_mode") == 4 and s.get("current_limit") == 1000
            assert (s.get("min_position_limit"), s.get("max_position_limit")) == (0, 4095)  # factory, untouched
            assert s.get("profile_velocity") > 0
        else:
            assert s.get("operating_mode") == 5
            assert s.get("current_limit") == 350 and s.get("goal_current") == 350
            assert (s.get("min_position_limit"), s.get("max_position_limit")) == ch.limit_ticks()
    assert [c.name for c in CHANNELS[-2:]] == ["lh_forearm_tx", "lh_forearm_ty"]
    drv.heartbeat(0.0)
    reading = drv.activate(0.0)
    k = IDS.index(1)
    assert reading.position[k] == pytest.approx((2300 - 2048) * RAD_PER_TICK)
    s1 = emulator.servos[1]
    assert s1.get("goal_position") == 2300 and s1.get("torque_enable") == 1
    assert all(s.get("bus_watchdog") == BUS.bus_watchdog_units for s in emulator.servos.values())
    # a step toward a new command moves at most max_rate * dt, and the emulated joint follows
    target = reading.position.copy()
    target[k] += 1.0
    drv.heartbeat(0.05)
    out = drv.step(target, 0.05)
    assert out.command is not None and out.command[k] == pytest.approx(reading.position[k] + 8.0 * 0.05)
    drv.heartbeat(0.1)
    out = drv.step(target, 0.1)
    # tau = 0 servos reach the goal at once: the read after the second write sees two rate-limited steps
    assert out.position[k] == pytest.approx(reading.position[k] + 2 * 8.0 * 0.05, abs=RAD_PER_TICK)
    drv.deactivate()
    assert wait_until(lambda: all(s.get("torque_enable") == 0 for s in emulator.servos.values()))
    drv.shutdown()
    assert drv.state is DriverState.FINALIZED and not drv.bus.is_connected


def test_missing_servo_at_startup_is_named(emulator: ServoBusEmulator) -> None:
    emulator.set_silent(9)
    emulator.set_silent(14)
    drv = make_driver(emulator)
    with pytest.raises(HandDriverError) as info:
        drv.configure()
    msg = str(info.value)
    assert emulator.port in msg and "9 (lh_rf_mcp)" in msg and "14 (lh_th_mcp)" in msg
    assert info.value.servo_id == 9 and drv.state is DriverState.UNCONFIGURED
    assert not emulator.instructions(p.INST_WRITE)  # nothing was written to a half-present hand


def test_wrong_model_is_refused(emulator: ServoBusEmulator) -> None:
    emulator.servos[3].set("model_number", 1020)
    with pytest.raises(HandDriverError, match=r"id 3 is model 1020"):
        make_driver(emulator).configure()


def test_activate_needs_an_estop_heartbeat(emulator: ServoBusEmulator) -> None:
    from omnipianist.safety.filter import SafetyError

    drv = make_driver(emulator)
    drv.configure()
    with pytest.raises(SafetyError, match="heartbeat"):
        drv.activate(0.0)
    assert all(s.get("torque_enable") == 0 for s in emulator.servos.values())


def test_step_never_blocks_past_its_budget_on_a_dead_bus(emulator: ServoBusEmulator) -> None:
    drv = make_driver(emulator)
    drv.configure()
    drv.heartbeat(0.0)
    drv.activate(0.0)
    for i in IDS:
        emulator.set_silent(i)
    for k in range(1, 15):
        drv.heartbeat(k * 0.05)
        reading = drv.step(None, k * 0.05)
        assert reading.stale.all()
    assert drv.state is DriverState.FAULT  # 0.7 s of sim time without a valid read > 0.5 s
    d = drv.diagnostics()
    assert d["counters"]["read_failures"] >= 1 and d["servos"][0]["timeouts"] >= 1
    assert d["last_error"] and emulator.port in drv._where()  # noqa: SLF001


def test_calibration_records_offsets_and_directions(emulator: ServoBusEmulator, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    true_offset = {c.servo_id: float(rng.uniform(-0.2, 0.2)) for c in HAND.joints.values()}
    true_dir = {c.servo_id: (-1 if c.servo_id in (2, 13) else 1) for c in HAND.joints.values()}
    prompts = []

    def pose(zero: bool) -> None:
        for name, cal in HAND.joints.items():
            sid = cal.servo_id
            joint = 0.0 if zero else (0.5 if name != "th_cmc" else 0.05)  # th_cmc barely moves
            servo_rad = true_dir[sid] * (joint + true_offset[sid])
            emulator.physics.set_position(sid, 2048 + servo_rad / RAD_PER_TICK)

    def prompt(message: str) -> None:
        prompts.append(message)
        assert all(s.get("torque_enable") == 0 for s in emulator.servos.values())  # limp while posing
        pose(zero=len(prompts) == 1)

    out = tmp_path / "leap_left.yaml"
    bus = DynamixelBus(emulator.port, timeout_s=0.02)
    bus.connect()
    try:
        result = run_calibration(bus, HAND, out, prompt=prompt)
    finally:
        bus.disconnect(disable_torque=False)
    assert len(prompts) == 2 and "zero pose" in prompts[0]
    assert result.unchanged_direction == ("th_cmc",)
    for name, cal in result.hand.joints.items():
        sid = cal.servo_id
        if name != "th_cmc":
            assert cal.direction == true_dir[sid]
            assert cal.offset_rad == pytest.approx(true_offset[sid], abs=RAD_PER_TICK)
        assert cal.limits_rad == HAND.joints[name].limits_rad and cal.gains == HAND.joints[name].gains
    assert load_hand_config(out) == result.hand


def test_dump_hand_yaml_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "leap_left.yaml"
    path.write_text(dump_hand_yaml(HAND))
    again = load_hand_config(path)
    assert again.joints == HAND.joints and again.rail == HAND.rail and again.bus == HAND.bus


def test_calibrate_command_core(emulator: ServoBusEmulator, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    parser = argparse.ArgumentParser()
    add_calibrate_args(parser)
    out = tmp_path / "cal.yaml"
    args = parser.parse_args(["--side", "left", "--port", emulator.port, "--out", str(out)])

    def prompt(message: str) -> None:
        if "upper end" in message:
            for cal in HAND.joints.values():
                emulator.physics.set_position(cal.servo_id, 2048 + math.radians(30) / RAD_PER_TICK)

    assert run_calibrate(args, prompt=prompt) == 0
    hand = load_hand_config(out)
    assert all(c.direction == 1 and c.offset_rad == 0.0 for c in hand.joints.values())
    assert str(out) in capsys.readouterr().out


def test_keepalive_feeds_the_bus_but_leaves_the_ramp_to_the_commands(emulator: ServoBusEmulator) -> None:
    """A command-driven driver (lock-step HIL): a keep-alive between two commands re-sends the goals and runs
    the safety timers, but the next command still moves the full rate-limited step, so how many keep-alives
    the host had time for cannot change the goals."""
    drv = make_driver(emulator)
    drv.configure()
    drv.heartbeat(0.0)
    start = drv.activate(0.0).position.copy()
    k = IDS.index(1)
    target = start.copy()
    target[k] += 1.0
    drv.heartbeat(0.05)
    first = drv.step(target, 0.05).command
    assert first is not None
    time.sleep(0.05)
    writes = len(emulator.instructions(p.INST_SYNC_WRITE))
    for _ in range(3):  # the clock already shows the next step; its command has not arrived yet
        drv.keepalive(0.1)
    assert wait_until(lambda: len(emulator.instructions(p.INST_SYNC_WRITE)) == writes + 3)
    assert np.array_equal(drv.filter.last_output, first)
    second = drv.step(target, 0.1).command
    assert second is not None and second[k] == pytest.approx(first[k] + 8.0 * 0.05)
    # the timers still run: without heartbeats the e-stop latches and the keep-alive turns torque off
    drv.keepalive(10.0)
    assert drv.filter.state.value == "estop"
    assert wait_until(lambda: all(s.get("torque_enable") == 0 for s in emulator.servos.values()))
    drv.shutdown()


def test_emulator_watchdog_runs_on_its_clock_and_wait_idle_sees_pending_bytes() -> None:
    sim_now = [0.0]
    with ServoBusEmulator([1], watchdog_clock=lambda: sim_now[0]) as emu:
        bus = DynamixelBus(emu.port, BUS.baudrate, timeout_s=0.2)
        bus.connect()
        bus.write(1, "bus_watchdog", 5)  # 100 ms
        bus.write(1, "torque_enable", 1)
        time.sleep(0.3)  # wall-clock silence: the servo's clock did not move
        assert emu.watchdog_trips == 0
        sim_now[0] = 0.2  # simulated silence past the watchdog
        assert wait_until(lambda: emu.watchdog_trips == 1)
        # idle() holds only once every byte sent has been handled: a slow reply keeps it busy
        bus.write(1, "bus_watchdog", 0)
        emu.delay_next_reply(0.3)
        raw = p.encode_packet(1, p.INST_WRITE, (116).to_bytes(2, "little") + (2100).to_bytes(4, "little"))
        os.write(bus._serial.fileno(), raw)  # noqa: SLF001 - sent without waiting for the status packet
        time.sleep(0.1)
        assert not emu.idle()
        assert emu.wait_idle(2.0)
        assert emu.servos[1].get("goal_position") == 2100
        bus.disconnect(disable_torque=False)
    assert emu.error is None
