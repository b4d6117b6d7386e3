"""Dynamixel Protocol 2.0 codec: CRC, stuffing, packet bytes vs the e-manual examples, parser resync."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnipianist.errors import OmnipianistError
from omnipianist.hardware.dynamixel import protocol as p
from omnipianist.hardware.dynamixel import tables as t
from omnipianist.hardware.errors import ControlTableError, CRCError, ProtocolError


def h(text: str) -> bytes:
    """Bytes from the e-manual's hex notation ("FF FF FD 00 ...")."""
    return bytes.fromhex(text)


def crc_bitwise(data: bytes) -> int:
    """Reference CRC-16 (poly 0x8005, init 0, MSB first), one bit at a time."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


# Bytes biased toward the ones that matter for framing.
framing_bytes = st.one_of(st.sampled_from([0xFF, 0xFD, 0x00, 0x55]), st.integers(0, 255))
payloads = st.lists(framing_bytes, max_size=64).map(bytes)


# --- CRC ------------------------------------------------------------------------------------------


def test_crc_check_value() -> None:
    assert p.crc16(b"123456789") == 0xFEE8


@given(st.binary(max_size=300))
def test_crc_table_matches_bitwise_reference(data: bytes) -> None:
    assert p.crc16(data) == crc_bitwise(data)


@given(st.binary(max_size=100), st.binary(max_size=100))
def test_crc_can_be_continued(a: bytes, b: bytes) -> None:
    assert p.crc16(b, p.crc16(a)) == p.crc16(a + b)


# --- stuffing -------------------------------------------------------------------------------------


def test_stuffing_example() -> None:
    assert p.stuff(h("01 FF FF FD 02")) == h("01 FF FF FD FD 02")
    assert p.unstuff(h("01 FF FF FD FD 02")) == h("01 FF FF FD 02")
    assert p.stuff(h("FF FF FD FD")) == h("FF FF FD FD FD")


@given(payloads)
def test_stuffing_round_trip(data: bytes) -> None:
    stuffed = p.stuff(data)
    assert p.unstuff(stuffed) == data
    assert p.HEADER not in stuffed
    assert len(stuffed) == len(data) + data.count(b"\xff\xff\xfd")


# --- encoding vs the e-manual examples -------------------------------------------------------------


def test_ping_matches_emanual() -> None:
    assert p.encode_ping(1) == h("FF FF FD 00 01 03 00 01 19 4E")
    status = p.decode_status(h("FF FF FD 00 01 07 00 55 00 06 04 26 65 5D"))
    assert (status.servo_id, status.error, status.params) == (1, 0, h("06 04 26"))  # model 1030, fw 38


def test_read_write_reboot_match_emanual() -> None:
    assert p.encode_read(1, 132, 4) == h("FF FF FD 00 01 07 00 02 84 00 04 00 1D 15")
    assert p.encode_write(1, 116, (512).to_bytes(4, "little")) == h("FF FF FD 00 01 09 00 03 74 00 00 02 00 00 CA 89")
    assert p.encode_reboot(1) == h("FF FF FD 00 01 03 00 08 2F 4E")
    assert p.encode_status(1) == h("FF FF FD 00 01 04 00 55 00 A1 0C")


def test_sync_write_matches_emanual() -> None:
    # Goal Position (116) = 150 on id 1 and 170 on id 2.
    expected = h("FF FF FD 00 FE 11 00 83 74 00 04 00") + h("01 96 00 00 00 02 AA 00 00 00") + h("82 87")
    packet = p.encode_sync_write(116, 4, {1: (150).to_bytes(4, "little"), 2: (170).to_bytes(4, "little")})
    assert packet == expected
    decoded = p.decode_packet(expected)
    assert (decoded.servo_id, decoded.instruction) == (p.BROADCAST_ID, p.INST_SYNC_WRITE)
    assert decoded.params == expected[8:-2]


def test_sync_read_matches_emanual() -> None:
    assert p.encode_sync_read(132, 4, [1, 2]) == h("FF FF FD 00 FE 09 00 82 84 00 04 00 01 02 CE FA")
    one = p.decode_status(h("FF FF FD 00 01 08 00 55 00 A6 00 00 00 8C C0"))
    two = p.decode_status(h("FF FF FD 00 02 08 00 55 00 1F 08 00 00 BA BE"))
    assert t.X_SERIES["present_position"].decode(one.params) == 166
    assert t.X_SERIES["present_position"].decode(two.params) == 2079


FAST_REPLY = (
    h("FF FF FD 00 FE 19 00 55")
    + h("00 03 A6 00 00 00 84 08")  # id 3: 166, running CRC
    + h("00 07 1F 08 00 00 16 CA")  # id 7: 2079, running CRC
    + h("00 04 FF 03 00 00 D1 9E")  # id 4: 1023, packet CRC
)


def test_fast_sync_read_matches_emanual() -> None:
    assert p.encode_fast_sync_read(132, 4, [3, 7, 4]) == h("FF FF FD 00 FE 0A 00 8A 84 00 04 00 03 07 04 20 F2")
    blocks = [(3, 0, (166).to_bytes(4, "little")), (7, 0, (2079).to_bytes(4, "little")), (4, 0, (1023).to_bytes(4, "little"))]
    assert p.encode_fast_sync_read_reply(blocks) == FAST_REPLY
    packet = p.decode_status(FAST_REPLY)
    assert packet.is_fast_reply
    decoded = p.decode_fast_sync_read(packet, 4)
    assert [(b.servo_id, b.error, int.from_bytes(b.data, "little")) for b in decoded] == [
        (3, 0, 166),
        (7, 0, 2079),
        (4, 0, 1023),
    ]


def test_fast_reply_is_not_unstuffed() -> None:
    # data FF FF FD FD would be "unstuffed" by a normal status decode; the fast reply keeps it verbatim
    reply = p.encode_fast_sync_read_reply([(1, 0, h("FF FF FD FD")), (2, 0x80, h("01 02 03 04"))])
    blocks = p.decode_fast_sync_read(p.decode_status(reply), 4)
    assert [(b.servo_id, b.error, b.data) for b in blocks] == [(1, 0, h("FF FF FD FD")), (2, 0x80, h("01 02 03 04"))]


def test_stuffed_packet_length_counts_stuffing() -> None:
    packet = p.encode_write(5, 116, h("FF FF FD 7F"))
    assert packet[5] == 10  # INST + addr(2) + data(4) + the stuffed FD + CRC(2)
    decoded = p.decode_packet(packet)
    assert decoded.params == h("74 00 FF FF FD 7F")


@given(st.integers(0, p.MAX_ID), st.sampled_from(sorted(p.INSTRUCTION_NAMES)), payloads, st.integers(0, 255))
def test_encode_decode_round_trip(servo_id: int, instruction: int, params: bytes, error: int) -> None:
    if instruction == p.INST_STATUS:
        decoded = p.decode_status(p.encode_status(servo_id, error, params))
        assert (decoded.servo_id, decoded.error, decoded.params) == (servo_id, error, params)
    else:
        decoded = p.decode_packet(p.encode_packet(servo_id, instruction, params))
        assert (decoded.servo_id, decoded.instruction, decoded.params) == (servo_id, instruction, params)


def test_status_error_byte_is_decoded() -> None:
    status = p.decode_status(p.encode_status(9, 0x80 | 0x07, b""))
    assert status.error == 0x87
    assert "access error" in p.describe_status_error(status.error)
    assert "hardware alert" in p.describe_status_error(status.error)


def test_decode_errors_are_project_errors() -> None:
    good = p.encode_ping(1)
    with pytest.raises(CRCError):
        p.decode_packet(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(ProtocolError):
        p.decode_packet(good[:-3])
    with pytest.raises(ProtocolError):
        p.decode_status(good)
    with pytest.raises(ProtocolError):
        p.encode_read(300, 0, 1)
    assert issubclass(CRCError, OmnipianistError) and issubclass(ProtocolError, OmnipianistError)


# --- parser ---------------------------------------------------------------------------------------

valid_packets = st.builds(
    lambda servo_id, inst, params, error: (
        p.encode_status(servo_id, error, params) if inst == p.INST_STATUS else p.encode_packet(servo_id, inst, params)
    ),
    st.integers(0, p.MAX_ID),
    st.sampled_from(sorted(p.INSTRUCTION_NAMES)),
    payloads,
    st.integers(0, 255),
)


def _truncated(packet_and_cut: tuple[bytes, int]) -> bytes:
    packet, cut = packet_and_cut
    return packet[: min(cut, len(packet) - 1)]


def _missing_tail_starts_with_ff(packet_and_cut: tuple[bytes, int]) -> bool:
    # A packet cut just before an FF byte is completed by the next packet's header: the wire is then
    # genuinely ambiguous (any parser accepts it), so the property excludes that case.
    packet, cut = packet_and_cut
    return packet[min(cut, len(packet) - 1)] == 0xFF


# Free-form garbage carries no full header; headers come from the fragments, truncated and corrupted packets.
garbage = st.one_of(
    st.binary(max_size=20).filter(lambda g: p.HEADER not in g),
    st.lists(framing_bytes, max_size=20).map(bytes).filter(lambda g: p.HEADER not in g),
    st.sampled_from([p.HEADER, p.HEADER[:3], p.HEADER[:2], b"\xff", p.HEADER + b"\x01\xff\xff"]),
    # a truncated packet, and a packet with a corrupted CRC
    st.tuples(valid_packets, st.integers(1, 40)).filter(lambda pc: not _missing_tail_starts_with_ff(pc)).map(_truncated),
    valid_packets.map(lambda pk: pk[:-1] + bytes([pk[-1] ^ 0x5A])),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(garbage, valid_packets), max_size=8), garbage, st.data())
def test_parser_recovers_exactly_the_valid_packets(items: list[tuple[bytes, bytes]], tail: bytes, data: st.DataObject) -> None:
    stream = b"".join(g + pk for g, pk in items) + tail
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    parser = p.PacketParser()
    out: list[p.Packet] = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        out += parser.feed(stream[prev:cut])
        prev = cut
    out += parser.flush()
    assert [pk.raw for pk in out] == [pk for _, pk in items]
    assert parser.buffered == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=64), garbage, valid_packets), max_size=12))
def test_parser_never_raises_or_hangs(chunks: list[bytes]) -> None:
    parser = p.PacketParser()
    for chunk in chunks:
        for packet in parser.feed(chunk):
            assert p.decode_packet(packet.raw).raw == packet.raw
    parser.flush()
    assert parser.buffered == 0


def test_parser_resync_cases() -> None:
    a, b = p.encode_status(1, 0, h("01 02")), p.encode_status(2, 0, h("03 04"))
    long = p.encode_status(3, 0, bytes(40))
    parser = p.PacketParser()
    # stray bytes, a corrupted packet, a truncated packet followed by a new header
    stream = h("00 13 FF FF") + a[:-1] + bytes([a[-1] ^ 0xFF]) + long[:20] + b
    assert [pk.servo_id for pk in parser.feed(stream)] == [2]
    assert parser.stats.crc_errors == 1 and parser.stats.truncated == 1
    assert {r.reason for r in parser.pop_rejected()} == {"crc", "truncated"}
    # a header split across chunks
    out = []
    for byte in a:
        out += parser.feed(bytes([byte]))
    assert [pk.raw for pk in out] == [a]


# --- tables ---------------------------------------------------------------------------------------


def test_control_table_facts() -> None:
    x = t.X_SERIES
    expected = {
        "model_number": (0, 2),
        "return_delay_time": (9, 1),
        "operating_mode": (11, 1),
        "current_limit": (38, 2),
        "torque_enable": (64, 1),
        "hardware_error_status": (70, 1),
        "bus_watchdog": (98, 1),
        "goal_current": (102, 2),
        "goal_position": (116, 4),
        "present_current": (126, 2),
        "present_velocity": (128, 4),
        "present_position": (132, 4),
    }
    assert {name: (x[name].address, x[name].size) for name in expected} == expected
    assert (t.XC330_M288, t.XL330_M288, t.XM430_W350) == (1240, 1200, 1020)
    assert t.MODELS[t.XC330_M288].current_ma_per_unit == 1.0


def test_units() -> None:
    assert t.ticks_to_rad(2048) == 0.0
    assert t.ticks_to_rad(3072) == pytest.approx(math.pi / 2)
    assert t.rad_to_ticks(-math.pi) == 0
    assert all(t.rad_to_ticks(t.ticks_to_rad(k)) == k for k in range(0, 4096, 7))
    assert t.velocity_to_rad_s(1) == pytest.approx(0.229 * 2 * math.pi / 60)
    assert t.current_to_ma(100) == 100.0
    assert t.current_to_ma(100, t.XM430_W350) == pytest.approx(269.0)


def test_span_and_item_errors() -> None:
    sp = t.span(["present_current", "present_velocity", "present_position"])
    assert (sp.address, sp.size) == (126, 10)
    data = (-5).to_bytes(2, "little", signed=True) + (7).to_bytes(4, "little") + (2048).to_bytes(4, "little")
    assert sp.decode(data) == (-5, 7, 2048)
    with pytest.raises(ControlTableError, match="not contiguous"):
        t.span(["present_current", "present_position"])
    with pytest.raises(ControlTableError, match="unknown"):
        t.item("goal_pos")
    with pytest.raises(ControlTableError, match="does not fit"):
        t.X_SERIES["torque_enable"].encode(256)
