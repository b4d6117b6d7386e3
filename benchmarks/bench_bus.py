"""Bus cycle through the pty: Sync Write goals + Fast Sync Read current/velocity/position, 2 buses x 16 servos.

Prints one JSON object with two layouts, each next to the wire-time limit at the bus baud rate computed
from the byte counts (the emulator charges every byte its wire time):

* ``rig`` (judged): as on the robot — the servos are another machine (the emulators run in a child
  process, so they do not share the host's GIL) and each hand's bus has its own adapter and driver
  (one host thread per bus, both buses at once; a cycle ends when both are done). Limit: one bus's
  wire time.
* ``sequential`` (for reference): both buses one after the other in one thread, emulators in the same
  process (what a single-threaded host would see). Limit: twice the wire time.

Exit 1 when the rig cycle p99 > the target (2 ms) or any bus error occurred.

    .venv/bin/python benchmarks/bench_bus.py [--cycles 2000] [--servos 16] [--target-ms 2.0]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import threading
import time

import numpy as np

from omnipianist.hardware.driver import READ_SPAN
from omnipianist.hardware.dynamixel import protocol as p
from omnipianist.hardware.dynamixel.bus import DynamixelBus, wire_time_s
from omnipianist.hardware.emulator import ServoBusEmulator

WARMUP = 50


def _serve(ids: list[int], baudrate: int, n: int, ports: mp.Queue, stop: mp.Event) -> None:  # type: ignore[type-arg]
    """Child process: ``n`` emulated buses until ``stop``."""
    emus = [ServoBusEmulator(ids, baudrate=baudrate).start() for _ in range(n)]
    ports.put([e.port for e in emus])
    stop.wait()
    for e in emus:
        e.stop()


def _connect(ports: list[str], ids: list[int], baudrate: int) -> list[DynamixelBus]:
    buses = [DynamixelBus(port, baudrate, timeout_s=0.01, retries=2) for port in ports]
    for b in buses:
        b.connect()
        b.enable_torque(ids)
    return buses


def _errors(buses: list[DynamixelBus]) -> int:
    return int(sum(s.timeouts + s.crc_errors for b in buses for s in b.stats.values()))


def _pcts(ms: np.ndarray) -> dict[str, float]:
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)), "max": float(ms.max())}


def rig_layout(ids: list[int], baudrate: int, cycles: int) -> dict[str, object]:
    ctx = mp.get_context("spawn")
    ports_q, stop = ctx.Queue(), ctx.Event()
    child = ctx.Process(target=_serve, args=(ids, baudrate, 2, ports_q, stop), daemon=True)
    child.start()
    try:
        buses = _connect(ports_q.get(timeout=30), ids, baudrate)
        goals = {i: 2048 + i for i in ids}
        start, done = threading.Barrier(3), threading.Barrier(3)
        per_bus: list[list[float]] = [[], []]
        quit_flag = [False]

        def worker(k: int) -> None:
            b = buses[k]
            while True:
                start.wait()
                if quit_flag[0]:
                    return
                t1 = time.perf_counter()
                b.sync_write("goal_position", goals)
                b.fast_sync_read(READ_SPAN, ids)
                per_bus[k].append(time.perf_counter() - t1)
                done.wait()

        threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(2)]
        for t in threads:
            t.start()
        cycle = []
        for _ in range(cycles + WARMUP):
            t0 = time.perf_counter()
            start.wait()
            done.wait()
            cycle.append(time.perf_counter() - t0)
        quit_flag[0] = True
        start.wait()
        errors = _errors(buses)
        for b in buses:
            b.disconnect()
    finally:
        stop.set()
        child.join(timeout=10)
    return {"cycle_ms": _pcts(1e3 * np.array(cycle[WARMUP:])),
            "bus_ms": _pcts(1e3 * np.array(per_bus[0][WARMUP:] + per_bus[1][WARMUP:])), "bus_errors": errors}


def sequential_layout(ids: list[int], baudrate: int, cycles: int) -> dict[str, object]:
    emus = [ServoBusEmulator(ids, baudrate=baudrate).start() for _ in range(2)]
    try:
        buses = _connect([e.port for e in emus], ids, baudrate)
        goals = {i: 2048 + i for i in ids}
        cycle, per_bus = [], []
        for k in range(cycles + WARMUP):
            t0 = time.perf_counter()
            for b in buses:
                t1 = time.perf_counter()
                b.sync_write("goal_position", goals)
                b.fast_sync_read(READ_SPAN, ids)
                if k >= WARMUP:
                    per_bus.append(time.perf_counter() - t1)
            if k >= WARMUP:
                cycle.append(time.perf_counter() - t0)
        errors = _errors(buses)
        for b in buses:
            b.disconnect()
    finally:
        for e in emus:
            e.stop()
    return {"cycle_ms": _pcts(1e3 * np.array(cycle)), "bus_ms": _pcts(1e3 * np.array(per_bus)), "bus_errors": errors}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=2000)
    ap.add_argument("--servos", type=int, default=16)
    ap.add_argument("--baudrate", type=int, default=4_000_000)
    ap.add_argument("--target-ms", type=float, default=2.0)
    args = ap.parse_args(argv)
    ids = list(range(1, args.servos + 1))
    write = p.encode_sync_write(116, 4, {i: (2048 + i).to_bytes(4, "little") for i in ids})
    read = p.encode_fast_sync_read(READ_SPAN.address, READ_SPAN.size, ids)
    reply = p.encode_fast_sync_read_reply([(i, 0, bytes(READ_SPAN.size)) for i in ids])
    wire_bus_s = wire_time_s(len(write) + len(read) + len(reply), args.baudrate)
    rig = rig_layout(ids, args.baudrate, args.cycles)
    seq = sequential_layout(ids, args.baudrate, args.cycles)
    out = {
        "benchmark": "bus_cycle", "servos_per_bus": args.servos, "buses": 2, "baudrate": args.baudrate,
        "cycles": args.cycles,
        "bytes_per_bus": {"sync_write": len(write), "fast_sync_read": len(read), "reply": len(reply)},
        "wire_limit_ms_per_bus": wire_bus_s * 1e3,
        "rig": {**rig, "wire_limit_ms": wire_bus_s * 1e3,
                "layout": "emulators in a child process; one host thread per bus, both buses at once"},
        "sequential": {**seq, "wire_limit_ms": 2 * wire_bus_s * 1e3,
                       "layout": "both buses one after the other in one thread, emulators in the same process"},
        "target_cycle_ms_p99": args.target_ms,
    }
    out["ok"] = bool(rig["cycle_ms"]["p99"] <= args.target_ms and rig["bus_errors"] == 0)  # type: ignore[index]
    print(json.dumps(out, indent=2))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
