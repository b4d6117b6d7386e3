"""A Dynamixel Protocol 2.0 bus over pyserial: one port, up to 253 servos, bounded retries.

Every transaction is: flush input, write one instruction, collect the expected status packet(s) through
a resynchronising :class:`PacketParser` until they are all in or the attempt's deadline passes, then
retry (at most ``retries`` times) what is still missing. A call therefore blocks at most
``(1 + retries) * timeout_s`` plus the write time. Failures raise :class:`BusTimeout`,
:class:`CRCError` or :class:`ServoError`, each naming the port and the servo id.
"""

from __future__ import annotations

import contextlib
import os
import select
import termios
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import overload

import serial

from omnipianist.errors import ConfigError
from omnipianist.hardware.dynamixel import protocol as p
from omnipianist.hardware.dynamixel import tables as t
from omnipianist.hardware.errors import (
    BusConnectionError,
    BusError,
    BusTimeout,
    CRCError,
    ProtocolError,
    ServoError,
)

ItemLike = str | t.ControlItem
ItemsLike = t.Span | list[str | t.ControlItem] | tuple[str | t.ControlItem, ...]
"""Several items read together (a span, or a list or tuple of items in address order): one tuple per servo.
(A list or tuple rather than any Sequence: a ``str`` is a sequence too, and names one item.)"""
SpanLike = str | t.ControlItem | t.Span | Sequence[str | t.ControlItem]


@dataclass
class ServoStats:
    """Per-servo link counters (cumulative since the bus was created).

    Attributes:
        tx: instructions addressed to this servo (broadcasts count once per listed servo).
        rx_ok: valid status packets (or Fast Sync Read blocks) received from it.
        timeouts: attempts in which its reply did not arrive in time.
        crc_errors: replies attributed to it that failed the CRC.
        servo_errors: status packets with a non-zero error byte.
        last_error: description of the most recent problem, ``None`` if none yet.
    """

    tx: int = 0
    rx_ok: int = 0
    timeouts: int = 0
    crc_errors: int = 0
    servo_errors: int = 0
    last_error: str | None = None


class DynamixelBus:
    """One Protocol 2.0 bus (one LEAP Hand: 16 XC330-M288 on one USB serial adapter).

    Args:
        port: device path or pyserial URL (``/dev/ttyUSB0``, a pty name, ``loop://``).
        baudrate: line rate [bit/s] (the LEAP Hand runs at 4_000_000).
        timeout_s: budget of one attempt [s] (write + all replies of that attempt).
        retries: extra attempts after a timeout or CRC error (servo errors are not retried).
        raise_on_alert: raise :class:`ServoError` when a reply carries the hardware-alert bit (the data
            is still valid; set ``False`` to only record it in :attr:`stats`).
        low_latency: ask the driver for ASYNC_LOW_LATENCY (FTDI: latency timer 16 ms -> 1 ms); ignored
            where unsupported (ptys). :attr:`low_latency_enabled` says whether it took.

    Not thread-safe: one thread owns a bus (the hand driver's control loop).
    """

    def __init__(
        self,
        port: str,
        baudrate: int = 4_000_000,
        *,
        timeout_s: float = 0.02,
        retries: int = 2,
        raise_on_alert: bool = True,
        low_latency: bool = True,
    ) -> None:
        if timeout_s <= 0 or retries < 0:
            raise ConfigError(f"DynamixelBus({port}): timeout_s must be > 0 and retries >= 0 (got {timeout_s}, {retries})")
        self.port = port
        self.baudrate = baudrate
        self.timeout_s = timeout_s
        self.retries = retries
        self.raise_on_alert = raise_on_alert
        self.low_latency = low_latency
        self.low_latency_enabled = False
        self.stats: dict[int, ServoStats] = {}
        self.parser = p.PacketParser()
        self.alerts: dict[int, int] = {}
        """Servos whose last status carried the hardware-alert bit (id -> error byte); cleared by the
        caller (the hand driver reads it after each transaction to start a reboot-and-restore)."""
        self.partial: dict[int, bytes] = {}
        self.last_write_s = 0.0
        """``time.monotonic()`` right after the last instruction left (for the bus-watchdog bookkeeping)."""
        self._serial: serial.SerialBase | None = None
        self._fileno: int | None = None

    @contextlib.contextmanager
    def patient(self, timeout_s: float, retries: int) -> Iterator[DynamixelBus]:
        """Within the block, each transaction waits ``timeout_s`` per attempt (writes too) and retries
        ``retries`` times: for configuring and calibrating, where no control period is kept and a host
        that is briefly busy (or a servo that has just booted) must not fail start-up. Never shortens."""
        saved = (self.timeout_s, self.retries)
        self.timeout_s, self.retries = max(timeout_s, self.timeout_s), max(retries, self.retries)
        self._set_write_timeout(self.timeout_s)
        try:
            yield self
        finally:
            self.timeout_s, self.retries = saved
            self._set_write_timeout(self.timeout_s)

    def _set_write_timeout(self, timeout_s: float) -> None:
        if self._serial is not None:
            try:
                self._serial.write_timeout = timeout_s
            except (ValueError, serial.SerialException):
                pass

    # --- connection -------------------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self._serial is not None and self._serial.is_open

    def connect(self) -> None:
        """Open the port (8N1, non-blocking reads); raises BusConnectionError naming the port."""
        if self.is_connected:
            return
        try:
            ser = serial.serial_for_url(
                self.port, baudrate=self.baudrate, timeout=0, write_timeout=self.timeout_s, exclusive=True
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise BusConnectionError(f"cannot open serial port: {exc}", port=self.port) from exc
        self._serial = ser
        try:
            self._fileno = ser.fileno()
        except (AttributeError, NotImplementedError, OSError, serial.SerialException):
            self._fileno = None
        if self.low_latency and hasattr(ser, "set_low_latency_mode"):
            try:
                ser.set_low_latency_mode(True)
                self.low_latency_enabled = True
            except (OSError, ValueError, serial.SerialException):
                self.low_latency_enabled = False

    def disconnect(self, disable_torque: bool = True, ids: Iterable[int] | None = None) -> None:
        """Optionally turn torque off (``ids`` or every servo seen so far), then close the port.

        Torque-off failures are swallowed so that the port is always closed.
        """
        if not self.is_connected:
            return
        if disable_torque:
            targets = list(ids) if ids is not None else sorted(self.stats)
            if targets:
                try:
                    self.disable_torque(targets)
                except BusError:
                    pass
        assert self._serial is not None
        self._serial.close()
        self._serial = None
        self._fileno = None

    def __enter__(self) -> DynamixelBus:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    # --- public operations ------------------------------------------------------------------------

    def ping(self, servo_id: int, *, deadline: float | None = None) -> int:
        """Ping one servo; return its model number."""
        reply = self._request(servo_id, p.encode_ping(servo_id), expect_len=3, deadline=deadline)
        return int.from_bytes(reply[:2], "little")

    def read(self, servo_id: int, item: ItemLike, *, deadline: float | None = None) -> int:
        """Read one control-table item from one servo (signed items decoded as such)."""
        it = t.item(item)
        reply = self._request(servo_id, p.encode_read(servo_id, it.address, it.size), expect_len=it.size, deadline=deadline)
        return it.decode(reply)

    def write(self, servo_id: int, item: ItemLike, value: int, *, deadline: float | None = None) -> None:
        """Write one item on one servo and wait for its status (raises ServoError on e.g. access error)."""
        it = t.item(item)
        self._request(servo_id, p.encode_write(servo_id, it.address, it.encode(value)), expect_len=0, deadline=deadline)

    def reboot(self, servo_id: int, *, deadline: float | None = None) -> None:
        """Reboot one servo (clears a latched hardware error; torque comes back off)."""
        self._request(servo_id, p.encode_reboot(servo_id), expect_len=0, deadline=deadline)

    def sync_write(self, item: ItemLike, values: Mapping[int, int]) -> None:
        """Write ``values[id]`` to ``item`` on every listed servo in one broadcast packet (no reply)."""
        it = t.item(item)
        if not values:
            return
        packet = p.encode_sync_write(it.address, it.size, {i: it.encode(v) for i, v in values.items()})
        for servo_id in values:
            self._stat(servo_id).tx += 1
        self._write(packet, servo_id=None)

    @overload
    def sync_read(
        self, item_or_span: ItemLike, ids: Sequence[int], *, deadline: float | None = None
    ) -> dict[int, int]: ...
    @overload
    def sync_read(
        self, item_or_span: ItemsLike, ids: Sequence[int], *, deadline: float | None = None
    ) -> dict[int, tuple[int, ...]]: ...
    def sync_read(
        self, item_or_span: SpanLike, ids: Sequence[int], *, deadline: float | None = None
    ) -> dict[int, int] | dict[int, tuple[int, ...]]:
        """Sync Read (0x82): one status packet per servo. Returns ``{id: value}`` for one item, ``{id: tuple}``
        for a span (or a sequence of items). Retries only the servos that have not answered.

        The replies that did arrive before a failure are kept in :attr:`partial` (``{id: raw bytes}``)."""
        sp = t.as_span(item_or_span)
        ids = list(ids)
        raw: dict[int, bytes] = {}
        self.partial = raw
        missing = list(ids)
        deadline_total = self._deadline_total(deadline)
        last: BusError | None = None
        for _attempt in range(1 + self.retries):
            if not missing or (last is not None and time.monotonic() >= deadline_total):
                break
            for servo_id in missing:
                self._stat(servo_id).tx += 1
            got, last = self._transact(
                p.encode_sync_read(sp.address, sp.size, missing),
                missing,
                sp.size,
                fast=False,
                deadline_total=deadline_total,
            )
            raw.update(got)
            missing = [i for i in missing if i not in raw]
        if missing:
            assert last is not None
            raise last
        return self._decode_span(item_or_span, sp, {i: raw[i] for i in ids})

    @overload
    def fast_sync_read(
        self, item_or_span: ItemLike, ids: Sequence[int], *, deadline: float | None = None
    ) -> dict[int, int]: ...
    @overload
    def fast_sync_read(
        self, item_or_span: ItemsLike, ids: Sequence[int], *, deadline: float | None = None
    ) -> dict[int, tuple[int, ...]]: ...
    def fast_sync_read(
        self, item_or_span: SpanLike, ids: Sequence[int], *, deadline: float | None = None
    ) -> dict[int, int] | dict[int, tuple[int, ...]]:
        """Fast Sync Read (0x8A): one combined reply for all servos (X330 firmware >= 46).

        Returns ``{id: value}`` for one item, ``{id: tuple}`` for a span (as :meth:`sync_read`). The reply is
        all-or-nothing, so a retry asks every servo again; a timeout names every requested id since the silent
        one is unknown.
        """
        sp = t.as_span(item_or_span)
        ids = list(ids)
        deadline_total = self._deadline_total(deadline)
        last: BusError | None = None
        for _attempt in range(1 + self.retries):
            if last is not None and time.monotonic() >= deadline_total:
                break
            for servo_id in ids:
                self._stat(servo_id).tx += 1
            got, last = self._transact(
                p.encode_fast_sync_read(sp.address, sp.size, ids),
                ids,
                sp.size,
                fast=True,
                deadline_total=deadline_total,
            )
            if len(got) == len(ids):
                return self._decode_span(item_or_span, sp, {i: got[i] for i in ids})
        assert last is not None
        raise last

    def wait_for_ping(self, servo_id: int, timeout_s: float = 1.0, *, poll_s: float = 0.005) -> int:
        """PING ``servo_id`` until it answers (a rebooting X330 is silent for a few hundred ms); returns
        its model number. Blocks at most about ``timeout_s``; BusTimeout naming the servo after that."""
        end = time.monotonic() + timeout_s
        while True:
            try:
                return self.ping(servo_id, deadline=min(end, time.monotonic() + self.timeout_s))
            except (BusTimeout, CRCError) as exc:
                if time.monotonic() + poll_s >= end:
                    raise BusTimeout(f"no answer to PING within {timeout_s:.3f} s ({exc.cause})", port=self.port,
                                     servo_id=servo_id) from exc
            time.sleep(poll_s)

    def write_broadcast(self, item: ItemLike, value: int) -> None:
        """WRITE to the broadcast id: every servo on the bus applies it; none answers."""
        it = t.item(item)
        self._write(p.encode_write(p.BROADCAST_ID, it.address, it.encode(value)), servo_id=None)

    def reg_write(self, servo_id: int, item: ItemLike, value: int, *, deadline: float | None = None) -> None:
        """REG_WRITE: the servo holds the write until an :meth:`action` (broadcast id: no reply)."""
        it = t.item(item)
        packet = p.encode_reg_write(servo_id, it.address, it.encode(value))
        if servo_id == p.BROADCAST_ID:
            self._write(packet, servo_id=None)
        else:
            self._request(servo_id, packet, expect_len=0, deadline=deadline)

    def action(self, servo_id: int = p.BROADCAST_ID, *, deadline: float | None = None) -> None:
        """ACTION: execute the registered writes (default broadcast: all at once, no reply)."""
        packet = p.encode_action(servo_id)
        if servo_id == p.BROADCAST_ID:
            self._write(packet, servo_id=None)
        else:
            self._request(servo_id, packet, expect_len=0, deadline=deadline)

    def factory_reset(self, servo_id: int, mode: int = p.FACTORY_RESET_EXCEPT_ID_BAUD, *,
                      deadline: float | None = None) -> None:
        """FACTORY_RESET (0xFF everything, 0x01 all but the ID, 0x02 all but ID and baud rate). The servo
        reboots: :meth:`wait_for_ping` before talking to it again."""
        packet = p.encode_factory_reset(servo_id, mode)
        if servo_id == p.BROADCAST_ID:
            self._write(packet, servo_id=None)
        else:
            self._request(servo_id, packet, expect_len=0, deadline=deadline)

    def clear_multi_turn(self, servo_id: int, *, deadline: float | None = None) -> None:
        """CLEAR the multi-turn count (Present Position back within one turn); the servo must stand still
        (else ServoError with Result Fail)."""
        self._request(servo_id, p.encode_clear(servo_id), expect_len=0, deadline=deadline)

    def bulk_write(self, values: Mapping[int, tuple[ItemLike, int]]) -> None:
        """BULK_WRITE: per servo its own ``(item, value)`` in one broadcast packet (no reply)."""
        if not values:
            return
        entries = []
        for servo_id, (item, value) in values.items():
            it = t.item(item)
            entries.append((servo_id, it.address, it.encode(value)))
            self._stat(servo_id).tx += 1
        self._write(p.encode_bulk_write(entries), servo_id=None)

    def bulk_read(self, requests: Mapping[int, SpanLike], *, deadline: float | None = None,
                  fast: bool = False) -> dict[int, int | tuple[int, ...]]:
        """BULK_READ (or with ``fast`` FAST_BULK_READ): per servo its own item or span. Returns
        ``{id: value}`` (``{id: tuple}`` for a span of several items)."""
        spans = {i: t.as_span(s) for i, s in requests.items()}
        ids = list(spans)
        lengths = {i: sp.size for i, sp in spans.items()}
        entries = [(i, sp.address, sp.size) for i, sp in spans.items()]
        encode = p.encode_fast_bulk_read if fast else p.encode_bulk_read
        raw: dict[int, bytes] = {}
        missing = list(ids)
        deadline_total = self._deadline_total(deadline)
        last: BusError | None = None
        for _attempt in range(1 + self.retries):
            if not missing or (last is not None and time.monotonic() >= deadline_total):
                break
            asked = ids if fast else missing  # a fast reply is all-or-nothing
            for servo_id in asked:
                self._stat(servo_id).tx += 1
            got, last = self._transact(encode([e for e in entries if e[0] in asked]), asked, lengths, fast=fast,
                                       deadline_total=deadline_total)
            raw.update(got)
            missing = [i for i in ids if i not in raw]
        if missing:
            assert last is not None
            raise last
        out: dict[int, int | tuple[int, ...]] = {}
        for i, sp in spans.items():
            out[i] = sp.items[0].decode(raw[i]) if len(sp.items) == 1 else sp.decode(raw[i])
        return out

    def enable_torque(self, ids: Iterable[int]) -> None:
        """Torque Enable = 1 on every listed servo (one Sync Write)."""
        self.sync_write("torque_enable", {i: 1 for i in ids})

    def disable_torque(self, ids: Iterable[int]) -> None:
        """Torque Enable = 0 on every listed servo (one Sync Write)."""
        self.sync_write("torque_enable", {i: 0 for i in ids})

    # --- internals --------------------------------------------------------------------------------

    def _stat(self, servo_id: int) -> ServoStats:
        stats = self.stats.get(servo_id)
        if stats is None:
            stats = self.stats[servo_id] = ServoStats()
        return stats

    @staticmethod
    def _decode_span(asked: SpanLike, sp: t.Span, raw: dict[int, bytes]) -> dict[int, int] | dict[int, tuple[int, ...]]:
        """One item asked (a name or a :class:`~tables.ControlItem`): its value per servo; else a tuple."""
        if isinstance(asked, str | t.ControlItem):
            only = sp.items[0]
            return {i: only.decode(data) for i, data in raw.items()}
        return {i: sp.decode(data) for i, data in raw.items()}

    def _require_serial(self) -> serial.SerialBase:
        if self._serial is None or not self._serial.is_open:
            raise BusConnectionError("bus is not connected (call connect())", port=self.port)
        return self._serial

    def _write(self, packet: bytes, servo_id: int | None) -> None:
        ser = self._require_serial()
        try:
            ser.reset_input_buffer()
            if self._fileno is not None:
                self._write_fd(self._fileno, packet, servo_id)
            else:
                ser.write(packet)
            self.last_write_s = time.monotonic()
        except serial.SerialTimeoutException as exc:
            raise BusTimeout(f"write of {len(packet)} bytes timed out", port=self.port, servo_id=servo_id) from exc
        except (serial.SerialException, OSError, termios.error) as exc:
            # termios.error: tcflush on a device that vanished (USB adapter unplugged) -- found by the
            # emulator's unplug fault; it is not an OSError and used to escape the driver.
            raise BusConnectionError(f"write failed: {exc}", port=self.port, servo_id=servo_id) from exc

    def _write_fd(self, fd: int, packet: bytes, servo_id: int | None) -> None:
        """Write all of ``packet`` to the (non-blocking) port, waiting for room at most ``timeout_s``.

        Not pyserial's ``write``: that raises a write timeout after a complete write whenever the call
        took longer than the timeout (a host descheduled for a moment), and the caller cannot tell
        whether the packet left. Here a timeout means bytes are still unsent."""
        view = memoryview(packet)
        end = time.monotonic() + self.timeout_s
        while view:
            try:
                n = os.write(fd, view)
            except BlockingIOError:
                n = 0
            view = view[n:]
            if view:
                left = end - time.monotonic()
                if left <= 0:
                    raise BusTimeout(f"write of {len(packet)} bytes timed out ({len(packet) - len(view)} sent)",
                                     port=self.port, servo_id=servo_id)
                select.select([], [fd], [], left)

    def _read_some(self, deadline: float) -> bytes:
        """Bytes available before ``deadline`` (possibly none); never blocks past it."""
        ser = self._require_serial()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return b""
        try:
            if self._fileno is not None:
                ready, _, _ = select.select([self._fileno], [], [], remaining)
                if not ready:
                    return b""
                return ser.read(max(1, ser.in_waiting))
            ser.timeout = remaining
            return ser.read(max(1, ser.in_waiting))
        except (serial.SerialException, OSError, termios.error) as exc:
            raise BusConnectionError(f"read failed: {exc}", port=self.port) from exc

    def _deadline_total(self, deadline: float | None) -> float:
        """The call's absolute deadline: the retry budget, cut short by the caller's ``deadline``."""
        budget = time.monotonic() + (1 + self.retries) * self.timeout_s
        return budget if deadline is None else min(budget, deadline)

    def _request(self, servo_id: int, packet: bytes, expect_len: int, deadline: float | None = None) -> bytes:
        """Unicast instruction -> the servo's status params (``expect_len`` bytes), with retries."""
        deadline_total = self._deadline_total(deadline)
        last: BusError | None = None
        for _attempt in range(1 + self.retries):
            if last is not None and time.monotonic() >= deadline_total:
                break
            self._stat(servo_id).tx += 1
            got, last = self._transact(packet, [servo_id], expect_len, fast=False, deadline_total=deadline_total)
            if servo_id in got:
                return got[servo_id]
        assert last is not None
        raise last

    def _transact(
        self,
        packet: bytes,
        ids: Sequence[int],
        expect_len: int | Mapping[int, int],
        *,
        fast: bool,
        deadline_total: float,
    ) -> tuple[dict[int, bytes], BusError | None]:
        """One attempt: send ``packet``, collect replies from ``ids``.

        Returns the replies received (``{id: params}``) and, if some are missing, the error saying why
        (timeout or CRC). A servo error is raised once the attempt is over (so no reply of this attempt
        is left in flight to be mistaken for the next one's): retrying cannot fix it.
        """
        self.parser.reset()
        self._write(packet, servo_id=ids[0] if len(ids) == 1 else None)
        deadline = min(time.monotonic() + self.timeout_s, deadline_total)
        pending = set(ids)
        got: dict[int, bytes] = {}
        servo_errors: list[ServoError] = []
        expected_packets = 1 if fast else len(ids)
        suspect: int | None = None
        received_packets = 0
        crc_failures = 0
        while pending and received_packets + crc_failures < expected_packets:
            chunk = self._read_some(deadline)
            expired = time.monotonic() >= deadline
            packets = self.parser.feed(chunk)
            if expired:
                if fast and pending:
                    suspect = self._fast_reply_cut_at(ids, expect_len)
                packets += self.parser.flush()
            for packet_ in packets:
                accept = self._accept_fast if fast else self._accept
                if accept(packet_, ids, expect_len, pending, got, servo_errors):
                    received_packets += 1
            for rejected in self.parser.pop_rejected():
                if rejected.reason != "crc":
                    continue
                crc_failures += 1
                # a corrupted Fast Sync Read reply (id 0xFE) belongs to every servo still pending
                blamed = sorted(pending) if fast and rejected.servo_id == p.BROADCAST_ID else [rejected.servo_id]
                for servo_id in blamed:
                    if servo_id in pending:
                        self._stat(servo_id).crc_errors += 1
                        self._stat(servo_id).last_error = "CRC mismatch"
            if expired:
                break
        if servo_errors:
            raise servo_errors[0]
        if not pending:
            return got, None
        missing = sorted(pending)
        if crc_failures:
            cause = f"reply failed the CRC check ({crc_failures} corrupted packet(s)); no valid reply from {missing}"
            return got, CRCError(cause, port=self.port, servo_id=missing[0])
        if fast:
            cause = f"timeout: no complete Fast Sync Read reply within {self.timeout_s * 1e3:.1f} ms for ids {missing}"
            if suspect is not None:
                cause += f"; the reply stopped at servo id {suspect} (it, or its cable, is the likely fault)"
            blamed = [suspect] if suspect is not None else missing
            culprit = suspect if suspect is not None else (missing[0] if len(missing) == 1 else None)
        else:
            cause = f"timeout: no status packet within {self.timeout_s * 1e3:.1f} ms from servo id(s) {missing}"
            blamed, culprit = missing, missing[0]
        for servo_id in blamed:
            self._stat(servo_id).timeouts += 1
            self._stat(servo_id).last_error = "timeout"
        return got, BusTimeout(cause, port=self.port, servo_id=culprit)

    def _fast_reply_cut_at(self, ids: Sequence[int], expect_len: int | Mapping[int, int]) -> int | None:
        """The id whose block is missing from a cut-short Fast Sync/Bulk Read reply left in the parser."""
        buf = self.parser.pending()
        if len(buf) < 8 or not buf.startswith(p.HEADER) or buf[4] != p.BROADCAST_ID or buf[7] != p.INST_STATUS:
            return None
        have, end = len(buf) - 8, 0
        for servo_id in ids:
            end += _length_of(expect_len, servo_id) + 4
            if end > have:
                return servo_id
        return None

    def _check_error(self, servo_id: int, error: int, servo_errors: list[ServoError]) -> None:
        if not error:
            return
        stats = self._stat(servo_id)
        stats.servo_errors += 1
        if error & p.ERROR_ALERT:
            self.alerts[servo_id] = error
        description = p.describe_status_error(error)
        stats.last_error = description
        if (error & 0x7F) or self.raise_on_alert:
            servo_errors.append(
                ServoError(f"status error 0x{error:02X}: {description}", error=error, port=self.port, servo_id=servo_id)
            )

    def _accept(
        self,
        packet: p.Packet,
        ids: Sequence[int],
        expect_len: int | Mapping[int, int],
        pending: set[int],
        got: dict[int, bytes],
        servo_errors: list[ServoError],
    ) -> bool:
        if not packet.is_status or packet.servo_id not in pending:
            return False  # an echo, a stale reply, or another servo's
        want = _length_of(expect_len, packet.servo_id)
        if len(packet.params) != want and not (packet.error & 0x7F):
            # most likely a late reply to an earlier, different request: ignore it
            self._stat(packet.servo_id).last_error = f"ignored status with {len(packet.params)} bytes (expected {want})"
            return False
        pending.discard(packet.servo_id)
        self._stat(packet.servo_id).rx_ok += 1
        self._check_error(packet.servo_id, packet.error, servo_errors)
        got[packet.servo_id] = packet.params
        return True

    def _accept_fast(
        self,
        packet: p.Packet,
        ids: Sequence[int],
        expect_len: int | Mapping[int, int],
        pending: set[int],
        got: dict[int, bytes],
        servo_errors: list[ServoError],
    ) -> bool:
        if not packet.is_fast_reply:
            return False
        try:
            if isinstance(expect_len, int):
                blocks = p.decode_fast_sync_read(packet, expect_len)
            else:
                blocks = p.decode_fast_bulk_read(packet, [expect_len[i] for i in ids])
        except ProtocolError:
            return False  # a late reply to an earlier fast read of another span
        if [b.servo_id for b in blocks] != list(ids):
            return False
        for block in blocks:
            self._stat(block.servo_id).rx_ok += 1
            self._check_error(block.servo_id, block.error, servo_errors)
            pending.discard(block.servo_id)
            got[block.servo_id] = block.data
        return True


def _length_of(expect_len: int | Mapping[int, int], servo_id: int) -> int:
    return expect_len if isinstance(expect_len, int) else expect_len.get(servo_id, -1)


def wire_time_s(n_bytes: int, baudrate: int = 4_000_000, bits_per_byte: int = 10) -> float:
    """Time [s] to shift ``n_bytes`` over a UART at ``baudrate`` (8N1 = 10 bits per byte)."""
    return n_bytes * bits_per_byte / baudrate
