"""HIL soak: N minutes of lock-step play (Shadow virtual hands, OT/IK prior) with a random fault every few
seconds. Prints one JSON object; exits 1 on a crash, a fault not accounted for in the drivers'
diagnostics, a goal outside limits on the bus, or a hand left in FAULT (a start refused by a driver is retried
and reported under ``start_failures``).

    .venv/bin/python benchmarks/soak_hil.py [--minutes 30] [--every-s 3] [--seed 0] [--piece twinkle]

Each fault is injected on a random hand during play and must show up in that driver's diagnostics within
``--settle-steps`` control steps (crc -> crc_errors, truncate/late/silent -> timeouts, stray -> discarded
parser bytes, overload -> reboots, watchdog -> watchdog recoveries, unplug -> reconnects).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
import traceback

from omnipianist.errors import OmnipianistError
from omnipianist.hardware.hil import HilRig, PriorPolicy

FAULTS = ("crc", "truncate", "stray", "late", "silent", "overload", "watchdog", "unplug")
START_ATTEMPTS = 3
"""A driver that refuses to configure (e.g. a servo that did not answer an EEPROM write within its retries)
raises a clear error; like the node's autostart, the soak retries the start and reports each refusal under
``start_failures``. Only a start that fails every attempt counts as a crash."""


def _sum(d: dict, key: str) -> int:
    return sum(int(s[key]) for s in d["servos"].values())


def evidence(d: dict, fault: str) -> int:
    c = d["counters"]
    return {
        "crc": _sum(d, "crc_errors"), "truncate": _sum(d, "timeouts"), "late": _sum(d, "timeouts"),
        "silent": _sum(d, "timeouts"), "stray": d["parser"]["discarded_bytes"], "overload": c["reboots"],
        "watchdog": c["watchdog_recoveries"], "unplug": c["reconnects"],
    }[fault]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--every-s", type=float, default=3.0, help="mean wall time between faults [s]")
    ap.add_argument("--settle-steps", type=int, default=20)
    ap.add_argument("--piece", default="twinkle")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    rng = random.Random(args.seed)
    end = time.monotonic() + args.minutes * 60
    injected = {f: 0 for f in FAULTS}
    accounted = {f: 0 for f in FAULTS}
    unaccounted: list[str] = []
    crashes: list[str] = []
    out_of_limits = 0
    plays = steps = 0
    f1s: list[float] = []
    faults_left = []
    next_fault = time.monotonic() + rng.expovariate(1 / args.every_s)
    start_failures: list[str] = []
    while time.monotonic() < end:
        rig = HilRig(args.piece)
        pending: list[tuple[int, str, str, int]] = []  # (check at step, side, fault, evidence before)
        actions: list[tuple[int, object]] = []
        try:
            for attempt in range(START_ATTEMPTS):  # as the driver node's autostart does: a refused configure is retried
                try:
                    rig.start()
                    break
                except OmnipianistError as exc:
                    start_failures.append(f"play {plays} attempt {attempt + 1}: {exc}")
                    rig.close()
                    if attempt + 1 == START_ATTEMPTS:
                        raise
                    rig = HilRig(args.piece)
            policy = PriorPolicy(rig.scene)
            policy.reset()
            while not rig.done and time.monotonic() < end:
                t = rig.t
                for _when, act in [a for a in actions if a[0] == t]:
                    act()  # type: ignore[operator]
                for item in [x for x in pending if x[0] == t]:
                    pending.remove(item)
                    _, side, fault, before = item
                    if evidence(rig.drivers[side].diagnostics(), fault) > before:
                        accounted[fault] += 1
                    else:
                        unaccounted.append(f"{fault} on {side} at play {plays} step {t}")
                if time.monotonic() >= next_fault and not pending and rig.t + args.settle_steps < rig.env.n_piece_steps:
                    fault, side = rng.choice(FAULTS), rng.choice(("left", "right"))
                    emu, drv = rig.emulators[side], rig.drivers[side]
                    before = evidence(drv.diagnostics(), fault)
                    sid = rng.choice(drv.ids)
                    if fault == "crc":
                        emu.corrupt_next_reply()
                    elif fault == "truncate":
                        emu.truncate_next_reply()
                    elif fault == "stray":
                        emu.prepend_to_next_reply(bytes(rng.randrange(256) for _ in range(rng.randint(1, 12))))
                    elif fault == "late":
                        emu.delay_next_reply(0.015)
                    elif fault == "silent":
                        emu.set_silent(sid)
                        actions.append((t + 3, lambda emu=emu, sid=sid: emu.set_silent(sid, False)))
                    elif fault == "overload":
                        emu.set_hardware_error(sid, 0x20)
                    elif fault == "watchdog":
                        emu.trip_bus_watchdog()
                    else:
                        emu.unplug()
                        actions.append((t + 3, emu.replug))
                    injected[fault] += 1
                    pending.append((t + args.settle_steps, side, fault, before))
                    next_fault = time.monotonic() + rng.expovariate(1 / args.every_s)
                assert rig.obs is not None
                rig.step(policy.act(rig.obs))
                steps += 1
            for item in pending:  # play ended first: check what we have
                _, side, fault, before = item
                if evidence(rig.drivers[side].diagnostics(), fault) > before:
                    accounted[fault] += 1
                else:
                    unaccounted.append(f"{fault} on {side} (end of play {plays})")
            result = rig.result()
            out_of_limits += len(result.out_of_limits)
            faults_left += [f"play {plays}: {s} in {d['state']}" for s, d in result.diagnostics.items()
                            if d["state"] != "active"]
            crashes += result.emulator_errors
            f1s.append(result.metrics["f1"])
            plays += 1
        except Exception:  # noqa: BLE001 - a crash is what the soak counts
            crashes.append(traceback.format_exc(limit=5))
        finally:
            rig.close()
    out = {
        "benchmark": "soak_hil", "minutes": args.minutes, "plays": plays, "steps": steps,
        "faults_injected": injected, "faults_accounted": accounted, "unaccounted": unaccounted,
        "crashes": len(crashes), "crash_details": crashes[:3],
        "start_failures": len(start_failures), "start_failure_details": start_failures[:5],
        "out_of_limits_goals": out_of_limits,
        "hands_left_in_fault": faults_left,
        "f1_min": min(f1s) if f1s else None, "f1_mean": sum(f1s) / len(f1s) if f1s else None,
    }
    out["ok"] = not crashes and not unaccounted and out_of_limits == 0 and not faults_left
    print(json.dumps(out, indent=2))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
