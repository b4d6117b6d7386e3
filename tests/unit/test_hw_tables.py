"""The control tables as data: consistent layout, factory values inside their ranges, the e-manual's
facts for the XC330-M288; and a fuzz of the emulator's write check (never crashes; accepts only
writes that keep every item in range)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnipianist.hardware.dynamixel import protocol as p
from omnipianist.hardware.dynamixel import tables as t
from omnipianist.hardware.emulator import ServoBusEmulator, VirtualServo
from omnipianist.hardware.errors import ControlTableError


@pytest.mark.parametrize("number", list(t.MODELS))
def test_table_layout_is_consistent(number: int) -> None:
    table = t.MODELS[number].table
    items = sorted(table.values(), key=lambda it: it.address)
    for a, b in zip(items, items[1:], strict=False):
        assert a.end <= b.address, f"{a.name} overlaps {b.name}"
    assert items[-1].end == t.X_SERIES_TABLE_SIZE
    for it in items:
        assert it.size in (1, 2, 4) and it.eeprom == (it.address < 64)
        if it.initial is not None:
            assert it.range_problem(it.initial) is None, it.name
        if it.writable and it.bound is None:
            assert it.choices is not None or (it.lo is not None and it.hi is not None), f"{it.name} has no range"


def test_xc330_m288_facts() -> None:
    xc = t.MODELS[t.XC330_M288]
    assert xc.name == "XC330-M288" and xc.current_limit_max_ma == 2352 and xc.no_load_rpm == 81
    assert (t.item("current_limit").address, t.item("goal_position").address, t.item("bus_watchdog").address) == (38, 116, 98)
    assert not t.item("present_position").writable and t.item("present_position").access == "R"
    assert t.item("operating_mode").choices == (0, 1, 3, 4, 5, 16)
    assert t.BAUD_RATES[6] == 4_000_000 and t.baud_rate_value(57_600) == 1
    assert t.goal_position_range(3, 100, 200) == (100, 200)
    assert t.goal_position_range(4, 100, 200) == (-1_048_575, 1_048_575)
    assert t.ticks_to_rad(t.CENTER_TICKS + 1024) == pytest.approx(1.5707963, abs=1e-6)
    assert t.rad_to_ticks(-3.14159265) == 0
    assert t.XL330_TABLE["position_p_gain"].initial == 400 and t.XL330_TABLE["current_limit"].hi == 1750
    with pytest.raises(ControlTableError, match="not a Dynamixel X330 baud rate"):
        t.baud_rate_value(250_000)


_EMU = ServoBusEmulator([1], byte_timing=False)  # never started: check_write needs no pty
_REAL_ITEMS = list(t.X_SERIES.values())


@settings(max_examples=400, deadline=None)
@given(address=st.integers(0, 240), data=st.binary(min_size=0, max_size=12), torque=st.booleans(),
       mode=st.sampled_from([3, 4, 5]))
def test_write_check_never_crashes_and_accepts_only_in_range_writes(address: int, data: bytes, torque: bool,
                                                                    mode: int) -> None:
    servo: VirtualServo = _EMU.servos[1]
    servo.set("torque_enable", 0)
    servo.set("operating_mode", mode)
    servo.set("torque_enable", int(torque))
    error, why = _EMU.check_write(servo, address, data)
    assert error in (0, p.ERR_DATA_RANGE, p.ERR_DATA_LENGTH, p.ERR_ACCESS)
    assert bool(error) == bool(why)
    if error:
        return
    trial = bytearray(servo.table)
    trial[address : address + len(data)] = data
    for it in _REAL_ITEMS:
        if address <= it.address and it.end <= address + len(data):
            value = it.decode(bytes(trial[it.address : it.end]))
            assert it.writable and not (it.eeprom and torque)
            assert it.range_problem(value) is None, (it.name, value)
