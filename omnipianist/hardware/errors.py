"""Errors raised by the hardware layer. Each names the port and, when known, the servo id and the cause."""

from __future__ import annotations

from omnipianist.errors import OmnipianistError


class BusError(OmnipianistError):
    """A servo-bus operation failed.

    Attributes:
        port: serial port (or URL) of the bus, ``None`` for pure codec errors.
        servo_id: servo the failure is attributed to, ``None`` when it cannot be attributed.
        cause: short human-readable cause.
    """

    def __init__(self, cause: str, *, port: str | None = None, servo_id: int | None = None) -> None:
        self.port = port
        self.servo_id = servo_id
        self.cause = cause
        where = []
        if port is not None:
            where.append(f"port {port}")
        if servo_id is not None:
            where.append(f"servo id {servo_id}")
        prefix = f"[{', '.join(where)}] " if where else ""
        super().__init__(f"{prefix}{cause}")


class BusConnectionError(BusError):
    """The port could not be opened, was closed, or the bus is not connected."""


class BusTimeout(BusError):
    """No complete, valid reply arrived within the time budget (after all retries)."""


TimeoutError_ = BusTimeout
"""Alias kept for callers that spell it the brief's way; prefer :class:`BusTimeout`."""


class CRCError(BusError):
    """A reply arrived but its CRC-16 did not match (after all retries)."""


class ProtocolError(BusError):
    """Bytes that pass the CRC but do not form the expected packet (wrong length, id, instruction)."""


class ServoError(BusError):
    """The servo answered with a non-zero error byte in its status packet.

    Attributes:
        error: the raw status error byte (bit 7 = hardware alert, bits 0-6 = error number).
    """

    def __init__(self, cause: str, *, error: int, port: str | None = None, servo_id: int | None = None) -> None:
        self.error = error
        super().__init__(cause, port=port, servo_id=servo_id)


class ControlTableError(OmnipianistError):
    """An unknown control-table item, a value out of the item's range, or a non-contiguous span."""
