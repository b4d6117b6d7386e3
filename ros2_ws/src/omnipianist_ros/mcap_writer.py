"""ROS 2 messages to MCAP with the ``mcap`` library: profile ``ros2``, schemas ``ros2msg``, messages ``cdr``
(the bytes rclpy's raw subscriptions and ``rclpy.serialization`` produce).

:class:`McapWriter` writes through :class:`mcap.writer.Writer` *un-chunked*: each record goes to the
file as it is added (no chunk held in memory), so :meth:`McapWriter.flush` (flush + fsync, the recorder
calls it every ``flush_period_s`` <= 1 s) puts every message received before it on disk; a crash loses
only what came after the last flush. :meth:`McapWriter.close` writes the summary (schemas, channels,
statistics) and footer; then any MCAP reader (``mcap.reader.make_reader``, ``mcap cat``, Foxglove)
reads the file. A file whose writer was killed has no footer: ``make_reader(f)`` on a seekable file
looks for the footer first and fails, so :func:`read_mcap` reads front to back with
:class:`mcap.reader.NonSeekingReader` and stops at the end of the last whole record
(``mcap recover`` rewrites such a file with a summary).

The schemas are the .msg files of the installed interface packages (``share/<pkg>/msg``), each
nested type's definition appended after a ``MSG: pkg/Type`` separator, as rosbag2 writes them.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from mcap.exceptions import EndOfFile
from mcap.reader import NonSeekingReader
from mcap.well_known import MessageEncoding, Profile, SchemaEncoding
from mcap.writer import MCAP0_MAGIC, CompressionType, Writer

MAGIC = MCAP0_MAGIC
LIBRARY = "omnipianist mcap_writer 2 (mcap-python)"
_PRIMITIVES = {"bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32",
               "uint32", "int64", "uint64", "string", "wstring"}
_SEPARATOR = "=" * 80


class SchemaError(LookupError):
    """A message definition (.msg) could not be found."""


def _msg_file(type_name: str) -> Path:
    pkg, _, name = type_name.partition("/msg/") if "/msg/" in type_name else type_name.partition("/")
    roots = [Path(sys.prefix) / "share"]
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            roots.append(Path(prefix) / "share")
    for root in roots:
        path = root / pkg / "msg" / f"{name}.msg"
        if path.is_file():
            return path
    raise SchemaError(f"no definition for {type_name} (looked for {pkg}/msg/{name}.msg under {[str(r) for r in roots]})")


def _dependencies(pkg: str, text: str) -> list[str]:
    deps = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        tokens = line.split()
        if len(tokens) < 2 or "=" in tokens[1]:
            continue  # a constant (TYPE NAME=VALUE)
        base = re.sub(r"\[.*\]$", "", tokens[0])
        base = re.sub(r"<=\d+$", "", base)
        if base in _PRIMITIVES:
            continue
        deps.append(base if "/" in base else f"{pkg}/{base}")
    return deps


def ros2msg_schema(type_name: str) -> str:
    """The ``ros2msg`` schema text of ``pkg/msg/Type`` (or ``pkg/Type``): its .msg file, then each
    nested type's definition after a ``MSG: pkg/Type`` separator (rosbag2's format)."""
    def short(t: str) -> str:
        return t.replace("/msg/", "/")

    root = short(type_name)
    text = _msg_file(root).read_text()
    out = [text.rstrip("\n")]
    seen = {root}
    queue = _dependencies(root.split("/")[0], text)
    while queue:
        dep = queue.pop(0)
        if dep in seen:
            continue
        seen.add(dep)
        dep_text = _msg_file(dep).read_text()
        out.append(f"{_SEPARATOR}\nMSG: {dep}\n{dep_text.rstrip(chr(10))}")
        queue.extend(_dependencies(dep.split("/")[0], dep_text))
    return "\n".join(out) + "\n"


class McapWriter:
    """``with McapWriter(path) as w: w.write(topic, type_name, cdr, t_ns)``; ``flush()`` makes it durable.

    Safe to call from several threads (one lock around the file)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._f: BinaryIO | None = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        # Un-chunked: no record waits in a chunk buffer, so a flush writes every message out.
        self._writer = Writer(self._f, use_chunking=False, compression=CompressionType.NONE,
                              enable_data_crcs=True)
        self._writer.start(profile=Profile.ROS2, library=LIBRARY)
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, tuple[int, str]] = {}
        self._seq: dict[int, int] = {}
        self.messages = 0

    def _file(self) -> BinaryIO:
        if self._f is None:
            raise ValueError(f"{self.path}: MCAP writer is closed")
        return self._f

    def channel(self, topic: str, type_name: str, metadata: dict[str, str] | None = None) -> int:
        """The channel id of ``topic`` (registered with its schema on first use). SchemaError if the
        type's .msg is not installed; ValueError if the topic was registered with another type."""
        with self._lock:
            return self._channel(topic, type_name, metadata)

    def _channel(self, topic: str, type_name: str, metadata: dict[str, str] | None) -> int:
        if topic in self._channels:
            cid, known = self._channels[topic]
            if known != type_name:
                raise ValueError(f"{self.path}: topic {topic} is {known}, not {type_name}")
            return cid
        self._file()
        sid = self._schemas.get(type_name)
        if sid is None:
            sid = self._writer.register_schema(type_name, SchemaEncoding.ROS2, ros2msg_schema(type_name).encode())
            self._schemas[type_name] = sid
        cid = self._writer.register_channel(topic, MessageEncoding.CDR, sid, metadata or {})
        self._channels[topic] = (cid, type_name)
        self._seq[cid] = 0
        return cid

    def write(self, topic: str, type_name: str, data: bytes, log_time_ns: int, publish_time_ns: int | None = None) -> None:
        """One CDR-serialised message of ``type_name`` (``pkg/msg/Type``) on ``topic``; times in ns."""
        with self._lock:
            cid = self._channel(topic, type_name, None)
            seq = self._seq[cid]
            self._seq[cid] = seq + 1
            pub = log_time_ns if publish_time_ns is None else publish_time_ns
            self._writer.add_message(cid, log_time_ns, bytes(data), pub, sequence=seq & 0xFFFFFFFF)
            self.messages += 1

    def flush(self) -> None:
        """Put everything written so far on the disk (flush + fsync)."""
        with self._lock:
            f = self._file()
            f.flush()
            os.fsync(f.fileno())

    def close(self) -> None:
        """Write the summary and footer, fsync and close (idempotent)."""
        with self._lock:
            if self._f is None:
                return
            f, self._f = self._f, None
            self._writer.finish()
            f.flush()
            os.fsync(f.fileno())
            f.close()

    def __enter__(self) -> McapWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ------------------------------------------------------------------------------------- reading back
class _WholeReads:
    """A file whose ``read(n)`` returns n bytes or nothing: mcap's stream reader then raises EndOfFile
    at a record cut short, instead of handing out the record's partial bytes."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        return data if n < 0 or len(data) == n else b""


@dataclass(frozen=True)
class RecordedMessage:
    topic: str
    type_name: str
    """``pkg/msg/Type`` (the schema's name)."""
    sequence: int
    log_time_ns: int
    publish_time_ns: int
    data: bytes
    """The CDR bytes (``rclpy.serialization.deserialize_message(data, Type)``)."""
    ros_msg: Any = None
    """With ``read_mcap(..., decode=True)``: the message decoded by ``mcap_ros2`` from the file's schema."""


@dataclass(frozen=True)
class McapContents:
    messages: list[RecordedMessage]
    """In file order (= receipt order for the recorder)."""
    complete: bool
    """The file ends with its footer (the writer was closed); False: cut short (writer killed or running)."""

    def topics(self) -> set[str]:
        return {m.topic for m in self.messages}

    def on(self, topic: str) -> list[RecordedMessage]:
        return [m for m in self.messages if m.topic == topic]


def read_mcap(path: str | Path, decode: bool = False) -> McapContents:
    """Every whole message of an MCAP file, complete or cut short (read front to back by
    :class:`mcap.reader.NonSeekingReader`, CRCs checked; ``decode`` decodes with ``mcap_ros2``)."""
    from mcap_ros2.decoder import DecoderFactory

    out: list[RecordedMessage] = []
    with open(path, "rb") as f:
        reader = NonSeekingReader(cast(IO[bytes], _WholeReads(f)), validate_crcs=True,
                                  decoder_factories=[DecoderFactory()] if decode else ())
        items: Any = (reader.iter_decoded_messages(log_time_order=False) if decode
                      else ((*t, None) for t in reader.iter_messages(log_time_order=False)))
        try:
            for schema, channel, msg, ros_msg in items:
                out.append(RecordedMessage(channel.topic, schema.name if schema else "", msg.sequence, msg.log_time,
                                           msg.publish_time, msg.data, ros_msg))
        except EndOfFile:
            return McapContents(out, complete=False)
    return McapContents(out, complete=True)
