"""DynamixelBus against the servo-bus emulator over a real pty: real bytes, real timeouts, injected faults."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from omnipianist.hardware.dynamixel import protocol as p
from omnipianist.hardware.dynamixel.bus import DynamixelBus
from omnipianist.hardware.emulator import ServoBusEmulator
from omnipianist.hardware.errors import BusTimeout, CRCError, ServoError

IDS = list(range(1, 17))
TIMEOUT_S = 0.05
RETRIES = 2
BUDGET_S = (1 + RETRIES) * TIMEOUT_S


@pytest.fixture
def emulator() -> Iterator[ServoBusEmulator]:
    with ServoBusEmulator(IDS) as emu:
        yield emu
        assert emu.error is None, f"emulator thread died: {emu.error!r}"


@pytest.fixture
def bus(emulator: ServoBusEmulator) -> Iterator[DynamixelBus]:
    bus = DynamixelBus(emulator.port, 4_000_000, timeout_s=TIMEOUT_S, retries=RETRIES)
    bus.connect()
    yield bus
    bus.disconnect(disable_torque=False)


def test_ping_all_sixteen(bus: DynamixelBus, emulator: ServoBusEmulator) -> None:
    assert {i: bus.ping(i) for i in IDS} == {i: 1240 for i in IDS}
    assert [e.servo_id for e in emulator.instructions(p.INST_PING)] == IDS
    assert all(bus.stats[i].rx_ok == 1 and bus.stats[i].tx == 1 for i in IDS)


def test_sync_write_then_fast_sync_read(bus: DynamixelBus, emulator: ServoBusEmulator) -> None:
    goals = {i: 1000 + 37 * i for i in IDS}
    bus.enable_torque(IDS)
    bus.sync_write("goal_position", goals)
    assert bus.fast_sync_read("present_position", IDS) == goals
    # what reached the wire
    sync_writes = emulator.instructions(p.INST_SYNC_WRITE)
    assert len(sync_writes) == 2  # torque enable, goal position
    params = sync_writes[-1].params
    assert params[:4] == bytes([116, 0, 4, 0])
    assert params[4:] == b"".join(bytes([i]) + goals[i].to_bytes(4, "little") for i in IDS)
    (fast,) = emulator.instructions(p.INST_FAST_SYNC_READ)
    assert fast.params == bytes([132, 0, 4, 0, *IDS])


def test_fast_and_plain_sync_read_of_a_span(bus: DynamixelBus) -> None:
    bus.enable_torque(IDS)
    bus.sync_write("goal_position", {i: 2000 + i for i in IDS})
    span = ["present_current", "present_velocity", "present_position"]
    fast = bus.fast_sync_read(span, IDS)
    plain = bus.sync_read(span, IDS)
    assert fast == plain == {i: (0, 0, 2000 + i) for i in IDS}
    # a list of items is a span even of one item (a tuple per servo); an item name gives the value
    assert bus.sync_read(["present_position"], IDS) == {i: (2000 + i,) for i in IDS}
    assert bus.sync_read("present_position", IDS) == {i: 2000 + i for i in IDS}


def test_read_write_single_item(bus: DynamixelBus, emulator: ServoBusEmulator) -> None:
    bus.write(3, "goal_current", -300)
    assert bus.read(3, "goal_current") == -300
    bus.write(3, "operating_mode", 5)
    assert bus.read(3, "operating_mode") == 5
    assert emulator.servos[3].get("operating_mode") == 5
    bus.enable_torque([3])
    with pytest.raises(ServoError, match="access error") as info:  # EEPROM is locked while torque is on
        bus.write(3, "operating_mode", 3)
    assert info.value.port == emulator.port and info.value.servo_id == 3
    assert len(emulator.instructions(p.INST_WRITE)) == 3  # servo errors are not retried


def test_silent_servo_times_out_within_budget(bus: DynamixelBus, emulator: ServoBusEmulator) -> None:
    emulator.set_silent(7)
    start = time.monotonic()
    with pytest.raises(BusTimeout) as info:
        bus.read(7, "present_position")
    elapsed = time.monotonic() - start
    assert elapsed < BUDGET_S + 0.03
    assert info.value.servo_id == 7 and info.value.port == emulator.port
    assert emulator.port in str(info.value) and "servo id 7" in str(info.value)
    assert bus.stats[7].timeouts == 1 + RETRIES and bus.stats[7].last_error == "timeout"
    assert len(emulator.instructions(p.INST_READ)) == 1 + RETRIES


def test_silent_servo_in_sync_read_is_named_and_only_it_is_retried(bus: DynamixelBus, emulator: ServoBusEmulator) -> None:
    emulator.set_silent(9)
    with pytest.raises(BusTimeout, match=r"\[9\]") as info:
        bus.sync_read("present_position", IDS)
    assert info.value.servo_id == 9
    first, *retries = emulator.instructions(p.INST_SYNC_READ)
    assert list(first.params[4:]) == IDS
    assert [list(r.params[4:]) for r in retries] == [[9]] * RETRIES


def test_silent_servo_breaks_fast_sync_read(bus: DynamixelBus, emulator: ServoBusEmulator) -> None:
    emulator.set_silent(12)
    start = time.monotonic()
    with pytest.raises(BusTimeout, match="Fast Sync Read") as info:
        bus.fast_sync_read("present_position", IDS)
    assert time.monotonic() - start < BUDGET_S + 0.03
    assert info.value.port == emulator.port
    assert info.value.servo_id == 12  # the combined reply stopped at its block
    assert bus.stats[12].timeouts == 1 + RETRIES and bus.stats[11].timeouts == 0
    emulator.set_silent(12, False)
    assert len(bus.fast_sync_read("present_position", IDS)) == 16  # the truncated leftovers are skipped


def test_corrupted_crc_is_retried_then_succeeds(bus: DynamixelBus, emulator: ServoBusEmulator) -> None:
    emulator.corrupt_next_reply()
    start = time.monotonic()
    assert bus.read(4, "present_position") == 2048
    assert time.monotonic() - start < TIMEOUT_S  # retried at once, not after a timeout
    assert bus.stats[4].crc_errors == 1 and bus.stats[4].rx_ok == 1
    assert len(emulator.instructions(p.INST_READ)) == 2


def test_corrupted_fast_reply_is_retried(bus: DynamixelBus, emulator: ServoBusEmulator) -> None:
    emulator.corrupt_next_reply()
    assert bus.fast_sync_read("present_position", IDS) == {i: 2048 for i in IDS}
    assert len(emulator.instructions(p.INST_FAST_SYNC_READ)) == 2


def test_persistent_crc_errors_raise_crc_error(bus: DynamixelBus, emulator: ServoBusEmulator) -> None:
    emulator.corrupt_next_reply(count=1 + RETRIES)
    with pytest.raises(CRCError) as info:
        bus.read(2, "present_position")
    assert info.value.servo_id == 2 and info.value.port == emulator.port


def test_stray_bytes_before_a_reply_are_skipped(bus: DynamixelBus, emulator: ServoBusEmulator) -> None:
    emulator.prepend_to_next_reply(b"\x00\x13\xff\xff\xfd\x00\x05garbage\xff")
    assert bus.read(5, "model_number") == 1240
    assert len(emulator.instructions(p.INST_READ)) == 1  # no retry was needed
    assert bus.parser.stats.discarded_bytes > 0


def test_truncated_reply_is_retried(bus: DynamixelBus, emulator: ServoBusEmulator) -> None:
    emulator.truncate_next_reply()
    assert bus.ping(6) == 1240
    assert bus.stats[6].timeouts == 1  # the half packet is abandoned at the attempt's deadline
    assert len(emulator.instructions(p.INST_PING)) == 2


def test_late_reply_does_not_poison_the_next_call(bus: DynamixelBus, emulator: ServoBusEmulator) -> None:
    emulator.delay_next_reply(TIMEOUT_S * 1.5)
    assert bus.read(8, "present_position") == 2048  # second attempt gets a reply
    bus.write(8, "goal_current", 123)
    assert bus.read(8, "goal_current") == 123


def test_patient_block_waits_longer_then_restores_the_play_timing(bus: DynamixelBus, emulator: ServoBusEmulator) -> None:
    late = BUDGET_S + TIMEOUT_S  # later than every retry of the play timing allows
    emulator.delay_next_reply(late)
    with pytest.raises(BusTimeout):
        bus.read(8, "present_position")
    time.sleep(late + TIMEOUT_S)  # the late replies land and are dropped by the next call
    emulator.delay_next_reply(late)
    with bus.patient(timeout_s=2 * late, retries=4) as patient:
        assert patient.timeout_s == 2 * late and patient.retries == 4
        assert bus.read(8, "present_position") == 2048  # the first attempt's reply, late but in time
    assert bus.stats[8].timeouts == 3  # only the three play-timing attempts timed out
    assert (bus.timeout_s, bus.retries) == (TIMEOUT_S, RETRIES)
    with bus.patient(timeout_s=TIMEOUT_S / 10, retries=0):  # never shortens
        assert (bus.timeout_s, bus.retries) == (TIMEOUT_S, RETRIES)


def test_hardware_error_alert(bus: DynamixelBus, emulator: ServoBusEmulator) -> None:
    emulator.set_hardware_error(10, 0x20)  # overload
    with pytest.raises(ServoError, match="hardware alert") as info:
        bus.read(10, "present_position")
    assert info.value.error & p.ERROR_ALERT
    tolerant = DynamixelBus(emulator.port, timeout_s=TIMEOUT_S, raise_on_alert=False)
    bus.disconnect(disable_torque=False)
    tolerant.connect()
    try:
        assert tolerant.read(10, "hardware_error_status") == 0x20
        tolerant.reboot(10)
        assert tolerant.wait_for_ping(10) == 1240  # a rebooting servo is silent for a while
        assert tolerant.read(10, "hardware_error_status") == 0
        assert tolerant.stats[10].servo_errors == 2
    finally:
        tolerant.disconnect(disable_torque=False)


def test_disconnect_turns_torque_off(emulator: ServoBusEmulator) -> None:
    bus = DynamixelBus(emulator.port, timeout_s=TIMEOUT_S)
    bus.connect()
    bus.enable_torque(IDS)
    assert bus.read(1, "torque_enable") == 1
    bus.disconnect()
    assert not bus.is_connected
    time.sleep(0.02)
    assert all(emulator.servos[i].get("torque_enable") == 0 for i in IDS)
