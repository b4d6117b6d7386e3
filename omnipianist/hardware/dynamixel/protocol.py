"""Dynamixel Protocol 2.0 codec: CRC-16, byte stuffing, packet encode/decode, incremental parser.

Pure functions and one small stateful class (:class:`PacketParser`); no I/O. Wire format::

    FF FF FD 00 | ID | LEN_L LEN_H | INST | PARAMS... | CRC_L CRC_H

``LEN`` counts INST + (stuffed) PARAMS + CRC. The CRC covers everything from the first header byte up to
the last parameter byte, *after* stuffing. Stuffing inserts an ``FD`` after every ``FF FF FD`` in the
INST+PARAMS region so that a header can never appear inside a packet. Status packets have INST 0x55 and
an ERROR byte before their parameters.

Fast Sync Read (0x8A) is answered by ONE packet, id 0xFE, built by all servos in turn::

    FF FF FD 00 FE LEN 55 | ERR1 ID1 DATA1 CRC1 | ERR2 ID2 DATA2 CRC2 | ... | ERRn IDn DATAn CRC

Each intermediate CRCk is the running CRC of the packet up to that point (the servos use it among
themselves); the last one is the packet CRC. That reply is NOT byte-stuffed (e-manual, Fast Sync Read).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from omnipianist.hardware.errors import CRCError, ProtocolError

HEADER = b"\xff\xff\xfd\x00"
BROADCAST_ID = 0xFE
MAX_ID = 0xFC
"""Largest unicast servo id (0..252)."""
MAX_LENGTH = 1024
"""Largest LEN field the parser accepts; longer candidates are treated as garbage."""

INST_PING = 0x01
INST_READ = 0x02
INST_WRITE = 0x03
INST_REG_WRITE = 0x04
INST_ACTION = 0x05
INST_FACTORY_RESET = 0x06
INST_REBOOT = 0x08
INST_CLEAR = 0x10
INST_STATUS = 0x55
INST_SYNC_READ = 0x82
INST_SYNC_WRITE = 0x83
INST_FAST_SYNC_READ = 0x8A
INST_BULK_READ = 0x92
INST_BULK_WRITE = 0x93
INST_FAST_BULK_READ = 0x9A

INSTRUCTION_NAMES = {
    INST_PING: "PING",
    INST_READ: "READ",
    INST_WRITE: "WRITE",
    INST_REG_WRITE: "REG_WRITE",
    INST_ACTION: "ACTION",
    INST_FACTORY_RESET: "FACTORY_RESET",
    INST_REBOOT: "REBOOT",
    INST_CLEAR: "CLEAR",
    INST_STATUS: "STATUS",
    INST_SYNC_READ: "SYNC_READ",
    INST_SYNC_WRITE: "SYNC_WRITE",
    INST_FAST_SYNC_READ: "FAST_SYNC_READ",
    INST_BULK_READ: "BULK_READ",
    INST_BULK_WRITE: "BULK_WRITE",
    INST_FAST_BULK_READ: "FAST_BULK_READ",
}

FACTORY_RESET_ALL = 0xFF
"""Factory Reset parameter: reset everything (ID back to 1, Baud Rate back to 57600)."""
FACTORY_RESET_EXCEPT_ID = 0x01
"""Factory Reset parameter: reset everything but the ID."""
FACTORY_RESET_EXCEPT_ID_BAUD = 0x02
"""Factory Reset parameter: reset everything but the ID and the Baud Rate."""
FACTORY_RESET_MODES = (FACTORY_RESET_ALL, FACTORY_RESET_EXCEPT_ID, FACTORY_RESET_EXCEPT_ID_BAUD)
CLEAR_MULTI_TURN = bytes([0x01, 0x44, 0x58, 0x4C, 0x22])
"""Clear (0x10) parameters that reset the multi-turn revolution count (0x01 then the fixed key "DXL\"")."""

ERROR_ALERT = 0x80
"""Status error bit 7: the servo has a hardware error (see Hardware Error Status, address 70)."""
ERROR_NUMBERS = {
    0x01: "result fail",
    0x02: "instruction error",
    0x03: "CRC error",
    0x04: "data range error",
    0x05: "data length error",
    0x06: "data limit error",
    0x07: "access error",
}
"""Status error bits 0-6 (an error number, not a bit field)."""
ERR_RESULT_FAIL = 0x01
ERR_INSTRUCTION = 0x02
ERR_CRC = 0x03
ERR_DATA_RANGE = 0x04
ERR_DATA_LENGTH = 0x05
ERR_DATA_LIMIT = 0x06
ERR_ACCESS = 0x07


def describe_status_error(error: int) -> str:
    """Human-readable meaning of a status packet's error byte."""
    parts = []
    number = error & 0x7F
    if number:
        parts.append(ERROR_NUMBERS.get(number, f"unknown error number 0x{number:02X}"))
    if error & ERROR_ALERT:
        parts.append("hardware alert (read Hardware Error Status, address 70)")
    return "; ".join(parts) if parts else "no error"


# --- CRC-16 (poly 0x8005, init 0, no reflection, no final xor) ---------------------------------------


def _make_crc_table(poly: int = 0x8005) -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ poly) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _make_crc_table()


def crc16(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-16 of ``data`` (poly 0x8005, init 0, MSB first); pass ``crc`` to continue a running CRC."""
    table = _CRC_TABLE
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ b]
    return crc


# --- byte stuffing --------------------------------------------------------------------------------


def stuff(payload: bytes) -> bytes:
    """Insert ``FD`` after every ``FF FF FD`` in ``payload`` (the INST+PARAMS region)."""
    if b"\xff\xff\xfd" not in payload:
        return bytes(payload)
    out = bytearray()
    for b in payload:
        out.append(b)
        if b == 0xFD and len(out) >= 3 and out[-2] == 0xFF and out[-3] == 0xFF:
            out.append(0xFD)
    return bytes(out)


def unstuff(stuffed: bytes) -> bytes:
    """Inverse of :func:`stuff`: drop the ``FD`` that follows each ``FF FF FD``.

    Lenient on malformed input (an ``FF FF FD`` not followed by ``FD`` is kept as is); the CRC is what
    guards integrity.
    """
    if b"\xff\xff\xfd" not in stuffed:
        return bytes(stuffed)
    out = bytearray()
    skip = False
    for b in stuffed:
        if skip:
            skip = False
            if b == 0xFD:
                continue
        out.append(b)
        if b == 0xFD and len(out) >= 3 and out[-2] == 0xFF and out[-3] == 0xFF:
            skip = True
    return bytes(out)


# --- packets --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Packet:
    """One decoded packet.

    Attributes:
        servo_id: the packet's ID field (0xFE for broadcast and for Fast Sync Read replies).
        instruction: INST byte (0x55 for status packets).
        params: unstuffed parameters; for status packets WITHOUT the error byte.
        error: the status error byte (0 for instruction packets).
        raw: the packet exactly as it was on the wire.
    """

    servo_id: int
    instruction: int
    params: bytes
    error: int = 0
    raw: bytes = b""

    @property
    def is_status(self) -> bool:
        return self.instruction == INST_STATUS

    @property
    def is_fast_reply(self) -> bool:
        """A Fast Sync Read reply (status from the broadcast id, not byte-stuffed)."""
        return self.instruction == INST_STATUS and self.servo_id == BROADCAST_ID


def _check_id(servo_id: int, *, broadcast_ok: bool) -> None:
    if not (0 <= servo_id <= MAX_ID or (broadcast_ok and servo_id == BROADCAST_ID)):
        raise ProtocolError(f"servo id {servo_id} outside 0..{MAX_ID}", servo_id=servo_id)


def encode_packet(servo_id: int, instruction: int, params: bytes = b"", *, stuffing: bool = True) -> bytes:
    """Frame INST+PARAMS for ``servo_id``: header, length, stuffing, CRC."""
    _check_id(servo_id, broadcast_ok=True)
    payload = bytes([instruction]) + bytes(params)
    if stuffing:
        payload = stuff(payload)
    length = len(payload) + 2
    if length > MAX_LENGTH:
        raise ProtocolError(f"packet too long: LEN {length} > {MAX_LENGTH}", servo_id=servo_id)
    body = HEADER + bytes([servo_id, length & 0xFF, length >> 8]) + payload
    return body + crc16(body).to_bytes(2, "little")


def encode_status(servo_id: int, error: int = 0, params: bytes = b"") -> bytes:
    """A servo's status packet (what a servo sends back)."""
    return encode_packet(servo_id, INST_STATUS, bytes([error & 0xFF]) + bytes(params))


def _u16(value: int) -> bytes:
    return int(value).to_bytes(2, "little")


def encode_ping(servo_id: int) -> bytes:
    """PING instruction (0x01); the reply carries model number (2 bytes) and firmware version (1 byte)."""
    return encode_packet(servo_id, INST_PING)


def encode_read(servo_id: int, address: int, length: int) -> bytes:
    """READ instruction (0x02): ``length`` bytes from ``address``."""
    _check_id(servo_id, broadcast_ok=False)
    return encode_packet(servo_id, INST_READ, _u16(address) + _u16(length))


def encode_write(servo_id: int, address: int, data: bytes) -> bytes:
    """WRITE instruction (0x03): ``data`` at ``address``."""
    return encode_packet(servo_id, INST_WRITE, _u16(address) + bytes(data))


def encode_reboot(servo_id: int) -> bytes:
    """REBOOT instruction (0x08)."""
    return encode_packet(servo_id, INST_REBOOT)


def encode_reg_write(servo_id: int, address: int, data: bytes) -> bytes:
    """REG_WRITE instruction (0x04): like WRITE, but held until an ACTION (Registered Instruction = 1)."""
    return encode_packet(servo_id, INST_REG_WRITE, _u16(address) + bytes(data))


def encode_action(servo_id: int = BROADCAST_ID) -> bytes:
    """ACTION instruction (0x05): execute the registered REG_WRITE (usually broadcast)."""
    return encode_packet(servo_id, INST_ACTION)


def encode_factory_reset(servo_id: int, mode: int = FACTORY_RESET_EXCEPT_ID_BAUD) -> bytes:
    """FACTORY_RESET instruction (0x06) with one parameter (:data:`FACTORY_RESET_MODES`)."""
    if mode not in FACTORY_RESET_MODES:
        raise ProtocolError(f"factory reset mode 0x{mode:02X} is not one of 0xFF, 0x01, 0x02", servo_id=servo_id)
    return encode_packet(servo_id, INST_FACTORY_RESET, bytes([mode]))


def encode_clear(servo_id: int, params: bytes = CLEAR_MULTI_TURN) -> bytes:
    """CLEAR instruction (0x10): by default reset the multi-turn count (servo must be standing still)."""
    return encode_packet(servo_id, INST_CLEAR, bytes(params))


def _ids_bytes(ids: Iterable[int]) -> bytes:
    ids = list(ids)
    for i in ids:
        _check_id(i, broadcast_ok=False)
    if len(set(ids)) != len(ids):
        raise ProtocolError(f"duplicate servo ids in {ids}")
    return bytes(ids)


def encode_sync_read(address: int, length: int, ids: Sequence[int]) -> bytes:
    """SYNC_READ instruction (0x82, broadcast): each listed servo replies with its own status packet."""
    return encode_packet(BROADCAST_ID, INST_SYNC_READ, _u16(address) + _u16(length) + _ids_bytes(ids))


def encode_fast_sync_read(address: int, length: int, ids: Sequence[int]) -> bytes:
    """FAST_SYNC_READ instruction (0x8A, broadcast): one combined reply (see module docstring)."""
    return encode_packet(BROADCAST_ID, INST_FAST_SYNC_READ, _u16(address) + _u16(length) + _ids_bytes(ids))


def encode_sync_write(address: int, length: int, data: Mapping[int, bytes]) -> bytes:
    """SYNC_WRITE instruction (0x83, broadcast, no reply): ``data[id]`` (``length`` bytes) per servo."""
    params = bytearray(_u16(address) + _u16(length))
    _ids_bytes(data)
    for servo_id, chunk in data.items():
        if len(chunk) != length:
            raise ProtocolError(f"sync write data is {len(chunk)} bytes, expected {length}", servo_id=servo_id)
        params.append(servo_id)
        params += chunk
    return encode_packet(BROADCAST_ID, INST_SYNC_WRITE, bytes(params))


def _bulk_entries(entries: Sequence[tuple[int, int, int]]) -> bytes:
    ids = [servo_id for servo_id, _, _ in entries]
    params = bytearray()
    _ids_bytes(ids)
    for servo_id, address, length in entries:
        params += bytes([servo_id]) + _u16(address) + _u16(length)
    return bytes(params)


def encode_bulk_read(entries: Sequence[tuple[int, int, int]]) -> bytes:
    """BULK_READ instruction (0x92, broadcast): ``(servo_id, address, length)`` per servo, each its own
    item; the servos answer one status packet each, in the listed order."""
    return encode_packet(BROADCAST_ID, INST_BULK_READ, _bulk_entries(entries))


def encode_fast_bulk_read(entries: Sequence[tuple[int, int, int]]) -> bytes:
    """FAST_BULK_READ instruction (0x9A, broadcast): as Bulk Read, answered by one combined packet."""
    return encode_packet(BROADCAST_ID, INST_FAST_BULK_READ, _bulk_entries(entries))


def encode_bulk_write(entries: Sequence[tuple[int, int, bytes]]) -> bytes:
    """BULK_WRITE instruction (0x93, broadcast, no reply): ``(servo_id, address, data)`` per servo."""
    params = bytearray()
    _ids_bytes([servo_id for servo_id, _, _ in entries])
    for servo_id, address, data in entries:
        params += bytes([servo_id]) + _u16(address) + _u16(len(data)) + bytes(data)
    return encode_packet(BROADCAST_ID, INST_BULK_WRITE, bytes(params))


def encode_fast_sync_read_reply(blocks: Sequence[tuple[int, int, bytes]]) -> bytes:
    """The combined Fast Sync Read reply for ``(servo_id, error, data)`` blocks, in order (servo side).

    Not byte-stuffed; each block but the last ends with the running CRC of the packet so far.
    """
    if not blocks:
        raise ProtocolError("fast sync read reply needs at least one block")
    body_len = sum(4 + len(data) for _, _, data in blocks)
    length = 1 + body_len
    out = bytearray(HEADER + bytes([BROADCAST_ID, length & 0xFF, length >> 8, INST_STATUS]))
    crc = crc16(out)
    for servo_id, error, data in blocks:
        block = bytes([error & 0xFF, servo_id]) + bytes(data)
        out += block
        crc = crc16(block, crc)
        out += crc.to_bytes(2, "little")
        crc = crc16(out[-2:], crc)
    return bytes(out)


@dataclass(frozen=True)
class FastReadBlock:
    """One servo's part of a Fast Sync Read reply."""

    servo_id: int
    error: int
    data: bytes


def decode_fast_sync_read(packet: Packet, length: int) -> list[FastReadBlock]:
    """Split a Fast Sync Read reply into per-servo blocks of ``length`` data bytes each.

    Only the packet's final CRC is authoritative (checked by the parser / :func:`decode_packet`);
    intermediate CRCs are skipped, as the e-manual recommends. Raises ProtocolError on a bad layout.
    """
    if not packet.is_fast_reply:
        raise ProtocolError(
            f"not a fast sync read reply (id 0x{packet.servo_id:02X}, inst 0x{packet.instruction:02X})",
            servo_id=packet.servo_id,
        )
    body = bytes([packet.error]) + packet.params  # ERR1 ID1 DATA1 CRC1 ... ERRn IDn DATAn
    stride = length + 4
    if (len(body) + 2) % stride:
        raise ProtocolError(f"fast sync read reply of {len(body) + 2} body bytes is not a multiple of {stride}")
    blocks = []
    for start in range(0, len(body), stride):
        error, servo_id = body[start], body[start + 1]
        blocks.append(FastReadBlock(servo_id, error, body[start + 2 : start + 2 + length]))
    return blocks


def decode_fast_bulk_read(packet: Packet, lengths: Sequence[int]) -> list[FastReadBlock]:
    """Split a Fast Bulk Read reply into blocks of ``lengths[k]`` data bytes (one per listed servo).

    Same layout as the Fast Sync Read reply, but each block has its own length. Raises ProtocolError on a
    bad layout.
    """
    if not packet.is_fast_reply:
        raise ProtocolError(
            f"not a fast bulk read reply (id 0x{packet.servo_id:02X}, inst 0x{packet.instruction:02X})",
            servo_id=packet.servo_id,
        )
    body = bytes([packet.error]) + packet.params
    if len(body) + 2 != sum(4 + n for n in lengths):
        raise ProtocolError(f"fast bulk read reply of {len(body) + 2} body bytes does not fit lengths {list(lengths)}")
    blocks, start = [], 0
    for n in lengths:
        blocks.append(FastReadBlock(body[start + 1], body[start], body[start + 2 : start + 2 + n]))
        start += n + 4
    return blocks


# --- decoding -------------------------------------------------------------------------------------


def _frame(buf: bytes | bytearray, start: int = 0) -> tuple[str, int]:
    """Classify a candidate packet at ``buf[start:]`` (which begins with HEADER).

    Returns ``(state, total_length)`` where state is ``"short"`` (need more bytes), ``"bad"`` (impossible
    header fields), ``"crc"`` (complete, CRC mismatch) or ``"ok"``.
    """
    if len(buf) - start < 7:
        return "short", 0
    servo_id = buf[start + 4]
    length = buf[start + 5] | (buf[start + 6] << 8)
    if servo_id > BROADCAST_ID or servo_id == 0xFD or length < 3 or length > MAX_LENGTH:
        return "bad", 0
    total = 7 + length
    if len(buf) - start < total:
        return "short", total
    received = buf[start + total - 2] | (buf[start + total - 1] << 8)
    if crc16(memoryview(buf)[start : start + total - 2]) != received:
        return "crc", total
    return "ok", total


def _build(raw: bytes) -> Packet:
    servo_id, instruction = raw[4], raw[7]
    region = raw[8:-2]
    fast_reply = instruction == INST_STATUS and servo_id == BROADCAST_ID
    if not fast_reply:
        region = unstuff(region)
    if instruction == INST_STATUS:
        if not region:
            raise ProtocolError("status packet without an error byte", servo_id=servo_id)
        return Packet(servo_id, instruction, bytes(region[1:]), region[0], raw)
    return Packet(servo_id, instruction, bytes(region), 0, raw)


def decode_packet(raw: bytes) -> Packet:
    """Decode exactly one complete packet; raises CRCError or ProtocolError."""
    raw = bytes(raw)
    if not raw.startswith(HEADER):
        raise ProtocolError(f"packet does not start with the header: {raw[:4].hex(' ')}")
    state, total = _frame(raw)
    if state == "crc":
        raise CRCError(f"CRC mismatch in {raw.hex(' ')}", servo_id=raw[4])
    if state != "ok" or total != len(raw):
        raise ProtocolError(f"malformed packet ({state}, {len(raw)} bytes): {raw.hex(' ')}")
    return _build(raw)


def decode_status(raw: bytes) -> Packet:
    """Decode one status packet; raises CRCError, or ProtocolError if it is not a status packet."""
    packet = decode_packet(raw)
    if not packet.is_status:
        raise ProtocolError(f"expected a status packet, got instruction 0x{packet.instruction:02X}")
    return packet


@dataclass
class ParserStats:
    """What the parser had to throw away (cumulative)."""

    packets: int = 0
    discarded_bytes: int = 0
    crc_errors: int = 0
    truncated: int = 0
    malformed: int = 0


@dataclass(frozen=True)
class Rejected:
    """A candidate packet the parser dropped, for attributing errors to a servo.

    Attributes:
        servo_id: the candidate's ID byte (untrustworthy: it may itself be corrupted).
        reason: ``"crc"``, ``"truncated"`` or ``"malformed"``.
    """

    servo_id: int
    reason: str


class PacketParser:
    """Incremental Protocol 2.0 packet parser that resynchronises on garbage.

    ``feed(chunk)`` accepts any byte chunks and returns the complete, CRC-valid packets found so far.
    Stray bytes before a header are skipped; a candidate whose CRC fails is dropped one byte at a time
    (so a real header inside it is found); a truncated candidate is abandoned as soon as a complete valid
    packet starts inside it. ``flush()`` abandons whatever incomplete candidate remains (end of input or
    timeout). The parser never raises on input bytes, and each call is O(bytes buffered).
    """

    def __init__(self, max_buffer: int = 8 * MAX_LENGTH) -> None:
        self._buf = bytearray()
        self._max_buffer = max_buffer
        self.stats = ParserStats()
        self._rejected: list[Rejected] = []

    def reset(self) -> None:
        """Forget buffered bytes (counted as discarded) and pending rejections."""
        self.stats.discarded_bytes += len(self._buf)
        self._buf.clear()
        self._rejected.clear()

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a packet."""
        return len(self._buf)

    def pending(self) -> bytes:
        """Copy of the buffered, not yet complete bytes (for diagnostics such as a cut-short Fast Sync Read)."""
        return bytes(self._buf)

    def pop_rejected(self) -> list[Rejected]:
        """Candidates dropped since the last call (CRC failures, truncations, malformed status)."""
        out, self._rejected = self._rejected, []
        return out

    def feed(self, data: bytes | bytearray | memoryview) -> list[Packet]:
        """Add bytes; return the packets completed by them, in wire order."""
        self._buf += data
        return self._drain(final=False)

    def flush(self) -> list[Packet]:
        """Give up on an incomplete candidate at the front and return any packets behind it."""
        return self._drain(final=True)

    def _discard(self, n: int) -> None:
        del self._buf[:n]
        self.stats.discarded_bytes += n

    def _reject(self, reason: str) -> None:
        self._rejected.append(Rejected(self._buf[4] if len(self._buf) > 4 else -1, reason))
        if reason == "crc":
            self.stats.crc_errors += 1
        elif reason == "truncated":
            self.stats.truncated += 1
        else:
            self.stats.malformed += 1

    def _embedded_packet_start(self) -> int:
        """Start of the first complete, valid packet that begins inside the front candidate, or -1."""
        pos = self._buf.find(HEADER, 1)
        while pos != -1:
            if _frame(self._buf, pos)[0] == "ok":
                return pos
            pos = self._buf.find(HEADER, pos + 1)
        return -1

    def _drain(self, *, final: bool) -> list[Packet]:
        out: list[Packet] = []
        buf = self._buf
        while buf:
            start = buf.find(HEADER)
            if start == -1:
                # keep a possible partial header at the end
                keep = 0
                for k in (3, 2, 1):
                    if len(buf) >= k and buf[-k:] == HEADER[:k]:
                        keep = k
                        break
                if final:
                    keep = 0
                self._discard(len(buf) - keep)
                break
            if start:
                self._discard(start)
            state, total = _frame(buf)
            if state == "ok":
                raw = bytes(buf[:total])
                del buf[:total]
                try:
                    packet = _build(raw)
                except ProtocolError:
                    self.stats.malformed += 1
                    self._rejected.append(Rejected(raw[4], "malformed"))
                    self.stats.discarded_bytes += total
                    continue
                self.stats.packets += 1
                out.append(packet)
            elif state in ("bad", "crc"):
                if state == "crc":
                    self._reject("crc")
                self._discard(1)
            else:  # short
                embedded = self._embedded_packet_start()
                if embedded != -1:
                    self._reject("truncated")
                    self._discard(embedded)
                    continue
                if final or len(buf) > self._max_buffer:
                    if len(buf) >= 7:
                        self._reject("truncated")
                    self._discard(1)
                    continue
                break
        return out
