"""Property-based fuzzing of the Protocol 2.0 codec and the stream resynchroniser (hypothesis).

Fast tier (default suite): a few hundred cases per property. Slow tier (``-m slow``): 10k cases each.
Properties: the parser never raises and never hangs on any byte stream; valid packets embedded in
garbage are all recovered in order (when the garbage cannot form a header); any chunking of a stream
gives the same packets; decoders raise only the project's error types.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnipianist.errors import OmnipianistError
from omnipianist.hardware.dynamixel import protocol as p

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ids = st.integers(0, p.MAX_ID)
params = st.binary(max_size=64)
instructions = st.sampled_from([p.INST_PING, p.INST_READ, p.INST_WRITE, p.INST_SYNC_WRITE, 0x42])
# (a status packet always carries its error byte: one without is malformed and rightly dropped)
packets = st.builds(p.encode_packet, ids, instructions, params) | st.builds(p.encode_status, ids, st.integers(0, 255), params)
# garbage that cannot contain (or complete) a header: no 0xFF bytes at all
garbage = st.binary(max_size=40).map(lambda b: b.replace(b"\xff", b"\x00"))


def _parse_in_chunks(stream: bytes, cuts: list[int]) -> list[p.Packet]:
    parser = p.PacketParser()
    out: list[p.Packet] = []
    pos = 0
    for cut in sorted(c % (len(stream) + 1) for c in cuts):
        out += parser.feed(stream[pos:cut])
        pos = max(pos, cut)
    out += parser.feed(stream[pos:])
    out += parser.flush()
    return out


def _check_parser_on_anything(data: bytes, cuts: list[int]) -> None:
    got = _parse_in_chunks(data, cuts)
    for packet in got:  # whatever it accepted is a real packet
        assert p.decode_packet(packet.raw).raw == packet.raw


def _check_recovery(pieces: list[tuple[bytes, bytes]], cuts: list[int]) -> None:
    stream = b"".join(g + pk for g, pk in pieces)
    got = _parse_in_chunks(stream, cuts)
    assert [x.raw for x in got] == [pk for _, pk in pieces]


def _check_decoders(data: bytes) -> None:
    for fn in (p.decode_packet, p.decode_status):
        try:
            fn(data)
        except OmnipianistError:
            pass
    try:
        packet = p.decode_packet(data)
        p.decode_fast_sync_read(packet, 4)
    except OmnipianistError:
        pass


@FAST
@given(st.binary(max_size=512), st.lists(st.integers(0, 600), max_size=8))
def test_parser_never_raises(data: bytes, cuts: list[int]) -> None:
    _check_parser_on_anything(data, cuts)


@FAST
@given(st.lists(st.tuples(garbage, packets), min_size=1, max_size=6), st.lists(st.integers(0, 2000), max_size=8))
def test_parser_recovers_every_packet_from_garbage(pieces: list[tuple[bytes, bytes]], cuts: list[int]) -> None:
    _check_recovery(pieces, cuts)


@FAST
@given(st.binary(max_size=300))
def test_decoders_raise_only_project_errors(data: bytes) -> None:
    _check_decoders(data)
    _check_decoders(p.HEADER + data)


@FAST
@given(packets, st.integers(0, 200), st.integers(0, 255))
def test_a_corrupted_byte_never_yields_a_wrong_packet(raw: bytes, where: int, flip: int) -> None:
    i = where % len(raw)
    bad = bytearray(raw)
    bad[i] ^= flip or 1
    got = _parse_in_chunks(bytes(bad), [])
    assert all(x.raw != bytes(bad) or p.crc16(x.raw[:-2]) == int.from_bytes(x.raw[-2:], "little") for x in got)
    assert raw not in [x.raw for x in got] or bytes(bad) == raw


@FAST
@given(st.lists(st.tuples(ids, st.integers(0, 255), st.binary(min_size=4, max_size=4)), min_size=1, max_size=16,
                unique_by=lambda b: b[0]))
def test_fast_sync_read_reply_round_trip(blocks: list[tuple[int, int, bytes]]) -> None:
    raw = p.encode_fast_sync_read_reply(blocks)
    (packet,) = p.PacketParser().feed(raw)
    assert [(b.servo_id, b.error, b.data) for b in p.decode_fast_sync_read(packet, 4)] == blocks


@pytest.mark.slow
@SLOW
@given(st.binary(max_size=512), st.lists(st.integers(0, 600), max_size=8))
def test_parser_never_raises_10k(data: bytes, cuts: list[int]) -> None:
    _check_parser_on_anything(data, cuts)


@pytest.mark.slow
@SLOW
@given(st.lists(st.tuples(garbage, packets), min_size=1, max_size=6), st.lists(st.integers(0, 2000), max_size=8))
def test_parser_recovers_every_packet_from_garbage_10k(pieces: list[tuple[bytes, bytes]], cuts: list[int]) -> None:
    _check_recovery(pieces, cuts)


@pytest.mark.slow
@SLOW
@given(st.binary(max_size=300))
def test_decoders_raise_only_project_errors_10k(data: bytes) -> None:
    _check_decoders(data)
    _check_decoders(p.HEADER + data)
