"""``omnipianist bench loop``: the real-time control loop on the ROS graph, timed (JSON; exit 1 on a miss).

The graph is the simulation one in real time on the wall clock, as on hardware: the MuJoCo mock
(``realtime``: joint states and keys every period), the score (a timer on the ROS clock), the policy
(``--trigger goal`` by default: it acts on each new goal, so the score's timer paces the loop; the
safety filter is in the command path) and a probe subscribed to the left hand's commands, all in one
process (:class:`omnipianist_ros.bringup.Graph`, one executor thread per node).

Figures (wall clock, ``time.perf_counter``):

* ``period_jitter_ms_p99``: p99 of |interval between consecutive commands at the probe - period|;
* ``latency_ms_p99``: p99 of (command received by the probe - the score's publish of the newest goal
  before it): score -> policy -> safety filter -> command, over DDS;
* ``missed_deadlines``: periods without a command (an interval > 1.5 periods counts each period it
  spans beyond the first) + policy steps that took longer than the period + stale-input periods.

Targets at 20 Hz: jitter p99 <= 2 ms, latency p99 <= 10 ms, 0 misses (``--rate 100`` is a stress run:
the same figures, reported, judged only on misses). DDS stays on loopback: the process re-executes
itself in a private network namespace (``unshare -n``, ``lo`` up, like tests/isolated.sh) with the
project's Fast DDS profile (:func:`omnipianist.dds.use_loopback`) unless it already runs in one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any

import numpy as np

ISOLATED_ENV = "OMNIPIANIST_NETNS"
TARGETS_20HZ = {"period_jitter_ms_p99": 2.0, "latency_ms_p99": 10.0, "missed_deadlines": 0}


def add_bench_loop_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rate", type=float, default=20.0, help="loop rate [Hz] (20 = the control rate; 100 = stress)")
    p.add_argument("--cycles", type=int, default=5000, help="control cycles to time (>= 5000 for the record)")
    p.add_argument("--warmup", type=int, default=40, help="cycles run before timing starts")
    p.add_argument("--policy", default="prior", help="'prior' or an exported .onnx policy")
    p.add_argument("--embodiment", default="shadow", help="embodiment (shadow | leap)")
    p.add_argument("--piece", default="twinkle", help="piece the score plays (looped by seeking back)")
    p.add_argument("--trigger", default="goal", choices=("goal", "timer"),
                   help="policy trigger: 'goal' (the score paces the loop) or 'timer' (its own steady timer)")
    p.add_argument("--no-netns", action="store_true",
                   help="do not re-execute in a private network namespace (the loopback DDS profile still applies)")
    p.add_argument("--json", action="store_true", help="print only the JSON object")


def _pct(xs: np.ndarray, q: float) -> float:
    return float(np.percentile(xs, q)) if xs.size else 0.0


def _isolated_argv(argv: list[str]) -> list[str] | None:
    """The command that re-runs ``argv`` in a fresh network namespace with lo up, or None if unavailable."""
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-n", "true"], capture_output=True).returncode != 0:
        return None
    return [unshare, "-n", "bash", "-c", 'ip link set lo up && exec "$@"', "bash", *argv]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run the graph for ``args.warmup + args.cycles`` cycles and return the figures (no exit-code logic)."""
    from rclpy.node import Node
    from std_msgs.msg import Float64MultiArray

    from omnipianist_ros import topics
    from omnipianist_ros.bringup import Graph
    from omnipianist_ros.config import config_path, load_bringup_config

    period = 1.0 / args.rate
    cfg = load_bringup_config(config_path("sim.yaml"))
    cfg = dataclasses.replace(cfg, nodes=tuple(dataclasses.replace(n, use_sim_time=False) for n in cfg.nodes
                                               if n.name != "evaluator"))
    cfg = cfg.replace("mujoco_mock", mode="realtime", period_s=period, embodiment=args.embodiment,
                      wait_for_subscribers=1)
    cfg = cfg.replace("score", tick_source="timer", period_s=period, file=args.piece, autostart=True)
    cfg = cfg.replace("policy", trigger=args.trigger, policy=args.policy, embodiment=args.embodiment,
                      publish_trajectory=False)
    total = args.warmup + args.cycles
    arrivals: list[float] = []
    goal_at: list[float | None] = []
    with Graph(cfg) as g:
        score, policy = g.nodes["score"], g.nodes["policy"]
        probe = Node("loop_probe", context=g.context)

        def on_cmd(_msg: Float64MultiArray) -> None:
            arrivals.append(time.perf_counter())
            goal_at.append(score.goal_published_s)

        probe.create_subscription(Float64MultiArray, topics.commands("left"), on_cmd, topics.COMMAND_SUB_QOS)
        g.add_node(probe)
        n_steps = score.schedule.n_steps
        timeout = 30.0 + 3.0 * total * period
        end = time.monotonic() + timeout
        stats_at_warmup: dict[str, int] | None = None
        while len(arrivals) < total and time.monotonic() < end and g.alive:
            time.sleep(0.05)
            if stats_at_warmup is None and len(arrivals) >= args.warmup:
                st = policy.controller.stats
                stats_at_warmup = {"overruns": st.overruns, "stale": st.stale_inputs, "steps": st.steps}
            sched = score.schedule  # loop the piece: keep the score playing for as many cycles as asked
            if sched.start_s is not None and sched.step_at(time.time()) > n_steps - 40:
                score.request_seek(0.0)
        st = policy.controller.stats
        base = stats_at_warmup or {"overruns": 0, "stale": 0, "steps": 0}
        overruns, stale = st.overruns - base["overruns"], st.stale_inputs - base["stale"]
        infer = np.asarray(st.infer_s[base["steps"]:]) * 1e3
        states = [f.state.value for f in policy.controller.filters.values()]
    t = np.asarray(arrivals[args.warmup:total])
    g_at = np.asarray([np.nan if x is None else x for x in goal_at[args.warmup:total]])
    intervals = np.diff(t)
    jitter = np.abs(intervals - period) * 1e3
    latency = (t - g_at)[np.isfinite(g_at)] * 1e3
    gaps = int(np.sum(np.maximum(np.round(intervals / period) - 1, 0)[intervals > 1.5 * period]))
    missed = gaps + overruns + stale + max(0, args.cycles - t.size)
    return {"bench": "loop", "rate_hz": args.rate, "period_ms": period * 1e3, "trigger": args.trigger,
            "policy": args.policy, "embodiment": args.embodiment, "cycles": int(t.size), "cycles_asked": args.cycles,
            "period_jitter_ms_p50": _pct(jitter, 50), "period_jitter_ms_p99": _pct(jitter, 99),
            "period_jitter_ms_max": float(jitter.max()) if jitter.size else 0.0,
            "latency_ms_p50": _pct(latency, 50), "latency_ms_p99": _pct(latency, 99),
            "latency_ms_max": float(latency.max()) if latency.size else 0.0,
            "inference_ms_p50": _pct(infer, 50), "inference_ms_p99": _pct(infer, 99),
            "missed_deadlines": int(missed), "missed_gaps": gaps, "overruns": int(overruns),
            "stale_inputs": int(stale), "safety_states": states, "load_avg_1m": os.getloadavg()[0],
            "cpu_count": os.cpu_count()}


def judge(r: dict[str, Any]) -> list[str]:
    """The targets missed (20 Hz: all three; other rates: misses only)."""
    misses = []
    if r["missed_deadlines"] > 0:
        misses.append(f"missed_deadlines {r['missed_deadlines']} > 0")
    if r["cycles"] < r["cycles_asked"]:
        misses.append(f"only {r['cycles']} of {r['cycles_asked']} cycles completed")
    if abs(r["rate_hz"] - 20.0) < 1e-9:
        for key in ("period_jitter_ms_p99", "latency_ms_p99"):
            if r[key] > TARGETS_20HZ[key]:
                misses.append(f"{key} {r[key]:.2f} > {TARGETS_20HZ[key]}")
    return misses


def run_bench_loop(args: argparse.Namespace) -> int:
    """Entry of ``omnipianist bench loop``: prints JSON (one object), returns 1 on a missed target, 2 when
    no private network namespace can be made (use --no-netns to run on the loopback profile alone)."""
    from omnipianist.dds import use_loopback

    if not args.no_netns and os.environ.get(ISOLATED_ENV) != "1":
        argv = _isolated_argv([sys.executable, "-m", "omnipianist_ros.loopbench", *_forward(args)])
        if argv is None:
            print("bench loop: cannot create a network namespace (unshare -n); run as root, enable user "
                  "namespaces, or pass --no-netns", file=sys.stderr)
            return 2
        env = dict(os.environ, **{ISOLATED_ENV: "1"})
        use_loopback(env)
        env.setdefault("ROS_DOMAIN_ID", str(201 + os.getpid() % 30))
        return subprocess.run(argv, env=env).returncode
    use_loopback()
    os.environ.setdefault("ROS_DOMAIN_ID", str(201 + os.getpid() % 30))
    r = measure(args)
    r["misses"] = judge(r)
    r["ok"] = not r["misses"]
    r["isolated_netns"] = os.environ.get(ISOLATED_ENV) == "1"
    print(json.dumps(r) if args.json else json.dumps(r, indent=2))
    return 0 if r["ok"] else 1


def _forward(args: argparse.Namespace) -> list[str]:
    out = ["--rate", str(args.rate), "--cycles", str(args.cycles), "--warmup", str(args.warmup),
           "--policy", args.policy, "--embodiment", args.embodiment, "--piece", args.piece,
           "--trigger", args.trigger, "--no-netns"]
    return out + (["--json"] if args.json else [])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="omnipianist bench loop", description=__doc__.split("\n")[0])
    add_bench_loop_args(p)
    return run_bench_loop(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
