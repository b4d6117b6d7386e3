"""A Dynamixel Protocol 2.0 servo-bus emulator on a pseudo-terminal, for tests without hardware.

``ServoBusEmulator`` opens a pty pair (raw mode), serves N virtual servos from a thread on the master
side, and exposes the slave's device name as :attr:`ServoBusEmulator.port` for :class:`DynamixelBus` to
open. It answers PING, READ, WRITE, REBOOT, SYNC_READ, SYNC_WRITE and FAST_SYNC_READ with real status
packets, honours Torque Enable (EEPROM locked while on), Return Delay Time and Status Return Level,
and logs every instruction it receives (:attr:`ServoBusEmulator.log`).

Physics is pluggable: ``on_goal(id, goal_ticks)`` is called on every Goal Position write and
``present(id) -> (position_ticks, velocity_units, current_units)`` is asked before every read of the
present-state items. The default (:class:`FirstOrderServo`) moves present toward goal while torque is on.

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
writes 0 there (e-manual, Bus Watchdog).

:attr:`ServoBusEmulator.port` is a symlink in a private temporary folder that points at the current pty
slave (a stable name, like the udev symlink ``/dev/omnipianist_left``), so an unplugged and replugged
emulator is reopened under the same name.
"""

from __future__ import annotations

import math
import os
import select
import shutil
import tempfile
import threading
import time
import tty
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from omnipianist.hardware.dynamixel import protocol as p
from omnipianist.hardware.dynamixel import tables as t

OnGoal = Callable[[int, int], None]
OnTorque = Callable[[int, bool], None]
PresentProvider = Callable[[int], tuple[int, int, int]]

ERR_INSTRUCTION = 0x02
ERR_DATA_RANGE = 0x04
ERR_DATA_LENGTH = 0x05
ERR_ACCESS = 0x07

FIRMWARE_VERSION = 52
"""Firmware version the virtual servos report (Fast Sync Read needs >= 46 on X330)."""
BUS_WATCHDOG_TRIPPED = 0xFF
"""Bus Watchdog register value after a trip (-1 as a signed byte)."""
_GOAL_ITEMS = ("goal_pwm", "goal_current", "goal_velocity", "goal_position")
_PRESENT_START, _PRESENT_END = 120, 147
"""Addresses whose reads need a fresh present state (realtime tick .. present temperature)."""


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


@dataclass
class VirtualServo:
    """State of one emulated servo: id, model, control-table bytes, and emulator flags."""

    servo_id: int
    model_number: int = t.XC330_M288
    table: bytearray = field(default_factory=lambda: bytearray(t.X_SERIES_TABLE_SIZE))
    silent: bool = False
    ram_defaults: bytes = b""
    """RAM area (address 64 on) as at power-on; restored by REBOOT."""

    def get(self, name: str) -> int:
        it = t.X_SERIES[name]
        return it.decode(bytes(self.table[it.address : it.end]))

    def set(self, name: str, value: int) -> None:
        it = t.X_SERIES[name]
        self.table[it.address : it.end] = it.encode(value)

    def reset_ram(self) -> None:
        """RAM defaults after power-on or reboot (torque off, errors cleared, gains and watchdog back to
        their power-on values, goal = present)."""
        present = bytes(self.table[_PRESENT_START:_PRESENT_END])
        if self.ram_defaults:
            self.table[t.EEPROM_END :] = self.ram_defaults
        self.table[_PRESENT_START:_PRESENT_END] = present
        self.set("torque_enable", 0)
        self.set("hardware_error_status", 0)
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
        model_number: model every servo reports (default XC330-M288).
        on_goal: called ``(id, goal_ticks)`` on each Goal Position write made while torque is on, and
            with the stored goal when torque turns on; default :class:`FirstOrderServo`.
        present: returns ``(position_ticks, velocity_units, current_units)``; default ditto.
        on_torque: called ``(id, enabled)`` when Torque Enable changes; default ditto.
        return_delay_time: initial Return Delay Time [2 us units] (factory 250; the project sets 0).
        baudrate: line rate [bit/s] used for the per-byte timing.
        byte_timing: charge every packet its wire time (see the module docstring).
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
    ) -> None:
        self.baudrate = baudrate
        self.byte_timing = byte_timing
        self.physics = FirstOrderServo()
        self.on_goal: OnGoal = on_goal or self.physics.on_goal
        self.present: PresentProvider = present or self.physics.present
        self.on_torque: OnTorque = on_torque or self.physics.on_torque
        self.servos: dict[int, VirtualServo] = {}
        for servo_id in ids:
            servo = VirtualServo(servo_id, model_number)
            servo.set("model_number", model_number)
            servo.set("firmware_version", FIRMWARE_VERSION)
            servo.set("id", servo_id)
            servo.set("return_delay_time", return_delay_time)
            servo.set("operating_mode", 3)
            servo.set("status_return_level", 2)
            servo.set("current_limit", 2352)
            servo.set("max_position_limit", 4095)
            servo.set("present_position", t.CENTER_TICKS)
            servo.set("goal_position", t.CENTER_TICKS)
            servo.set("position_p_gain", 400)
            servo.set("velocity_p_gain", 180)
            servo.set("velocity_i_gain", 1600)
            servo.set("goal_current", 1750)
            servo.set("profile_velocity", 0)
            servo.ram_defaults = bytes(servo.table[t.EEPROM_END :])
            self.servos[servo_id] = servo
        self.log: list[LoggedInstruction] = []
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
        self._last_rx_s = time.monotonic()
        self._requests: list[tuple[str, threading.Event]] = []
        self.watchdog_trips = 0
        """Servo watchdog trips so far (one per servo per trip)."""

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> ServoBusEmulator:
        """Open the pty and start serving; :attr:`port` is then the device to open."""
        if self._thread is not None:
            return self
        for servo in self.servos.values():
            self._refresh_present(servo)
            servo.set("goal_position", servo.get("present_position"))
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
            self.on_goal(servo.servo_id, servo.get("goal_position"))

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
                self._check_watchdogs(time.monotonic())
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
                try:
                    data = os.read(self._master, 4096)
                except OSError:
                    continue
                for packet in self.parser.feed(data):
                    if self.byte_timing:
                        self._sleep(self._wire_s(len(packet.raw)))
                    self._handle(packet)
        except BaseException as exc:  # surfaced to tests through .error
            self.error = exc

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

    def _reply(self, servo: VirtualServo, error: int = 0, params: bytes = b"", *, kind: str = "other") -> None:
        """Send a status packet if Status Return Level allows it (0: ping only, 1: + reads, 2: all)."""
        level = servo.get("status_return_level")
        if (level == 0 and kind != "ping") or (level == 1 and kind == "other"):
            return
        self._return_delay(servo)
        self._send(servo.servo_id, p.encode_status(servo.servo_id, self._status_error(servo, error), params))

    def _refresh_present(self, servo: VirtualServo) -> None:
        pos, vel, cur = self.present(servo.servo_id)
        servo.set("present_position", pos)
        servo.set("present_velocity", vel)
        servo.set("present_current", cur)
        servo.set("moving", int(vel != 0))

    def _read_bytes(self, servo: VirtualServo, address: int, length: int) -> tuple[int, bytes]:
        if address + length > len(servo.table) or length == 0:
            return ERR_ACCESS, b""
        if address < _PRESENT_END and address + length > _PRESENT_START:
            self._refresh_present(servo)
        return 0, bytes(servo.table[address : address + length])

    def _write_bytes(self, servo: VirtualServo, address: int, data: bytes) -> int:
        """Apply a write; returns the status error number (0 on success)."""
        end = address + len(data)
        if not data or end > len(servo.table):
            return ERR_ACCESS
        torque_on = servo.get("torque_enable") == 1
        for it in t.X_SERIES.values():
            if it.address < end and address < it.end:
                if not it.writable or (it.eeprom and torque_on and it.name != "torque_enable"):
                    return ERR_ACCESS
        if servo.get("bus_watchdog") == BUS_WATCHDOG_TRIPPED:
            for name in _GOAL_ITEMS:
                it = t.X_SERIES[name]
                if it.address < end and address < it.end:
                    return ERR_DATA_RANGE  # goals are refused until the watchdog is cleared (write 0)
        torque_item = t.X_SERIES["torque_enable"]
        if address <= torque_item.address < end and data[torque_item.address - address] == 1:
            if servo.get("hardware_error_status"):
                return ERR_ACCESS  # a latched hardware error keeps torque off until reboot
        was_on = torque_on
        servo.table[address:end] = data
        sid = servo.servo_id
        is_on = servo.get("torque_enable") == 1
        if is_on != was_on:
            self.on_torque(sid, is_on)
        goal = t.X_SERIES["goal_position"]
        if is_on and ((address < goal.end and goal.address < end) or not was_on):
            self.on_goal(sid, servo.get("goal_position"))
        return 0

    def _handle(self, packet: p.Packet) -> None:
        if packet.is_status:
            return  # our own replies never come back on a pty, but a real bus would echo them
        with self._lock:
            now = time.monotonic()
            self.log.append(LoggedInstruction(now, packet.servo_id, packet.instruction, packet.params, packet.raw))
            self._last_rx_s = now
            silent = {i for i, s in self.servos.items() if s.silent}
        inst, params = packet.instruction, packet.params
        if packet.servo_id == p.BROADCAST_ID:
            self._handle_broadcast(inst, params, silent)
            return
        servo = self.servos.get(packet.servo_id)
        if servo is None or servo.servo_id in silent:
            return
        if inst == p.INST_PING:
            model = servo.get("model_number").to_bytes(2, "little")
            self._reply(servo, 0, model + bytes([FIRMWARE_VERSION]), kind="ping")
        elif inst == p.INST_READ:
            if len(params) != 4:
                self._reply(servo, ERR_DATA_LENGTH, kind="read")
                return
            address, length = _u16(params, 0), _u16(params, 2)
            error, data = self._read_bytes(servo, address, length)
            self._reply(servo, error, data, kind="read")
        elif inst == p.INST_WRITE:
            if len(params) < 3:
                self._reply(servo, ERR_DATA_LENGTH)
                return
            self._reply(servo, self._write_bytes(servo, _u16(params, 0), params[2:]))
        elif inst == p.INST_REBOOT:
            self._reply(servo)
            was_on = servo.get("torque_enable") == 1
            self._refresh_present(servo)
            servo.reset_ram()
            if was_on:
                self.on_torque(servo.servo_id, False)
        else:
            self._reply(servo, ERR_INSTRUCTION)

    def _handle_broadcast(self, inst: int, params: bytes, silent: set[int]) -> None:
        if inst == p.INST_PING:
            for servo in self.servos.values():
                if servo.servo_id not in silent:
                    model = servo.get("model_number").to_bytes(2, "little")
                    self._reply(servo, 0, model + bytes([FIRMWARE_VERSION]), kind="ping")
            return
        if inst not in (p.INST_SYNC_WRITE, p.INST_SYNC_READ, p.INST_FAST_SYNC_READ) or len(params) < 4:
            return
        address, length = _u16(params, 0), _u16(params, 2)
        body = params[4:]
        if inst == p.INST_SYNC_WRITE:
            stride = 1 + length
            for start in range(0, len(body) - stride + 1, stride):
                servo = self.servos.get(body[start])
                if servo is not None and servo.servo_id not in silent:
                    self._write_bytes(servo, address, body[start + 1 : start + stride])
            return
        if inst == p.INST_SYNC_READ:
            for servo_id in body:
                servo = self.servos.get(servo_id)
                if servo is None or servo_id in silent:
                    continue  # the next servo still answers after its own wait on a real bus
                error, data = self._read_bytes(servo, address, length)
                self._reply(servo, error, data if not error else b"", kind="read")
            return
        # FAST_SYNC_READ: one packet built by the chain; it stops at the first missing/silent servo
        # The first servo announces LEN for all of them; the packet stops short at the first
        # missing/silent servo and so never closes (the host sees a truncated packet).
        blocks: list[tuple[int, int, bytes]] = []
        answered = 0
        for servo_id in body:
            servo = self.servos.get(servo_id)
            if servo is None or servo_id in silent:
                break
            answered += 1
            self._return_delay(servo)
            error, data = self._read_bytes(servo, address, length)
            blocks.append((servo_id, self._status_error(servo, error), data if not error else bytes(length)))
        if not answered:
            return
        blocks += [(servo_id, 0, bytes(length)) for servo_id in body[answered:]]
        raw = p.encode_fast_sync_read_reply(blocks)
        if answered < len(body):
            raw = raw[: 8 + answered * (length + 4)]
        self._send(p.BROADCAST_ID, raw)


def _u16(data: bytes, offset: int) -> int:
    return data[offset] | (data[offset + 1] << 8)
