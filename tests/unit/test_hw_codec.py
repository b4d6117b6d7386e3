"""The Protocol 2.0 encoders of the instructions the emulator learnt (Reg Write, Action, Factory Reset,
Clear, broadcast Write, Bulk Read / Write, Fast Bulk Read) against reference packets.

The reference bytes were produced once by ROBOTIS's own ``dynamixel-sdk`` 4.1.0 (its PacketHandler and
GroupBulkRead / GroupBulkWrite writing into a capturing port) and are pasted here as constants, so this
test needs no SDK; the PING packet is the e-manual's example.
"""

from __future__ import annotations

import pytest

from omnipianist.hardware.dynamixel import protocol as p
from omnipianist.hardware.errors import ProtocolError

REFERENCE = {
    "ping 1 (e-manual)": ("ff ff fd 00 01 03 00 01 19 4e", lambda: p.encode_ping(1)),
    "reg write 1 goal_position 512": ("ff ff fd 00 01 09 00 04 74 00 00 02 00 00 b9 0e",
                                      lambda: p.encode_reg_write(1, 116, (512).to_bytes(4, "little"))),
    "action broadcast": ("ff ff fd 00 fe 03 00 05 2a c2", lambda: p.encode_action()),
    "factory reset 1 except id+baud": ("ff ff fd 00 01 04 00 06 02 ab e6", lambda: p.encode_factory_reset(1, 0x02)),
    "factory reset 1 all": ("ff ff fd 00 01 04 00 06 ff a6 64", lambda: p.encode_factory_reset(1, 0xFF)),
    "clear multi-turn 1": ("ff ff fd 00 01 08 00 10 01 44 58 4c 22 b1 dc", lambda: p.encode_clear(1)),
    "broadcast write led 1": ("ff ff fd 00 fe 06 00 03 41 00 01 3c 16", lambda: p.encode_write(p.BROADCAST_ID, 65, b"\x01")),
    "reboot 1": ("ff ff fd 00 01 03 00 08 2f 4e", lambda: p.encode_reboot(1)),
    "bulk read": ("ff ff fd 00 fe 0d 00 92 01 84 00 04 00 02 7e 00 0a 00 d7 b6",
                  lambda: p.encode_bulk_read([(1, 132, 4), (2, 126, 10)])),
    "fast bulk read": ("ff ff fd 00 fe 0d 00 9a 01 84 00 04 00 02 7e 00 0a 00 d4 9c",
                       lambda: p.encode_fast_bulk_read([(1, 132, 4), (2, 126, 10)])),
    "bulk write": ("ff ff fd 00 fe 12 00 93 01 74 00 04 00 00 08 00 00 02 41 00 01 00 01 6f e1",
                   lambda: p.encode_bulk_write([(1, 116, (2048).to_bytes(4, "little")), (2, 65, b"\x01")])),
    "sync read": ("ff ff fd 00 fe 09 00 82 7e 00 0a 00 01 02 38 92", lambda: p.encode_sync_read(126, 10, [1, 2])),
    "fast sync read": ("ff ff fd 00 fe 09 00 8a 84 00 04 00 01 02 4d 72", lambda: p.encode_fast_sync_read(132, 4, [1, 2])),
    "read 1 present_position": ("ff ff fd 00 01 07 00 02 84 00 04 00 1d 15", lambda: p.encode_read(1, 132, 4)),
}


@pytest.mark.parametrize("name", list(REFERENCE))
def test_encoder_matches_the_reference_packet(name: str) -> None:
    expected, build = REFERENCE[name]
    assert build().hex(" ") == expected
    packet = p.decode_packet(bytes.fromhex(expected))  # and the parser reads the reference back
    assert packet.raw == bytes.fromhex(expected)


def test_fast_bulk_read_reply_round_trip() -> None:
    blocks = [(1, 0, (4000).to_bytes(4, "little")), (2, 0x80, bytes(range(10)))]
    raw = p.encode_fast_sync_read_reply(blocks)  # the combined reply layout is the same for sync and bulk
    packet = p.decode_packet(raw)
    out = p.decode_fast_bulk_read(packet, [4, 10])
    assert [(b.servo_id, b.error, b.data) for b in out] == blocks
    with pytest.raises(ProtocolError, match="does not fit"):
        p.decode_fast_bulk_read(packet, [4, 9])


def test_bad_arguments_are_refused_with_a_clear_error() -> None:
    with pytest.raises(ProtocolError, match="factory reset mode 0x03"):
        p.encode_factory_reset(1, 3)
    with pytest.raises(ProtocolError, match="duplicate servo ids"):
        p.encode_bulk_read([(1, 132, 4), (1, 126, 2)])
    with pytest.raises(ProtocolError, match="outside 0..252"):
        p.encode_bulk_write([(300, 65, b"\x01")])


def test_a_header_inside_the_data_is_byte_stuffed() -> None:
    """Goal Position 0x00FDFFFF puts FF FF FD in the data: the e-manual's stuffing adds an FD and LEN
    counts it. (The Python dynamixel-sdk 4.1.0 sends this packet unstuffed -- its txPacket drops the list
    addStuffing returns -- so here the reference is the SDK's packet with the stuffing done by hand.)"""
    sdk_unstuffed = bytes.fromhex("ff ff fd 00 fe 11 00 83 74 00 04 00 01 00 08 00 00 02 ff ff fd 00")
    body = sdk_unstuffed[:4] + bytes([0xFE, 0x12, 0x00]) + sdk_unstuffed[7:-1] + b"\xfd" + sdk_unstuffed[-1:]
    expected = body + p.crc16(body).to_bytes(2, "little")
    got = p.encode_sync_write(116, 4, {1: (2048).to_bytes(4, "little"), 2: bytes.fromhex("ff ff fd 00")})
    assert got == expected
    assert p.decode_packet(got).params[-4:] == bytes.fromhex("ff ff fd 00")  # unstuffed again on the way in
