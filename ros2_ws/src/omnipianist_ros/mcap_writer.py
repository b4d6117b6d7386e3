"""A small MCAP writer (and reader, for checks) for ROS 2 messages: profile ``ros2``, schemas ``ros2msg``,
messages ``cdr`` (the bytes rclpy's raw subscriptions and ``rclpy.serialization`` produce).

Why our own: neither ``mcap`` nor ``mcap-ros2-support`` is installed here. This writes the MCAP
format's required records only (https://mcap.dev/spec): magic, Header, Schema, Channel, Message,
DataEnd, Footer (no summary, no chunks, no index: every MCAP reader reads such a file front to
back, e.g. ``mcap cat`` or ``mcap.reader.make_reader(f).iter_messages()``). Records go straight to
the file; :meth:`McapWriter.flush` flushes and fsyncs, so a crash loses only what came after the
last flush, and a file cut short ends at a record boundary or inside the last record (readers stop
there; ``mcap recover`` rewrites it with an index).
"""

from __future__ import annotations

import os
import re
import struct
import sys
from pathlib import Path
from typing import Any, BinaryIO

MAGIC = b"\x89MCAP0\r\n"
OP_HEADER, OP_FOOTER, OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_DATA_END = 0x01, 0x02, 0x03, 0x04, 0x05, 0x0F
LIBRARY = "omnipianist mcap_writer 1"
_PRIMITIVES = {"bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32",
               "uint32", "int64", "uint64", "string", "wstring"}
_SEPARATOR = "=" * 80


def _str(s: str) -> bytes:
    b = s.encode()
    return struct.pack("<I", len(b)) + b


def _record(op: int, content: bytes) -> bytes:
    return struct.pack("<BQ", op, len(content)) + content


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
    """Append-only MCAP writer. ``with McapWriter(path) as w: w.write(topic, type_name, cdr, t_ns)``."""

    def __init__(self, path: str | Path, profile: str = "ros2") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f: BinaryIO | None = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, tuple[int, str]] = {}
        self._seq: dict[int, int] = {}
        self.messages = 0
        self._f.write(MAGIC + _record(OP_HEADER, _str(profile) + _str(LIBRARY)))

    def _file(self) -> BinaryIO:
        if self._f is None:
            raise ValueError(f"{self.path}: MCAP writer is closed")
        return self._f

    def channel(self, topic: str, type_name: str, metadata: dict[str, str] | None = None) -> int:
        """The channel id of ``topic`` (registered with its schema on first use). ValueError if the topic
        was registered with another type."""
        if topic in self._channels:
            cid, known = self._channels[topic]
            if known != type_name:
                raise ValueError(f"{self.path}: topic {topic} is {known}, not {type_name}")
            return cid
        f = self._file()
        sid = self._schemas.get(type_name)
        if sid is None:
            sid = len(self._schemas) + 1
            data = ros2msg_schema(type_name).encode()
            f.write(_record(OP_SCHEMA, struct.pack("<H", sid) + _str(type_name) + _str("ros2msg")
                            + struct.pack("<I", len(data)) + data))
            self._schemas[type_name] = sid
        cid = len(self._channels)
        meta = b"".join(_str(k) + _str(v) for k, v in (metadata or {}).items())
        f.write(_record(OP_CHANNEL, struct.pack("<HH", cid, sid) + _str(topic) + _str("cdr")
                        + struct.pack("<I", len(meta)) + meta))
        self._channels[topic] = (cid, type_name)
        self._seq[cid] = 0
        return cid

    def write(self, topic: str, type_name: str, data: bytes, log_time_ns: int, publish_time_ns: int | None = None) -> None:
        """One CDR-serialised message of ``type_name`` (``pkg/msg/Type``) on ``topic``."""
        cid = self.channel(topic, type_name)
        seq = self._seq[cid]
        self._seq[cid] = seq + 1
        pub = log_time_ns if publish_time_ns is None else publish_time_ns
        self._file().write(_record(OP_MESSAGE, struct.pack("<HIQQ", cid, seq & 0xFFFFFFFF, log_time_ns, pub) + data))
        self.messages += 1

    def flush(self) -> None:
        """Push what was written to the disk (flush + fsync)."""
        f = self._file()
        f.flush()
        os.fsync(f.fileno())

    def close(self) -> None:
        if self._f is None:
            return
        f = self._f
        f.write(_record(OP_DATA_END, struct.pack("<I", 0)) + _record(OP_FOOTER, struct.pack("<QQI", 0, 0, 0)) + MAGIC)
        f.flush()
        os.fsync(f.fileno())
        f.close()
        self._f = None

    def __enter__(self) -> McapWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_mcap(path: str | Path) -> dict[str, Any]:
    """Parse an MCAP file this module wrote (front to back; tolerates a file cut short).

    Returns ``{"profile", "schemas": {id: (name, encoding, text)}, "channels": {id: (topic, schema_id,
    encoding)}, "messages": [(channel_id, sequence, log_time_ns, data)], "complete": bool}``.
    """
    raw = Path(path).read_bytes()
    if not raw.startswith(MAGIC):
        raise ValueError(f"{path}: not an MCAP file (bad magic)")

    def s(buf: bytes, i: int) -> tuple[str, int]:
        (n,) = struct.unpack_from("<I", buf, i)
        return buf[i + 4:i + 4 + n].decode(), i + 4 + n

    out: dict[str, Any] = {"profile": None, "schemas": {}, "channels": {}, "messages": [], "complete": False}
    i = len(MAGIC)
    while i + 9 <= len(raw):
        op, n = struct.unpack_from("<BQ", raw, i)
        body = raw[i + 9:i + 9 + n]
        if len(body) < n:
            break  # cut short inside a record
        i += 9 + n
        if op == OP_HEADER:
            out["profile"], _ = s(body, 0)
        elif op == OP_SCHEMA:
            (sid,) = struct.unpack_from("<H", body, 0)
            name, j = s(body, 2)
            enc, j = s(body, j)
            (dn,) = struct.unpack_from("<I", body, j)
            out["schemas"][sid] = (name, enc, body[j + 4:j + 4 + dn].decode())
        elif op == OP_CHANNEL:
            cid, sid = struct.unpack_from("<HH", body, 0)
            topic, j = s(body, 4)
            enc, j = s(body, j)
            out["channels"][cid] = (topic, sid, enc)
        elif op == OP_MESSAGE:
            cid, seq, log_t, _pub = struct.unpack_from("<HIQQ", body, 0)
            out["messages"].append((cid, seq, log_t, body[22:]))
        elif op == OP_FOOTER:
            out["complete"] = raw[i:i + len(MAGIC)] == MAGIC
            break
    return out
