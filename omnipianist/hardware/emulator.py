"""A Dynamixel Protocol 2.0 servo-bus emulator on a pseudo-terminal that behaves like an XC330-M288.

``ServoBusEmulator`` opens a pty pair (raw mode), serves N virtual servos from a thread on the master
side, and exposes the slave's device name as :attr:`ServoBusEmulator.port` for :class:`DynamixelBus` to
open. Every instruction is logged (:attr:`ServoBusEmulator.log`).

Instructions: PING, READ, WRITE, REG_WRITE / ACTION, FACTORY_RESET (0xFF / 0x01 / 0x02), REBOOT,
CLEAR (multi-turn), SYNC_READ, SYNC_WRITE, FAST_SYNC_READ, BULK_READ, BULK_WRITE, FAST_BULK_READ, and
the broadcast id (0xFE) for WRITE, REG_WRITE, ACTION, REBOOT, FACTORY_RESET (not 0xFF) and CLEAR (no
status is returned to a broadcast; PING answers from every servo). Anything else gets Instruction Error.

Control-table rules, all from :mod:`~omnipianist.hardware.dynamixel.tables` (the e-manual as data):

* power-on state = the factory table (initial values of every item, XC330-M288 gains), except what a
  commissioned LEAP servo has: its ID, the Baud Rate of the emulated line, and ``return_delay_time``;
* a WRITE (also REG_WRITE, SYNC/BULK WRITE) is refused, nothing applied, with status
  Access Error 0x07 (an undefined address, a read-only item, an EEPROM item while Torque Enable is 1,
  torque on while a hardware error is latched), Data Length Error 0x05 (the write covers part of an item,
  or no data), Data Range Error 0x04 (a value outside the item's range or choices; a Goal PWM / Current /
  Velocity beyond PWM / Current / Velocity Limit; a Goal Position outside Min/Max Position Limit in
  Position mode or beyond +-256 rev in the multi-turn modes; a goal while the Bus Watchdog is tripped);
* every refused instruction, answered or not (a broadcast is never answered), is recorded in
  :attr:`ServoBusEmulator.status_errors` so that a test can assert a driver caused none;
* REBOOT and FACTORY_RESET answer, then the servo is silent for ``reboot_silence_s`` (default 0.5 s;
  a real X330 takes a few hundred ms to boot); a servo whose Baud Rate register no longer matches the
  line (after a factory reset to 57600) never answers again;
* Present Position = physics position + Homing Offset + the multi-turn count; a reboot (or power-on)
  keeps only the position within one turn (the absolute encoder), CLEAR does the same while standing still.

Physics is pluggable: ``on_goal(id, goal_ticks)`` is called on every accepted Goal Position write and
``present(id) -> (position_ticks, velocity_units, current_units)`` is asked before every read of the
present-state items. The default (:class:`FirstOrderServo`) moves present toward goal while torque is on.
Ticks handed to the physics exclude the Homing Offset and the multi-turn count (the raw shaft).

Fault injection (applied to the next reply packets, optionally only those of one servo):
:meth:`~ServoBusEmulator.corrupt_next_reply`, :meth:`~ServoBusEmulator.truncate_next_reply`,
:meth:`~ServoBusEmulator.prepend_to_next_reply`, :meth:`~ServoBusEmulator.delay_next_reply`, plus the
persistent :meth:`~ServoBusEmulator.set_silent` and :meth:`~ServoBusEmulator.set_hardware_error`,
:meth:`~ServoBusEmulator.trip_bus_watchdog`, and :meth:`~ServoBusEmulator.unplug` /
:meth:`~ServoBusEmulator.replug` (the port's device node disappears and comes back, like a USB adapter).

Timing: with ``byte_timing`` (default on) every packet costs its wire time at ``baudrate`` (10 bits per
byte, 8N1): an instruction is handled only once its last byte would have arrived, and a reply leaves
after the Return Delay Time plus its own wire time. The Bus Watchdog (address 98) is emulated: a
servo with torque on and a non-zero watchdog that hears no instruction for ``units x 20 ms`` stops
(goal := present), reads 255 in address 98 and refuses goal writes (data range error) until the host
writes 0 there (e-manual, Bus Watchdog). The watchdog's silence is measured on ``watchdog_clock``
(default ``time.monotonic``; a lock-step simulation passes its simulated time, so a host that is slow
on the wall clock but sends every step's goals does not trip it).

:meth:`~ServoBusEmulator.wait_idle` waits until every byte the host has written has been handled (a
lock-step simulation steps only then: the goals of this step are applied even when the host's read of
the replies timed out).

Not emulated: Indirect Data writes (they land in the data bytes, not at the mapped address; reads are
mapped), Control Table Backup, the Shutdown conditions (hardware errors are injected), and the motor's
own speed limits (the physics decides how fast a goal is reached).

:attr:`ServoBusEmulator.port` is a symlink in a private temporary folder that points at the current pty
slave (a stable name, like the udev symlink ``/dev/omnipianist_left``), so an unplugged and replugged
emulator is reopened under the same name.
"""

from __future__ import annotations

import fcntl
import functools
import math
import os
import select
import shutil
import sys
import tempfile
import termios
import threading
import time
import tty
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from omnipianist.hardware.dynamixel import protocol as p
from omnipianist.hardware.dynamixel import tables as t
from omnipianist.hardware.dynamixel.tables import BUS_WATCHDOG_TRIPPED

OnGoal = Callable[[int, int], None]
OnTorque = Callable[[int, bool], None]
PresentProvider = Callable[[int], tuple[int, int, int]]

ERR_RESULT_FAIL = p.ERR_RESULT_FAIL
ERR_INSTRUCTION = p.ERR_INSTRUCTION
ERR_DATA_RANGE = p.ERR_DATA_RANGE
ERR_DATA_LENGTH = p.ERR_DATA_LENGTH
ERR_ACCESS = p.ERR_ACCESS

FIRMWARE_VERSION = 52
"""Firmware version the virtual servos report (Fast Sync Read needs >= 46 on X330)."""
REBOOT_SILENCE_S = 0.5
"""Default time a servo stays silent after REBOOT / FACTORY_RESET [s]."""
POWER_ON_VOLTAGE = 50
"""Present Input Voltage the virtual servos read [0.1 V] (5.0 V supply)."""
POWER_ON_TEMPERATURE = 30
"""Present Temperature the virtual servos read [degC]."""
_GOAL_ITEMS = ("goal_pwm", "goal_current", "goal_velocity", "goal_position")
_PRESENT_START, _PRESENT_END = 120, 147
"""Addresses whose reads need a fresh present state (realtime tick .. present temperature)."""
_INDIRECT_DATA = range(208, 228)

__all__ = [
    "BUS_WATCHDOG_TRIPPED",
    "FIRMWARE_VERSION",
    "REBOOT_SILENCE_S",
    "FirstOrderServo",
    "LoggedInstruction",
    "ServoBusEmulator",
    "StatusErrorRecord",
    "VirtualServo",
]


@dataclass(frozen=True)
class LoggedInstruction:
    """One instruction packet as the emulator received it.

    Attributes:
        time_s: ``time.monotonic()`` at reception [s].
        servo_id: packet ID (0xFE for broadcasts).
        instruction: INST byte.
        params: unstuffed parameters.
        raw: the bytes on the wire.
    """

    time_s: float
    servo_id: int
    instruction: int
    params: bytes
    raw: bytes

    @property
    def name(self) -> str:
        return p.INSTRUCTION_NAMES.get(self.instruction, f"0x{self.instruction:02X}")


@dataclass(frozen=True)
class StatusErrorRecord:
    """An instruction a virtual servo refused (whether or not a status packet carried the error).

    Attributes:
        time_s: ``time.monotonic()`` [s].
        servo_id: the servo.
        instruction: the instruction it refused.
        error: the status error number (0x04 data range, 0x05 data length, 0x07 access, ...).
        detail: why, in words (``goal_current = 3000 is beyond current_limit 2352``).
    """

    time_s: float
    servo_id: int
    instruction: int
    error: int
    detail: str

    def __str__(self) -> str:
        name = p.INSTRUCTION_NAMES.get(self.instruction, f"0x{self.instruction:02X}")
        what = p.describe_status_error(self.error)
        return f"servo id {self.servo_id}: {name} refused with 0x{self.error:02X} ({what}): {self.detail}"


@dataclass
class VirtualServo:
    """State of one emulated servo: control-table bytes and emulator flags.

    Attributes:
        servo_id: the id it was created with (the key in ``ServoBusEmulator.servos``); the id it answers
            to is its ID register (address 7).
        model_number: Model Number it reports.
        table: the control-table bytes.
        silent: ignores everything (unplugged) until cleared.
        silent_until: ``time.monotonic()`` until which it is booting (after REBOOT / FACTORY_RESET).
        turns_ticks: the multi-turn count [ticks, a multiple of 4096] added to the raw shaft position.
        registered: the REG_WRITE waiting for an ACTION, ``(address, data)``.
        ram_defaults: RAM area (address 64 on) as at power-on; restored by REBOOT.
    """

    servo_id: int
    model_number: int = t.XC330_M288
    table: bytearray = field(default_factory=lambda: bytearray(t.X_SERIES_TABLE_SIZE))
    silent: bool = False
    silent_until: float = 0.0
    turns_ticks: int = 0
    registered: tuple[int, bytes] | None = None
    ram_defaults: bytes = b""

    @property
    def items(self) -> dict[str, t.ControlItem]:
        return t.MODELS[self.model_number].table if self.model_number in t.MODELS else t.X_SERIES

    def get(self, name: str) -> int:
        it = self.items[name]
        return it.decode(bytes(self.table[it.address : it.end]))

    def set(self, name: str, value: int) -> None:
        it = self.items[name]
        self.table[it.address : it.end] = it.encode(value)

    def factory(self, *, keep: Iterable[str] = ()) -> None:
        """Every item with an initial value back to it (EEPROM and RAM), except those in ``keep``."""
        kept = {name: self.get(name) for name in keep}
        for it in self.items.values():
            if it.initial is not None:
                self.table[it.address : it.end] = it.encode(it.initial)
        self.set("model_number", self.model_number)
        self.set("firmware_version", FIRMWARE_VERSION)
        for name, value in kept.items():
            self.set(name, value)
        self.set("goal_pwm", self.get("pwm_limit"))
        self.set("goal_current", self.get("current_limit"))
        self.set("present_input_voltage", POWER_ON_VOLTAGE)
        self.set("present_temperature", POWER_ON_TEMPERATURE)
        self.registered = None
        self.ram_defaults = bytes(self.table[t.EEPROM_END :])

    @property
    def offset_ticks(self) -> int:
        """Present Position minus the raw shaft position: Homing Offset + multi-turn count."""
        return self.get("homing_offset") + self.turns_ticks

    def reset_ram(self) -> None:
        """RAM defaults after power-on or reboot (torque off, errors cleared, gains and watchdog back to
        their power-on values, goal = present)."""
        present = bytes(self.table[_PRESENT_START:_PRESENT_END])
        if self.ram_defaults:
            self.table[t.EEPROM_END :] = self.ram_defaults
        self.table[_PRESENT_START:_PRESENT_END] = present
        self.set("torque_enable", 0)
        self.set("hardware_error_status", 0)
        self.set("registered_instruction", 0)
        self.registered = None
        self.set("goal_position", self.get("present_position"))


class FirstOrderServo:
    """Default physics: present position approaches goal with time constant ``tau_s`` while torque is on.

    ``tau_s = 0`` makes present equal goal at once (what the round-trip tests want). Velocity is the
    finite difference [0.229 rpm units]; current is proportional to the remaining error [units].
    """

    def set_position(self, servo_id: int, ticks: float) -> None:
        """Move the horn by hand (a limp joint pushed by the user, in calibration tests)."""
        self._advance(servo_id)
        self._pos[servo_id] = float(ticks)
        if not self._torque.get(servo_id, False):
            self._goal[servo_id] = float(ticks)

    def __init__(self, tau_s: float = 0.0, start_ticks: int = t.CENTER_TICKS, amps_per_tick: float = 0.5) -> None:
        self.tau_s = tau_s
        self.start_ticks = start_ticks
        self.amps_per_tick = amps_per_tick
        self._torque: dict[int, bool] = {}
        self._goal: dict[int, float] = {}
        self._pos: dict[int, float] = {}
        self._vel: dict[int, float] = {}
        self._stamp: dict[int, float] = {}

    def on_goal(self, servo_id: int, goal_ticks: int) -> None:
        self._advance(servo_id)
        self._goal[servo_id] = float(goal_ticks)

    def on_torque(self, servo_id: int, enabled: bool) -> None:
        self._advance(servo_id)
        self._torque[servo_id] = enabled

    def present(self, servo_id: int) -> tuple[int, int, int]:
        self._advance(servo_id)
        pos = self._pos.get(servo_id, float(self.start_ticks))
        err = self._goal.get(servo_id, pos) - pos
        return round(pos), round(self._vel.get(servo_id, 0.0)), round(err * self.amps_per_tick)

    def _advance(self, servo_id: int) -> None:
        now = time.monotonic()
        dt = now - self._stamp.get(servo_id, now)
        self._stamp[servo_id] = now
        pos = self._pos.get(servo_id, float(self.start_ticks))
        goal = self._goal.get(servo_id, pos)
        if not self._torque.get(servo_id, False):
            self._vel[servo_id] = 0.0
            self._pos[servo_id] = pos
            return
        if self.tau_s <= 0:
            self._vel[servo_id] = 0.0  # an instant jump has no meaningful velocity
            self._pos[servo_id] = goal
            return
        new = goal + (pos - goal) * math.exp(-dt / self.tau_s)
        ticks_per_unit = t.VELOCITY_RPM_PER_UNIT * t.TICKS_PER_REV / 60.0  # ticks/s per velocity unit
        vel = (new - pos) / dt / ticks_per_unit if dt > 0 else 0.0
        self._vel[servo_id] = max(-(2**31), min(2**31 - 1, vel))
        self._pos[servo_id] = new


@dataclass
class _ReplyFault:
    kind: str  # "corrupt" | "truncate" | "prepend" | "delay"
    remaining: int
    servo_id: int | None
    value: float | bytes | int | None = None


class ServoBusEmulator:
    """N virtual Dynamixel servos behind a pty (see module docstring).

    Args:
        ids: servo ids to emulate (default 1..16, one LEAP Hand).
        model_number: model every servo reports (default XC330-M288); its table gives the factory state.
        on_goal: called ``(id, goal_ticks)`` on each Goal Position write made while torque is on, and
            with the stored goal when torque turns on; default :class:`FirstOrderServo`.
        present: returns ``(position_ticks, velocity_units, current_units)``; default ditto.
        on_torque: called ``(id, enabled)`` when Torque Enable changes; default ditto.
        return_delay_time: initial Return Delay Time [2 us units] (factory 250; the project sets 0).
        baudrate: line rate [bit/s] used for the per-byte timing; the servos' Baud Rate register says it.
        byte_timing: charge every packet its wire time (see the module docstring).
        reboot_silence_s: how long a servo stays silent after REBOOT / FACTORY_RESET [s].
        watchdog_clock: the clock [s] the Bus Watchdog measures silence on (default ``time.monotonic``).
    """

    def __init__(
        self,
        ids: Iterable[int] = range(1, 17),
        model_number: int = t.XC330_M288,
        *,
        on_goal: OnGoal | None = None,
        present: PresentProvider | None = None,
        on_torque: OnTorque | None = None,
        return_delay_time: int = 0,
        baudrate: int = 4_000_000,
        byte_timing: bool = True,
        reboot_silence_s: float = REBOOT_SILENCE_S,
        watchdog_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.watchdog_clock = watchdog_clock
        self.baudrate = baudrate
        self.byte_timing = byte_timing
        self.reboot_silence_s = reboot_silence_s
        self._line_baud = next((v for v, rate in t.BAUD_RATES.items() if rate == baudrate), None)
        self.physics = FirstOrderServo()
        self.on_goal: OnGoal = on_goal or self.physics.on_goal
        self.present: PresentProvider = present or self.physics.present
        self.on_torque: OnTorque = on_torque or self.physics.on_torque
        self.servos: dict[int, VirtualServo] = {}
        for servo_id in ids:
            servo = VirtualServo(servo_id, model_number)
            servo.factory()
            servo.set("id", servo_id)  # commissioned: its own id, the line's baud rate, the delay asked for
            if self._line_baud is not None:
                servo.set("baud_rate", self._line_baud)
            servo.set("return_delay_time", return_delay_time)
            servo.set("present_position", t.CENTER_TICKS)
            servo.set("goal_position", t.CENTER_TICKS)
            servo.ram_defaults = bytes(servo.table[t.EEPROM_END :])
            self.servos[servo_id] = servo
        self.log: list[LoggedInstruction] = []
        self.status_errors: list[StatusErrorRecord] = []
        """Every instruction a servo refused (see :class:`StatusErrorRecord`); a correct driver causes none."""
        self.parser = p.PacketParser()
        self._faults: list[_ReplyFault] = []
        self._lock = threading.Lock()
        self._master: int | None = None
        self._slave: int | None = None
        self._wake_r: int | None = None
        self._wake_w: int | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.port = ""
        self.device = ""
        """The current pty slave behind :attr:`port` (changes at each replug)."""
        self.error: BaseException | None = None
        self.plugged = False
        self._dir: str | None = None
        self._last_rx_s = watchdog_clock()
        self._busy = False
        """Set from before the thread reads the pty until what it read has been handled (see wait_idle)."""
        self._requests: list[tuple[str, threading.Event]] = []
        self.watchdog_trips = 0
        """Servo watchdog trips so far (one per servo per trip)."""

    def status_error_summary(self) -> list[str]:
        """The refused instructions so far, one line each (empty: the driver caused no error status)."""
        with self._lock:
            return [str(r) for r in self.status_errors]

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> ServoBusEmulator:
        """Open the pty and start serving; :attr:`port` is then the device to open."""
        if self._thread is not None:
            return self
        for servo in self.servos.values():  # power-on: the multi-turn count starts within one turn
            self._wrap_turns(servo)
            self._refresh_present(servo)
            servo.set("goal_position", servo.get("present_position"))
            servo.ram_defaults = bytes(servo.table[t.EEPROM_END :])
        self._dir = tempfile.mkdtemp(prefix="omnipianist-emu-")
        self.port = os.path.join(self._dir, "ttyDXL")
        self._open_pty()
        self._wake_r, self._wake_w = os.pipe()
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name=f"servo-emulator {self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and close the pty."""
        if self._thread is None:
            return
        self._stop.set()
        assert self._wake_w is not None
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=2.0)
        self._thread = None
        self._close_pty()
        for fd in (self._wake_r, self._wake_w):
            if fd is not None:
                os.close(fd)
        self._wake_r = self._wake_w = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)  # no echo, no CR/LF translation, 8-bit clean
        self._master, self._slave = master, slave
        self.device = os.ttyname(slave)
        tmp = self.port + ".new"
        os.symlink(self.device, tmp)
        os.replace(tmp, self.port)
        self.parser.reset()
        self.plugged = True

    def _close_pty(self) -> None:
        if os.path.lexists(self.port):
            os.unlink(self.port)
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None
        self.plugged = False

    def unplug(self) -> None:
        """The adapter disappears: the pty closes (the host's reads and writes fail) and :attr:`port` is
        gone. The servos keep power and state (their bus watchdogs trip if armed)."""
        self._request("unplug")

    def replug(self) -> None:
        """The adapter comes back under the same :attr:`port` name (a new pty behind it)."""
        self._request("replug")

    def _request(self, what: str) -> None:
        done = threading.Event()
        with self._lock:
            self._requests.append((what, done))
        assert self._wake_w is not None
        os.write(self._wake_w, b"r")
        if not done.wait(timeout=2.0):
            raise RuntimeError(f"servo emulator {self.port}: {what} request not served")

    def __enter__(self) -> ServoBusEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- fault injection --------------------------------------------------------------------------

    def corrupt_next_reply(self, count: int = 1, servo_id: int | None = None) -> None:
        """Flip the CRC of the next ``count`` reply packets (of ``servo_id`` only, if given)."""
        self._add_fault(_ReplyFault("corrupt", count, servo_id))

    def truncate_next_reply(self, count: int = 1, servo_id: int | None = None, keep_bytes: int | None = None) -> None:
        """Send only the first ``keep_bytes`` (default: half) of the next ``count`` reply packets."""
        self._add_fault(_ReplyFault("truncate", count, servo_id, keep_bytes))

    def prepend_to_next_reply(self, garbage: bytes, count: int = 1, servo_id: int | None = None) -> None:
        """Send ``garbage`` right before the next ``count`` reply packets."""
        self._add_fault(_ReplyFault("prepend", count, servo_id, bytes(garbage)))

    def delay_next_reply(self, seconds: float, count: int = 1, servo_id: int | None = None) -> None:
        """Hold the next ``count`` reply packets for ``seconds`` [s] before sending."""
        self._add_fault(_ReplyFault("delay", count, servo_id, float(seconds)))

    def clear_faults(self) -> None:
        """Drop all pending one-shot reply faults."""
        with self._lock:
            self._faults.clear()

    def set_silent(self, servo_id: int, silent: bool = True) -> None:
        """Make a servo ignore everything (as if unplugged); in a Fast Sync Read the chain stops there."""
        with self._lock:
            self.servos[servo_id].silent = silent

    def trip_bus_watchdog(self, ids: Iterable[int] | None = None) -> None:
        """Trip the Bus Watchdog of ``ids`` (default: every servo with torque on and a watchdog armed)
        now, as if the host had been silent too long."""
        with self._lock:
            targets = list(ids) if ids is not None else [
                i for i, s in self.servos.items() if s.get("torque_enable") and 0 < s.get("bus_watchdog") < 128
            ]
            for servo_id in targets:
                self._trip(self.servos[servo_id])

    def _trip(self, servo: VirtualServo) -> None:
        if servo.get("bus_watchdog") == BUS_WATCHDOG_TRIPPED:
            return
        self.watchdog_trips += 1
        servo.set("bus_watchdog", BUS_WATCHDOG_TRIPPED)
        self._refresh_present(servo)
        servo.set("goal_position", servo.get("present_position"))
        if servo.get("torque_enable"):
            self._goal_to_physics(servo)

    def _check_watchdogs(self, now: float) -> None:
        silent_s = now - self._last_rx_s
        with self._lock:
            for servo in self.servos.values():
                units = servo.get("bus_watchdog")
                if 0 < units < 128 and servo.get("torque_enable") and silent_s > units * t.BUS_WATCHDOG_MS_PER_UNIT * 1e-3:
                    self._trip(servo)

    def set_hardware_error(self, servo_id: int, bits: int) -> None:
        """Latch Hardware Error Status bits (see tables.HARDWARE_ERROR_BITS); non-zero turns torque off
        and sets the alert bit (0x80) in every status packet until a REBOOT."""
        with self._lock:
            servo = self.servos[servo_id]
            servo.set("hardware_error_status", bits)
            if bits and servo.get("torque_enable"):
                servo.set("torque_enable", 0)
                self.on_torque(servo_id, False)

    def _add_fault(self, fault: _ReplyFault) -> None:
        with self._lock:
            self._faults.append(fault)

    # --- instructions seen ------------------------------------------------------------------------

    def instructions(self, instruction: int | None = None) -> list[LoggedInstruction]:
        """Snapshot of the log, optionally only one instruction type."""
        with self._lock:
            return [e for e in self.log if instruction is None or e.instruction == instruction]

    # --- serving ----------------------------------------------------------------------------------

    def _serve(self) -> None:
        assert self._wake_r is not None
        try:
            while not self._stop.is_set():
                fds = [self._wake_r] + ([self._master] if self._master is not None else [])
                ready, _, _ = select.select(fds, [], [], 0.005)
                self._check_watchdogs(self.watchdog_clock())
                if self._wake_r in ready:
                    os.read(self._wake_r, 64)
                    with self._lock:
                        requests, self._requests = self._requests, []
                    for what, done in requests:
                        if what == "unplug" and self.plugged:
                            self._close_pty()
                        elif what == "replug" and not self.plugged:
                            self._open_pty()
                        done.set()
                if self._master is None or self._master not in ready:
                    continue
                self._busy = True
                try:
                    try:
                        data = os.read(self._master, 4096)
                    except OSError:
                        continue
                    for packet in self.parser.feed(data):
                        if self.byte_timing:
                            self._sleep(self._wire_s(len(packet.raw)))
                        self._handle(packet)
                finally:
                    self._busy = False
        except BaseException as exc:  # surfaced to tests through .error
            self.error = exc

    def _unread(self) -> int:
        """Bytes the host wrote that the thread has not read yet (0 when unplugged)."""
        master = self._master
        if master is None:
            return 0
        try:
            buf = fcntl.ioctl(master, termios.FIONREAD, b"\0\0\0\0")
        except OSError:
            return 0
        return int.from_bytes(buf, sys.byteorder)  # a C int in the host's byte order

    def idle(self) -> bool:
        """Every byte written to the port so far has been handled (replies sent, goals applied).

        Bytes written in the last moments may still sit in the kernel's pty buffer, not yet readable here:
        ask after something that followed the write (a reply, a message the writer sent after it).
        """
        return not self._busy and self._unread() == 0 and not self._busy

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait (without any lock of the caller's held) until :meth:`idle`; False after ``timeout_s``."""
        end = time.monotonic() + timeout_s
        while not self.idle():
            if self._thread is None or time.monotonic() > end:
                return False
            time.sleep(0.0002)
        return True

    def _wire_s(self, n_bytes: int) -> float:
        return n_bytes * 10 / self.baudrate

    @staticmethod
    def _sleep(seconds: float) -> None:
        """Sleep precisely for short waits (time.sleep overshoots by ~60 us; spin the tail)."""
        if seconds <= 0:
            return
        end = time.perf_counter() + seconds
        if seconds > 2e-4:
            time.sleep(seconds - 1.5e-4)
        while time.perf_counter() < end:
            pass

    def _send(self, servo_id: int, raw: bytes) -> None:
        with self._lock:
            faults = [f for f in self._faults if f.servo_id in (None, servo_id)]
            for f in faults:
                f.remaining -= 1
            self._faults = [f for f in self._faults if f.remaining > 0]
        for f in faults:
            if f.kind == "delay":
                assert isinstance(f.value, float)
                time.sleep(f.value)
            elif f.kind == "corrupt":
                raw = raw[:-2] + bytes([raw[-2] ^ 0xFF, raw[-1]])
            elif f.kind == "truncate":
                keep = f.value if isinstance(f.value, int) else len(raw) // 2
                raw = raw[:keep]
            elif f.kind == "prepend":
                assert isinstance(f.value, bytes)
                raw = f.value + raw
        if self.byte_timing:
            self._sleep(self._wire_s(len(raw)))
        if self._master is None:
            return  # unplugged meanwhile
        try:
            os.write(self._master, raw)
        except OSError:
            pass  # unplugged meanwhile

    def _return_delay(self, servo: VirtualServo) -> None:
        delay_s = servo.get("return_delay_time") * t.RETURN_DELAY_US_PER_UNIT * 1e-6
        if delay_s > 0:
            self._sleep(delay_s)

    def _status_error(self, servo: VirtualServo, error: int = 0) -> int:
        return error | (p.ERROR_ALERT if servo.get("hardware_error_status") else 0)

    def _refuse(self, servo: VirtualServo, instruction: int, error: int, detail: str) -> int:
        """Record a refused instruction; returns ``error`` for the status packet."""
        with self._lock:
            self.status_errors.append(StatusErrorRecord(time.monotonic(), servo.get("id"), instruction, error, detail))
        return error

    def _reply(self, servo: VirtualServo, error: int = 0, params: bytes = b"", *, kind: str = "other") -> None:
        """Send a status packet if Status Return Level allows it (0: ping only, 1: + reads, 2: all)."""
        level = servo.get("status_return_level")
        if (level == 0 and kind != "ping") or (level == 1 and kind == "other"):
            return
        self._return_delay(servo)
        sid = servo.get("id")
        self._send(sid, p.encode_status(sid, self._status_error(servo, error), params))

    def _refresh_present(self, servo: VirtualServo) -> None:
        pos, vel, cur = self.present(servo.servo_id)
        servo.set("present_position", max(-(2**31), min(2**31 - 1, pos + servo.offset_ticks)))
        servo.set("present_velocity", vel)
        servo.set("present_current", cur)
        servo.set("moving", int(abs(vel) > servo.get("moving_threshold")))

    def _wrap_turns(self, servo: VirtualServo) -> None:
        """Keep only the position within one turn (power-on, reboot, CLEAR): the encoder is absolute over
        one revolution; the multi-turn count is RAM."""
        raw = self.present(servo.servo_id)[0] + servo.turns_ticks
        servo.turns_ticks -= (raw // t.TICKS_PER_REV) * t.TICKS_PER_REV

    def _goal_to_physics(self, servo: VirtualServo) -> None:
        self.on_goal(servo.servo_id, servo.get("goal_position") - servo.offset_ticks)

    def _read_bytes(self, servo: VirtualServo, address: int, length: int) -> tuple[int, bytes, str]:
        if length == 0:
            return ERR_DATA_LENGTH, b"", "read of 0 bytes"
        if address + length > len(servo.table):
            return ERR_ACCESS, b"", f"read of {length} bytes at {address} runs past the control table"
        if address < _PRESENT_END and address + length > _PRESENT_START:
            self._refresh_present(servo)
        data = bytearray(servo.table[address : address + length])
        for k, a in enumerate(_INDIRECT_DATA):
            if address <= a < address + length:
                target = servo.get(f"indirect_address_{k + 1}")
                if _PRESENT_START <= target < _PRESENT_END:
                    self._refresh_present(servo)
                data[a - address] = servo.table[target]
        return 0, bytes(data), ""

    def check_write(self, servo: VirtualServo, address: int, data: bytes) -> tuple[int, str]:
        """Would this servo accept ``data`` at ``address`` now? ``(0, "")`` or ``(error number, why)``."""
        if not data:
            return ERR_DATA_LENGTH, f"write at {address} carries no data"
        end = address + len(data)
        if end > len(servo.table):
            return ERR_ACCESS, f"write of {len(data)} bytes at {address} runs past the control table"
        layout = _layout(servo.model_number)
        items: list[t.ControlItem] = []
        for a in range(address, end):
            it = layout[a]
            if it is None:
                return ERR_ACCESS, f"address {a} is not a control-table item"
            if not items or items[-1] is not it:
                items.append(it)
        first, last = items[0], items[-1]
        if first.address < address or last.end > end:
            part = first if first.address < address else last
            return ERR_DATA_LENGTH, (f"write of {len(data)} bytes at {address} covers only part of {part.name} "
                                     f"({part.size} bytes at {part.address})")
        torque_on = servo.get("torque_enable") == 1
        for it in items:
            if not it.writable:
                return ERR_ACCESS, f"{it.name} (address {it.address}) is read-only"
            if it.eeprom and torque_on:
                return ERR_ACCESS, f"{it.name} (address {it.address}) is EEPROM, locked while Torque Enable is 1"
        trial = bytearray(servo.table)
        trial[address:end] = data

        def value(name: str) -> int:
            it = servo.items[name]
            return it.decode(bytes(trial[it.address : it.end]))

        tripped = servo.get("bus_watchdog") == BUS_WATCHDOG_TRIPPED
        for it in items:
            v = it.decode(bytes(trial[it.address : it.end]))
            if it.name in _GOAL_ITEMS and tripped:
                return ERR_DATA_RANGE, f"{it.name}: the bus watchdog has tripped (write 0 to bus_watchdog first)"
            problem = it.range_problem(v)
            if problem is not None:
                return ERR_DATA_RANGE, problem
            if it.bound == "position_limits":
                mode = value("operating_mode")
                lo, hi = t.goal_position_range(mode, value("min_position_limit"), value("max_position_limit"))
                if not lo <= v <= hi:
                    where = "Min/Max Position Limit" if mode == t.OPERATING_MODE_POSITION else "the multi-turn range"
                    return ERR_DATA_RANGE, f"goal_position = {v} is outside {where} [{lo}, {hi}] (operating mode {mode})"
            elif it.bound is not None:
                limit = value(it.bound)
                if abs(v) > limit:
                    return ERR_DATA_RANGE, f"{it.name} = {v} is beyond {it.bound} {limit}"
            if it.name == "torque_enable" and v == 1 and servo.get("hardware_error_status"):
                return ERR_ACCESS, "torque cannot come on while a hardware error is latched (reboot first)"
        return 0, ""

    def _write_bytes(self, servo: VirtualServo, address: int, data: bytes, instruction: int = p.INST_WRITE) -> int:
        """Check and apply a write; returns the status error number (0 on success; refusals are recorded)."""
        error, detail = self.check_write(servo, address, data)
        if error:
            return self._refuse(servo, instruction, error, detail)
        end = address + len(data)
        was_on = servo.get("torque_enable") == 1
        servo.table[address:end] = data
        sid = servo.servo_id
        is_on = servo.get("torque_enable") == 1
        if is_on != was_on:
            self.on_torque(sid, is_on)
        goal = servo.items["goal_position"]
        if is_on and ((address < goal.end and goal.address < end) or not was_on):
            self._goal_to_physics(servo)
        return 0

    def _reboot(self, servo: VirtualServo) -> None:
        was_on = servo.get("torque_enable") == 1
        self._wrap_turns(servo)
        self._refresh_present(servo)
        servo.reset_ram()
        if was_on:
            self.on_torque(servo.servo_id, False)
        servo.silent_until = time.monotonic() + self.reboot_silence_s

    def _factory_reset(self, servo: VirtualServo, mode: int) -> None:
        keep = {p.FACTORY_RESET_ALL: (), p.FACTORY_RESET_EXCEPT_ID: ("id",),
                p.FACTORY_RESET_EXCEPT_ID_BAUD: ("id", "baud_rate")}[mode]
        was_on = servo.get("torque_enable") == 1
        servo.factory(keep=keep)
        servo.turns_ticks = 0
        self._wrap_turns(servo)
        self._refresh_present(servo)
        servo.set("goal_position", servo.get("present_position"))
        servo.ram_defaults = bytes(servo.table[t.EEPROM_END :])
        if was_on:
            self.on_torque(servo.servo_id, False)
        servo.silent_until = time.monotonic() + self.reboot_silence_s

    def _clear(self, servo: VirtualServo, params: bytes) -> int:
        if params != p.CLEAR_MULTI_TURN:
            return self._refuse(servo, p.INST_CLEAR, ERR_DATA_RANGE, f"unknown CLEAR parameters {params.hex(' ')}")
        self._refresh_present(servo)
        if servo.get("moving"):
            return self._refuse(servo, p.INST_CLEAR, ERR_RESULT_FAIL, "CLEAR of the multi-turn count while moving")
        self._wrap_turns(servo)
        self._refresh_present(servo)
        servo.set("goal_position", servo.get("present_position"))
        if servo.get("torque_enable"):
            self._goal_to_physics(servo)
        return 0

    def _action(self, servo: VirtualServo) -> int:
        if servo.registered is None:
            return 0
        address, data = servo.registered
        servo.registered = None
        servo.set("registered_instruction", 0)
        return self._write_bytes(servo, address, data, p.INST_ACTION)

    def _reg_write(self, servo: VirtualServo, params: bytes) -> int:
        if len(params) < 3:
            return self._refuse(servo, p.INST_REG_WRITE, ERR_DATA_LENGTH, "REG_WRITE needs an address and data")
        address, data = _u16(params, 0), params[2:]
        error, detail = self.check_write(servo, address, data)
        if error:
            return self._refuse(servo, p.INST_REG_WRITE, error, detail)
        servo.registered = (address, bytes(data))
        servo.set("registered_instruction", 1)
        return 0

    def _listening(self, now: float, silent: set[int]) -> dict[int, list[VirtualServo]]:
        """Servos that can hear the line now, by the id they answer to (their ID register)."""
        out: dict[int, list[VirtualServo]] = {}
        for key, servo in self.servos.items():
            if key in silent or servo.silent_until > now:
                continue
            if self._line_baud is not None and servo.get("baud_rate") != self._line_baud:
                continue  # it cannot decode this line rate (e.g. after a factory reset to 57600)
            out.setdefault(servo.get("id"), []).append(servo)
        return out

    def _handle(self, packet: p.Packet) -> None:
        if packet.is_status:
            return  # our own replies never come back on a pty, but a real bus would echo them
        with self._lock:
            now = time.monotonic()
            self.log.append(LoggedInstruction(now, packet.servo_id, packet.instruction, packet.params, packet.raw))
            self._last_rx_s = self.watchdog_clock()
            silent = {i for i, s in self.servos.items() if s.silent}
        listening = self._listening(now, silent)
        inst, params = packet.instruction, packet.params
        if packet.servo_id == p.BROADCAST_ID:
            self._handle_broadcast(inst, params, listening)
            return
        for servo in listening.get(packet.servo_id, []):
            self._handle_unicast(servo, inst, params)

    def _handle_unicast(self, servo: VirtualServo, inst: int, params: bytes) -> None:
        if inst == p.INST_PING:
            model = servo.get("model_number").to_bytes(2, "little")
            self._reply(servo, 0, model + bytes([servo.get("firmware_version")]), kind="ping")
        elif inst == p.INST_READ:
            if len(params) != 4:
                self._reply(servo, self._refuse(servo, inst, ERR_DATA_LENGTH, f"READ with {len(params)} parameter bytes"),
                            kind="read")
                return
            address, length = _u16(params, 0), _u16(params, 2)
            error, data, detail = self._read_bytes(servo, address, length)
            if error:
                self._refuse(servo, inst, error, detail)
            self._reply(servo, error, data, kind="read")
        elif inst == p.INST_WRITE:
            if len(params) < 3:
                self._reply(servo, self._refuse(servo, inst, ERR_DATA_LENGTH, "WRITE needs an address and data"))
                return
            self._reply(servo, self._write_bytes(servo, _u16(params, 0), params[2:]))
        elif inst == p.INST_REG_WRITE:
            self._reply(servo, self._reg_write(servo, params))
        elif inst == p.INST_ACTION:
            self._reply(servo, self._action(servo))
        elif inst == p.INST_REBOOT:
            self._reply(servo)
            self._reboot(servo)
        elif inst == p.INST_FACTORY_RESET:
            if len(params) != 1 or params[0] not in p.FACTORY_RESET_MODES:
                self._reply(servo, self._refuse(servo, inst, ERR_DATA_RANGE, f"FACTORY_RESET parameter {params.hex(' ')}"))
                return
            self._reply(servo)
            self._factory_reset(servo, params[0])
        elif inst == p.INST_CLEAR:
            self._reply(servo, self._clear(servo, params))
        else:
            self._reply(servo, self._refuse(servo, inst, ERR_INSTRUCTION, f"instruction 0x{inst:02X} is not supported"))

    def _handle_broadcast(self, inst: int, params: bytes, listening: dict[int, list[VirtualServo]]) -> None:
        def each(servo_id: int) -> list[VirtualServo]:
            return listening.get(servo_id, [])

        everyone = [s for group in listening.values() for s in group]
        if inst == p.INST_PING:
            for servo in sorted(everyone, key=lambda s: s.get("id")):
                model = servo.get("model_number").to_bytes(2, "little")
                self._reply(servo, 0, model + bytes([servo.get("firmware_version")]), kind="ping")
        elif inst == p.INST_WRITE:
            if len(params) >= 3:
                for servo in everyone:
                    self._write_bytes(servo, _u16(params, 0), params[2:])
        elif inst == p.INST_REG_WRITE:
            for servo in everyone:
                self._reg_write(servo, params)
        elif inst == p.INST_ACTION:
            for servo in everyone:
                self._action(servo)
        elif inst == p.INST_REBOOT:
            for servo in everyone:
                self._reboot(servo)
        elif inst == p.INST_FACTORY_RESET:
            # a broadcast reset of everything (0xFF) is ignored: it would give every servo id 1
            if len(params) == 1 and params[0] in (p.FACTORY_RESET_EXCEPT_ID, p.FACTORY_RESET_EXCEPT_ID_BAUD):
                for servo in everyone:
                    self._factory_reset(servo, params[0])
        elif inst == p.INST_CLEAR:
            for servo in everyone:
                self._clear(servo, params)
        elif inst in (p.INST_SYNC_WRITE, p.INST_SYNC_READ, p.INST_FAST_SYNC_READ) and len(params) >= 4:
            address, length = _u16(params, 0), _u16(params, 2)
            body = params[4:]
            if inst == p.INST_SYNC_WRITE:
                stride = 1 + length
                for start in range(0, len(body) - stride + 1, stride):
                    for servo in each(body[start]):
                        self._write_bytes(servo, address, body[start + 1 : start + stride], inst)
            else:
                self._reads(inst == p.INST_FAST_SYNC_READ, [(i, address, length) for i in body], listening, inst)
        elif inst in (p.INST_BULK_READ, p.INST_FAST_BULK_READ):
            if len(params) % 5 == 0:
                entries = [(params[k], _u16(params, k + 1), _u16(params, k + 3)) for k in range(0, len(params), 5)]
                self._reads(inst == p.INST_FAST_BULK_READ, entries, listening, inst)
        elif inst == p.INST_BULK_WRITE:
            k = 0
            while k + 5 <= len(params):
                servo_id, address, length = params[k], _u16(params, k + 1), _u16(params, k + 3)
                chunk = params[k + 5 : k + 5 + length]
                k += 5 + length
                if len(chunk) != length:
                    break  # a cut-short packet: the rest is not applied
                for servo in each(servo_id):
                    self._write_bytes(servo, address, chunk, inst)
        # any other broadcast instruction is ignored (a broadcast is never answered with an error)

    def _reads(self, fast: bool, entries: Sequence[tuple[int, int, int]], listening: dict[int, list[VirtualServo]],
               inst: int) -> None:
        """Answer a (Fast) Sync / Bulk Read: one status per listed servo, or one combined packet."""
        if not fast:
            for servo_id, address, length in entries:
                for servo in listening.get(servo_id, [])[:1]:
                    error, data, detail = self._read_bytes(servo, address, length)
                    if error:
                        self._refuse(servo, inst, error, detail)
                    self._reply(servo, error, data if not error else b"", kind="read")
            return
        # FAST: one packet built by the chain. The first servo announces LEN for all of them; the packet
        # stops short at the first missing/silent servo and so never closes (the host sees a truncated packet).
        blocks: list[tuple[int, int, bytes]] = []
        answered = 0
        for servo_id, address, length in entries:
            group = listening.get(servo_id, [])
            if not group:
                break
            servo = group[0]
            answered += 1
            self._return_delay(servo)
            error, data, detail = self._read_bytes(servo, address, length)
            if error:
                self._refuse(servo, inst, error, detail)
            blocks.append((servo_id, self._status_error(servo, error), data if not error else bytes(length)))
        if not answered:
            return
        blocks += [(servo_id, 0, bytes(length)) for servo_id, _, length in entries[answered:]]
        raw = p.encode_fast_sync_read_reply(blocks)
        if answered < len(entries):
            raw = raw[: 8 + sum(length + 4 for _, _, length in entries[:answered])]
        self._send(p.BROADCAST_ID, raw)


@functools.lru_cache(maxsize=8)
def _layout(model_number: int) -> tuple[t.ControlItem | None, ...]:
    """The item at each address of a model's control table (``None``: reserved)."""
    table = t.MODELS[model_number].table if model_number in t.MODELS else t.X_SERIES
    out: list[t.ControlItem | None] = [None] * t.X_SERIES_TABLE_SIZE
    for it in table.values():
        for a in range(it.address, it.end):
            out[a] = it
    return tuple(out)


def _u16(data: bytes, offset: int) -> int:
    return data[offset] | (data[offset + 1] << 8)
