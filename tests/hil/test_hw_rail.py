"""The forearm rails as Dynamixel channels of the hand driver, and the driver across servo reboots.

LEAP hand files (``rail.driver: dynamixel``: servos 16, 17 in Extended Position mode). The emulated
rail servos power up knowing their position only within one turn, as a real X330 does, so the driver
must home them; a reboot drops the turn count again and the driver must keep the homed frame.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from omnipianist.hardware.calibration import dump_hand_yaml
from omnipianist.hardware.channels import channels_from_hand
from omnipianist.hardware.config import HARDWARE_CONFIG_DIR, load_bus_config, load_hand_config, load_safety_config
from omnipianist.hardware.driver import DriverState, HandDriver
from omnipianist.hardware.dynamixel import protocol as p
from omnipianist.hardware.emulator import ServoBusEmulator
from omnipianist.hardware.hil import HilConfig, HilRig, PriorPolicy
from omnipianist.safety.filter import SafetyError

HAND = load_hand_config(HARDWARE_CONFIG_DIR / "leap_left.yaml")
BUS = load_bus_config(HARDWARE_CONFIG_DIR / "bus.yaml")["left"]
SAFETY = load_safety_config(HARDWARE_CONFIG_DIR / "safety.yaml")
CHANNELS = channels_from_hand(HAND, SAFETY)
IDS = [c.servo_id for c in CHANNELS]
TX, TY = 16, 17
TX_K = IDS.index(TX)
M_PER_TICK = 0.8 / 4096
START_TICKS = 2048 + 2 * 4096 + 500  # the carriage's shaft is two and a bit turns from the servo's zero


@pytest.fixture
def emulator() -> Iterator[ServoBusEmulator]:
    emu = ServoBusEmulator(sorted(IDS))
    emu.physics.set_position(TX, START_TICKS)
    with emu:
        yield emu
        assert emu.error is None
        assert emu.status_error_summary() == []  # the driver never made a servo refuse an instruction


def active_driver(emu: ServoBusEmulator, **kwargs: object) -> HandDriver:
    drv = HandDriver(CHANNELS, BUS, SAFETY, port=emu.port, name="left", **kwargs)  # type: ignore[arg-type]
    drv.configure()
    drv.heartbeat(0.0)
    drv.activate(0.0)
    return drv


def run(drv: HandDriver, command: np.ndarray, start_s: float, steps: int) -> float:
    now = start_s
    for _ in range(steps):
        now += drv.period_s
        drv.heartbeat(now)
        drv.step(command, now)
    return now


def test_rail_channels_follow_the_hand_file() -> None:
    tx = CHANNELS[TX_K]
    assert tx.name == "lh_forearm_tx" and tx.extended and tx.home == 0.0 and tx.unit == "m"
    assert tx.unit_per_tick == pytest.approx(M_PER_TICK)  # metres_per_rev / 4096
    assert (tx.margin, tx.max_rate) == (SAFETY.rail_margin_m, SAFETY.rail_max_speed_m_s)


def test_rail_is_homed_at_startup_and_moves_in_metres(emulator: ServoBusEmulator) -> None:
    assert emulator.servos[TX].get("present_position") == 500 + 2048  # power-on: within one turn
    drv = active_driver(emulator)
    s = emulator.servos[TX]
    assert s.get("operating_mode") == 4 and s.get("torque_enable") == 1
    reading = drv._reading(0.0, None)  # noqa: SLF001
    assert reading.position[TX_K] == pytest.approx(0.0)  # homed: the startup position reads home_m
    command = reading.position.copy()
    command[TX_K] = -0.2
    run(drv, command, 0.0, 20)  # 1 s at 1 m/s: well past the 0.2 m
    out = drv.step(command, 1.05)
    assert out.position[TX_K] == pytest.approx(-0.2, abs=M_PER_TICK)
    moved = emulator.physics._pos[TX] - START_TICKS  # noqa: SLF001 - the shaft, in ticks
    assert moved == pytest.approx(-0.2 / M_PER_TICK, abs=1)
    command[TX_K] = -1.0  # beyond the rail's limit (-0.36): the soft limit holds it at -0.355
    run(drv, command, 1.05, 20)
    assert drv._pos[TX_K] == pytest.approx(-0.36 + SAFETY.rail_margin_m, abs=M_PER_TICK)  # noqa: SLF001
    assert drv.counters.goals_clipped == 0 and drv.state is DriverState.ACTIVE


def test_rail_reboot_keeps_the_homed_frame(emulator: ServoBusEmulator) -> None:
    drv = active_driver(emulator)
    command = drv._reading(0.0, None).position.copy()  # noqa: SLF001
    command[TX_K] = 0.08
    now = run(drv, command, 0.0, 10)
    emulator.set_hardware_error(TX, 0x20)
    now = run(drv, command, now, 3)
    assert drv.counters.reboots == 1 and drv.counters.restores == 1
    assert drv.state is DriverState.ACTIVE and emulator.servos[TX].get("torque_enable") == 1
    assert drv._pos[TX_K] == pytest.approx(0.08, abs=2 * M_PER_TICK)  # noqa: SLF001 - same frame after the reboot
    command[TX_K] = -0.1
    run(drv, command, now, 10)
    assert emulator.physics._pos[TX] - START_TICKS == pytest.approx(-0.1 / M_PER_TICK, abs=1)  # noqa: SLF001


def test_rail_not_at_its_mark_is_refused(emulator: ServoBusEmulator) -> None:
    drv = HandDriver(CHANNELS, BUS, SAFETY, port=emulator.port, name="left")
    drv.configure()
    emulator.physics.set_position(TX, START_TICKS + 0.5 / M_PER_TICK)  # pushed 0.5 m after homing
    drv.heartbeat(0.0)
    with pytest.raises(SafetyError, match="lh_forearm_tx.*outside its limits"):
        drv.activate(0.0)
    assert all(s.get("torque_enable") == 0 for s in emulator.servos.values())


def test_driver_waits_out_the_reboot_silence(emulator: ServoBusEmulator) -> None:
    assert emulator.reboot_silence_s == pytest.approx(0.5)
    drv = active_driver(emulator)
    command = drv._reading(0.0, None).position.copy()  # noqa: SLF001
    now = run(drv, command, 0.0, 2)
    emulator.set_hardware_error(5, 0x20)
    start = time.monotonic()
    now = run(drv, command, now, 2)
    assert time.monotonic() - start >= 0.45  # the restore waited for the rebooted servo
    assert drv.counters.restores == 1 and drv.health[5].reboots == 1
    assert emulator.servos[5].get("position_p_gain") == HAND.joints["mf_mcp"].gains.p
    assert emulator.servos[5].get("torque_enable") == 1 and drv.state is DriverState.ACTIVE
    reboot = emulator.instructions(p.INST_REBOOT)[0].time_s
    late = [e for e in emulator.instructions() if e.time_s > reboot and e.servo_id == 5 and e.instruction != p.INST_PING]
    assert late and late[0].time_s - reboot >= 0.45  # nothing but pings until it answered
    run(drv, command, now, 5)
    assert not any(h.stale for h in drv.health.values())


def _direct_rail_files(tmp_path: Path) -> dict[str, Path]:
    """The LEAP hand files with ``rail.driver: tbd`` (the rig then commands the slides straight into MuJoCo)."""
    out = {}
    for side in ("left", "right"):
        hand = load_hand_config(HARDWARE_CONFIG_DIR / f"leap_{side}.yaml")
        slides = {n: replace(sl, servo=None) for n, sl in hand.rail.slides.items()}
        path = tmp_path / f"leap_{side}.yaml"
        path.write_text(dump_hand_yaml(replace(hand, rail=replace(hand.rail, driver="tbd", slides=slides))))
        out[side] = path
    return out


def test_leap_hil_play_drives_the_rails_through_the_bus(tmp_path: Path) -> None:
    rig = HilRig("c_major_scale", HilConfig(embodiment="leap", timeout_scale=5.0))
    try:
        rig.start()
        assert rig._direct.size == 0  # noqa: SLF001 - every actuator, rails included, is on a servo
        result = rig.play(PriorPolicy(rig.scene))
        for side, prefix in (("left", "lh_"), ("right", "rh_")):
            drv = rig.drivers[side]
            k = drv.names.index(prefix + "forearm_tx")
            emu = rig.emulators[side]
            assert emu.servos[drv.channels[k].servo_id].get("operating_mode") == 4
            assert len([e for e in emu.instructions(p.INST_SYNC_WRITE) if e.params[:2] == bytes([116, 0])]) >= 150
            joint = rig.env.model.joint(prefix + "forearm_tx")
            assert drv._pos[k] == pytest.approx(float(rig.env.data.qpos[joint.qposadr[0]]), abs=0.005)  # noqa: SLF001
            assert drv.state is DriverState.ACTIVE
    finally:
        rig.close()
    assert result.status_errors == [] and result.out_of_limits == [] and result.emulator_errors == []
    direct = HilRig("c_major_scale", HilConfig(embodiment="leap", hand_files=_direct_rail_files(tmp_path), timeout_scale=5.0))
    try:
        assert direct._direct.size == 4  # noqa: SLF001 - two slides per hand, commanded straight
        reference = direct.play(PriorPolicy(direct.scene)).metrics["f1"]
    finally:
        direct.close()
    # The servo path (the servo's speed limit and profile velocity, one cycle of latency, tick
    # resolution) costs F1: measured 0.673 through the bus vs 0.823 with the slides commanded straight
    # (today's prior, which moves the carriages more and relies on placing them precisely; with the
    # first prior both were 0.43-0.44). Bounded here so that a larger loss fails; the gap is open work.
    assert result.metrics["f1"] >= reference - 0.2, (result.metrics["f1"], reference)


def test_configure_waits_for_servos_still_booting(emulator: ServoBusEmulator) -> None:
    booting_until = time.monotonic() + 0.3  # just powered: silent for a few hundred ms
    for i in (3, 16):
        emulator.servos[i].silent_until = booting_until
    drv = HandDriver(CHANNELS, BUS, SAFETY, port=emulator.port, name="left")
    drv.configure()
    assert drv.state is DriverState.INACTIVE and time.monotonic() >= booting_until
    assert emulator.servos[16].get("operating_mode") == 4
