"""The pty emulator answers like an XC330-M288 (e-manual): bad writes get the right error status and
change nothing, the power-on table is the factory table, and Reg Write / Action, Bulk Read / Write,
Fast Bulk Read, broadcast Write, Factory Reset, Clear and the reboot silence behave as on the servo.

Expected values are typed from the e-manual here, not read from ``tables.py``, so a wrong table fails.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from omnipianist.hardware.dynamixel import protocol as p
from omnipianist.hardware.dynamixel.bus import DynamixelBus
from omnipianist.hardware.dynamixel.tables import ControlItem
from omnipianist.hardware.emulator import ServoBusEmulator
from omnipianist.hardware.errors import BusTimeout, ServoError

IDS = [1, 2, 3]


@pytest.fixture
def emulator() -> Iterator[ServoBusEmulator]:
    with ServoBusEmulator(IDS, reboot_silence_s=0.3) as emu:
        yield emu
        assert emu.error is None, f"emulator thread died: {emu.error!r}"


@pytest.fixture
def bus(emulator: ServoBusEmulator) -> Iterator[DynamixelBus]:
    bus = DynamixelBus(emulator.port, timeout_s=0.02, retries=1)
    bus.connect()
    yield bus
    bus.disconnect(disable_torque=False)


GOAL_POSITION_2_BYTES = ControlItem("goal_position_low_half", 116, 2)
UNDEFINED_14 = ControlItem("reserved_14", 14, 1)
MODEL_NUMBER = ControlItem("model_number_rw", 0, 2)


@pytest.mark.parametrize(("item", "value", "error", "why"), [
    ("operating_mode", 2, 0x04, "not one of"),
    ("torque_enable", 2, 0x04, "outside 0 .. 1"),
    ("goal_current", 3000, 0x04, "beyond current_limit 2352"),
    ("goal_current", -2353, 0x04, "beyond current_limit"),
    ("goal_pwm", 886, 0x04, "beyond pwm_limit 885"),
    ("goal_velocity", 351, 0x04, "beyond velocity_limit 350"),
    ("goal_position", 5000, 0x04, "Min/Max Position Limit [0, 4095]"),
    ("goal_position", -1, 0x04, "Min/Max Position Limit"),
    ("baud_rate", 7, 0x04, "outside 0 .. 6"),
    ("return_delay_time", 255, 0x04, "outside 0 .. 254"),
    ("bus_watchdog", 128, 0x04, "outside 0 .. 127"),
    ("max_voltage_limit", 30, 0x04, "outside 31 .. 70"),
    ("pwm_slope", 0, 0x04, "outside 1 .. 255"),
    ("indirect_address_1", 63, 0x04, "outside 64 .. 227"),
    (GOAL_POSITION_2_BYTES, 100, 0x05, "only part of goal_position"),
    (UNDEFINED_14, 1, 0x07, "address 14 is not a control-table item"),
    (MODEL_NUMBER, 1, 0x07, "read-only"),
    ("present_position", 1, 0x07, "read-only"),
])
def test_bad_write_gets_the_servos_error_and_changes_nothing(bus: DynamixelBus, emulator: ServoBusEmulator,
                                                              item: str | ControlItem, value: int, error: int,
                                                              why: str) -> None:
    before = bytes(emulator.servos[2].table)
    with pytest.raises(ServoError) as info:
        bus.write(2, item, value)
    assert info.value.error == error and info.value.servo_id == 2
    assert bytes(emulator.servos[2].table[:120]) == before[:120]  # nothing applied (present values may refresh)
    (record,) = emulator.status_errors
    assert record.error == error and record.servo_id == 2 and why in record.detail, record.detail


def test_eeprom_is_locked_while_torque_is_on(bus: DynamixelBus, emulator: ServoBusEmulator) -> None:
    bus.write(1, "operating_mode", 5)
    bus.write(1, "torque_enable", 1)
    with pytest.raises(ServoError, match="access error"):
        bus.write(1, "operating_mode", 4)
    assert "EEPROM" in emulator.status_errors[-1].detail
    bus.write(1, "goal_position", 5000)  # current-based position mode is multi-turn: no position limits
    with pytest.raises(ServoError, match="data range"):
        bus.write(1, "goal_position", 2_000_000)  # beyond +-256 turns
    bus.write(1, "torque_enable", 0)
    bus.write(1, "operating_mode", 3)


def test_goal_limits_follow_the_configured_limits(bus: DynamixelBus, emulator: ServoBusEmulator) -> None:
    bus.write(3, "current_limit", 350)
    bus.write(3, "min_position_limit", 1000)
    bus.write(3, "max_position_limit", 3000)
    bus.write(3, "goal_current", 350)
    with pytest.raises(ServoError, match="data range"):
        bus.write(3, "goal_current", 351)
    bus.write(3, "goal_position", 3000)
    with pytest.raises(ServoError, match="data range"):
        bus.write(3, "goal_position", 999)
    assert len(emulator.status_errors) == 2


def test_sync_write_with_a_bad_value_is_refused_silently_but_recorded(bus: DynamixelBus,
                                                                      emulator: ServoBusEmulator) -> None:
    bus.sync_write("goal_current", {1: 100, 2: 5000, 3: 200})  # broadcast: no status comes back
    time.sleep(0.02)
    assert [emulator.servos[i].get("goal_current") for i in IDS] == [100, 2352, 200]
    assert [(r.servo_id, r.instruction, r.error) for r in emulator.status_errors] == [(2, p.INST_SYNC_WRITE, 0x04)]


def test_power_on_table_is_the_factory_state(bus: DynamixelBus) -> None:
    factory = {  # XC330-M288 e-manual initial values
        "model_number": 1240, "id": 2, "return_delay_time": 0, "drive_mode": 0, "operating_mode": 3,
        "secondary_id": 255, "protocol_type": 2, "homing_offset": 0, "moving_threshold": 10,
        "temperature_limit": 70, "max_voltage_limit": 70, "min_voltage_limit": 35, "pwm_limit": 885,
        "current_limit": 2352, "velocity_limit": 350, "max_position_limit": 4095, "min_position_limit": 0,
        "startup_configuration": 0, "pwm_slope": 140, "shutdown": 52, "torque_enable": 0, "led": 0,
        "status_return_level": 2, "registered_instruction": 0, "hardware_error_status": 0,
        "velocity_i_gain": 1600, "velocity_p_gain": 50, "position_d_gain": 500, "position_i_gain": 0,
        "position_p_gain": 1100, "feedforward_2nd_gain": 0, "feedforward_1st_gain": 0, "bus_watchdog": 0,
        "profile_acceleration": 0, "profile_velocity": 0, "indirect_address_1": 208, "indirect_address_20": 227,
        "indirect_data_1": 0,
    }
    got = {name: bus.read(2, name) for name in factory}
    assert got == factory
    assert bus.read(2, "baud_rate") == 6  # commissioned for the 4 Mbps line (factory 1 = 57600)
    assert bus.read(2, "goal_current") == 2352 and bus.read(2, "goal_position") == bus.read(2, "present_position")


def test_reg_write_waits_for_action(bus: DynamixelBus, emulator: ServoBusEmulator) -> None:
    bus.write(1, "torque_enable", 1)
    bus.write(2, "torque_enable", 1)
    bus.reg_write(1, "goal_position", 1500)
    bus.reg_write(2, "goal_position", 2500)
    assert bus.read(1, "registered_instruction") == 1
    assert bus.read(1, "goal_position") == 2048  # held
    with pytest.raises(ServoError, match="data range"):
        bus.reg_write(3, "goal_position", 5000)  # checked when registered
    bus.action()  # broadcast: no reply, both execute
    time.sleep(0.02)
    assert (emulator.servos[1].get("goal_position"), emulator.servos[2].get("goal_position")) == (1500, 2500)
    assert bus.fast_sync_read("present_position", [1, 2]) == {1: 1500, 2: 2500}
    assert bus.read(1, "registered_instruction") == 0


def test_bulk_read_write_and_fast_bulk_read(bus: DynamixelBus, emulator: ServoBusEmulator) -> None:
    bus.bulk_write({1: ("goal_current", 123), 2: ("position_p_gain", 900), 3: ("led", 1)})
    time.sleep(0.02)
    assert (emulator.servos[1].get("goal_current"), emulator.servos[2].get("position_p_gain"),
            emulator.servos[3].get("led")) == (123, 900, 1)
    requests = {1: "goal_current", 2: "position_p_gain", 3: ["present_current", "present_velocity", "present_position"]}
    expected = {1: 123, 2: 900, 3: (0, 0, 2048)}
    assert bus.bulk_read(requests) == expected
    assert bus.bulk_read(requests, fast=True) == expected
    assert [e.instruction for e in emulator.instructions()[-2:]] == [p.INST_BULK_READ, p.INST_FAST_BULK_READ]
    emulator.set_silent(3)
    with pytest.raises(BusTimeout) as info:
        bus.bulk_read(requests, fast=True)
    assert info.value.servo_id == 3  # the combined reply stopped at servo 3
    assert emulator.status_errors == []


def test_broadcast_write_applies_everywhere_and_returns_nothing(bus: DynamixelBus,
                                                                emulator: ServoBusEmulator) -> None:
    bus.write_broadcast("led", 1)
    time.sleep(0.03)
    assert all(s.get("led") == 1 for s in emulator.servos.values())
    assert bus._serial is not None and bus._serial.in_waiting == 0  # noqa: SLF001 - no status packets came back
    bus.write_broadcast("goal_current", 9999)  # refused by all, silently
    time.sleep(0.03)
    assert sorted(r.servo_id for r in emulator.status_errors) == IDS


def test_factory_reset_variants(bus: DynamixelBus, emulator: ServoBusEmulator) -> None:
    for i in IDS:
        bus.write(i, "position_p_gain", 700)
        bus.write(i, "return_delay_time", 3)
    bus.factory_reset(1, p.FACTORY_RESET_EXCEPT_ID_BAUD)
    assert bus.wait_for_ping(1) == 1240
    assert (bus.read(1, "position_p_gain"), bus.read(1, "return_delay_time"), bus.read(1, "baud_rate")) == (1100, 250, 6)
    bus.factory_reset(2, p.FACTORY_RESET_EXCEPT_ID)  # back to 57600: deaf on this 4 Mbps line
    with pytest.raises(BusTimeout, match="no answer to PING"):
        bus.wait_for_ping(2, 0.5)
    assert emulator.servos[2].get("baud_rate") == 1 and emulator.servos[2].get("id") == 2
    bus.factory_reset(p.BROADCAST_ID, p.FACTORY_RESET_ALL)  # ignored when broadcast
    time.sleep(0.05)
    assert bus.read(3, "position_p_gain") == 700
    bus.factory_reset(3, p.FACTORY_RESET_ALL)
    time.sleep(0.35)
    assert emulator.servos[3].get("id") == 1 and emulator.servos[3].get("baud_rate") == 1
    with pytest.raises(ServoError, match="data range"):
        bus._request(1, p.encode_packet(1, p.INST_FACTORY_RESET, b"\x07"), expect_len=0)  # noqa: SLF001


def test_reboot_is_silent_for_the_configured_time(emulator: ServoBusEmulator, bus: DynamixelBus) -> None:
    bus.write(1, "position_p_gain", 700)
    start = time.monotonic()
    bus.reboot(1)
    with pytest.raises(BusTimeout):
        bus.ping(1)
    assert bus.wait_for_ping(1, 1.0) == 1240
    waited = time.monotonic() - start
    assert 0.25 <= waited < 0.6, waited
    assert bus.read(1, "position_p_gain") == 1100  # RAM back to its power-on value
    assert bus.ping(2) == 1240  # the others never stopped


def test_default_reboot_silence_is_realistic() -> None:
    assert ServoBusEmulator([1]).reboot_silence_s == pytest.approx(0.5)


def test_clear_multi_turn(bus: DynamixelBus, emulator: ServoBusEmulator) -> None:
    bus.write(1, "operating_mode", 4)
    bus.write(1, "torque_enable", 1)
    bus.write(1, "goal_position", 3 * 4096 + 100)
    assert bus.read(1, "present_position") == 3 * 4096 + 100
    bus.clear_multi_turn(1)
    assert bus.read(1, "present_position") == 100 and bus.read(1, "goal_position") == 100
    emulator.physics.tau_s = 1.0  # now it moves slowly: a clear is refused while moving
    bus.write(1, "goal_position", 4000)
    time.sleep(0.05)
    with pytest.raises(ServoError, match="result fail"):
        bus.clear_multi_turn(1)


def test_reboot_keeps_only_the_position_within_one_turn(bus: DynamixelBus) -> None:
    bus.write(1, "operating_mode", 4)
    bus.write(1, "torque_enable", 1)
    bus.write(1, "goal_position", -2 * 4096 + 300)
    bus.reboot(1)
    bus.wait_for_ping(1)
    assert bus.read(1, "present_position") == 300  # the absolute encoder covers one turn
    bus.write(1, "homing_offset", 1000)
    assert bus.read(1, "present_position") == 1300


def test_unknown_instruction_is_an_instruction_error(bus: DynamixelBus, emulator: ServoBusEmulator) -> None:
    with pytest.raises(ServoError, match="instruction error"):
        bus._request(1, p.encode_packet(1, 0x20), expect_len=0)  # noqa: SLF001 - Control Table Backup
    assert emulator.status_errors[-1].error == 0x02


def test_random_instructions_never_kill_the_emulator(emulator: ServoBusEmulator, bus: DynamixelBus) -> None:
    import random

    rng = random.Random(7)
    instructions = [p.INST_READ, p.INST_WRITE, p.INST_REG_WRITE, p.INST_ACTION, p.INST_CLEAR, p.INST_SYNC_READ,
                    p.INST_SYNC_WRITE, p.INST_FAST_SYNC_READ, p.INST_BULK_READ, p.INST_BULK_WRITE,
                    p.INST_FAST_BULK_READ, 0x20, 0x77]  # no REBOOT / FACTORY_RESET: the servos must stay
    assert bus._serial is not None  # noqa: SLF001
    for _ in range(400):
        servo_id = rng.choice([1, 2, 3, 9, p.BROADCAST_ID])
        params = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 24)))
        bus._serial.write(p.encode_packet(servo_id, rng.choice(instructions), params))  # noqa: SLF001
        time.sleep(0.0005)
    time.sleep(0.1)
    assert emulator.error is None
    for i in IDS:  # still answering, every error it sent was one of the servo's error numbers
        assert bus.wait_for_ping(i, 0.5) == 1240
    assert {r.error for r in emulator.status_errors} <= {0x01, 0x02, 0x04, 0x05, 0x07}
