"""Bus cycle through the pty: Sync Write goals + Fast Sync Read current/velocity/position, 2 buses x 16 servos.

Prints one JSON object: p50/p99 of the whole cycle (both buses, one after the other as one process
would run them) and of one bus, next to the wire-time limit at the bus baud rate computed from the byte
counts (the emulator charges every byte its wire time). Exit 1 when the 2 x 16 cycle p99 > 2 ms.

    .venv/bin/python benchmarks/bench_bus.py [--cycles 2000] [--servos 16] [--target-ms 2.0]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from omnipianist.hardware.driver import READ_SPAN
from omnipianist.hardware.dynamixel import protocol as p
from omnipianist.hardware.dynamixel.bus import DynamixelBus, wire_time_s
from omnipianist.hardware.emulator import ServoBusEmulator


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=2000)
    ap.add_argument("--servos", type=int, default=16)
    ap.add_argument("--baudrate", type=int, default=4_000_000)
    ap.add_argument("--target-ms", type=float, default=2.0)
    args = ap.parse_args(argv)
    ids = list(range(1, args.servos + 1))
    emus = [ServoBusEmulator(ids, baudrate=args.baudrate).start() for _ in range(2)]
    buses = [DynamixelBus(e.port, args.baudrate, timeout_s=0.01, retries=2) for e in emus]
    try:
        for b in buses:
            b.connect()
            b.enable_torque(ids)
        goals = {i: 2048 + i for i in ids}
        write = p.encode_sync_write(116, 4, {i: (2048 + i).to_bytes(4, "little") for i in ids})
        read = p.encode_fast_sync_read(READ_SPAN.address, READ_SPAN.size, ids)
        reply = p.encode_fast_sync_read_reply([(i, 0, bytes(READ_SPAN.size)) for i in ids])
        wire_bus_s = wire_time_s(len(write) + len(read) + len(reply), args.baudrate)
        cycle, per_bus = [], []
        for k in range(args.cycles + 50):
            t0 = time.perf_counter()
            for b in buses:
                t1 = time.perf_counter()
                b.sync_write("goal_position", goals)
                b.fast_sync_read(READ_SPAN, ids)
                if k >= 50:
                    per_bus.append(time.perf_counter() - t1)
            if k >= 50:  # warm-up excluded
                cycle.append(time.perf_counter() - t0)
        errors = sum(s.timeouts + s.crc_errors for b in buses for s in b.stats.values())
    finally:
        for b in buses:
            b.disconnect()
        for e in emus:
            e.stop()
    c, pb = np.array(cycle) * 1e3, np.array(per_bus) * 1e3
    out = {
        "benchmark": "bus_cycle", "servos_per_bus": args.servos, "buses": 2, "baudrate": args.baudrate,
        "cycles": args.cycles,
        "bytes_per_bus": {"sync_write": len(write), "fast_sync_read": len(read), "reply": len(reply)},
        "wire_limit_ms_per_bus": wire_bus_s * 1e3, "wire_limit_ms_cycle": 2 * wire_bus_s * 1e3,
        "cycle_ms_p50": float(np.percentile(c, 50)), "cycle_ms_p99": float(np.percentile(c, 99)),
        "cycle_ms_max": float(c.max()),
        "bus_ms_p50": float(np.percentile(pb, 50)), "bus_ms_p99": float(np.percentile(pb, 99)),
        "bus_errors": int(errors), "target_cycle_ms_p99": args.target_ms,
    }
    out["ok"] = bool(out["cycle_ms_p99"] <= args.target_ms and errors == 0)
    print(json.dumps(out, indent=2))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
