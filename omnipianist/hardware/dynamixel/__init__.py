"""Dynamixel Protocol 2.0: ``protocol`` (codec and parser), ``tables`` (control tables as data), ``bus``."""

from omnipianist.hardware.dynamixel.bus import DynamixelBus, ServoStats
from omnipianist.hardware.dynamixel.protocol import Packet, PacketParser, crc16
from omnipianist.hardware.dynamixel.tables import X_SERIES, XC330_M288, ControlItem, Span

__all__ = [
    "X_SERIES",
    "XC330_M288",
    "ControlItem",
    "DynamixelBus",
    "Packet",
    "PacketParser",
    "ServoStats",
    "Span",
    "crc16",
]
