"""``omnipianist bench loop``: the real-time control loop on the ROS graph, timed (JSON; exit 1 on a miss).

The graph is the simulation one in real time on the wall clock, as on hardware: the MuJoCo mock
(``realtime``: joint states and keys every period), the score (a timer on the ROS clock, the piece
looped), the policy (``--trigger goal`` by default: it acts on each new goal, so the score's timer paces
the loop; the safety filter is in the command path) and a probe subscribed to the left hand's commands.
``--graph processes`` (the default, as ``ros2 launch`` runs it): one process per node
(:class:`omnipianist_ros.bringup.ProcessGraph`), the probe in this process; ``--graph inprocess``: all
in one process (:class:`omnipianist_ros.bringup.Graph`, one executor thread per node; the GIL is shared,
so the physics and the probe delay the policy).

Figures (wall clock, ``time.perf_counter`` = CLOCK_MONOTONIC, the same clock in every process):

* ``period_jitter_ms_p99``: p99 of |interval between consecutive commands at the probe - period|;
* ``latency_ms_p99``: p99 of (command received by the probe - the score's publish of the newest goal
  before it): score -> policy -> safety filter -> command, over DDS (with processes, the score stamps
  each publish on ``/score/goal_stamp``);
* ``missed_deadlines``: periods without a command (an interval > 1.5 periods counts each period it
  spans beyond the first) + policy steps that took longer than the period + stale-input periods
  (with processes, from the policy's 1 Hz /diagnostics counters, taken from the last report before the
  timed cycles to the first one after them: a window that can only be too wide).

Real-time scheduling (``--rt-priority N``, default 50, as a real-time rig runs its control processes):
each process SCHED_FIFO (:data:`RT_OFFSETS`); refused (no CAP_SYS_NICE) is a miss, ``--rt-priority 0``
runs on the normal scheduler. ``--pin`` (default, with >= 2 CPUs): the policy alone on the first CPU, the
score, the mock and the probe on the others, so the physics never shares the policy's core. Also
reported: ``score_period_jitter_ms_p99`` (the score timer's own jitter), the load average and the CPU
count (other work on the machine shows in the figures). ``--cpu-latency`` (default): ``/dev/cpu_dma_latency``
held at 0 for the run (idle CPUs poll instead of halting).

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
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from omnipianist.command import Command, command_main, ok_or_1
from omnipianist.dds import use_loopback
from omnipianist.errors import ConfigError, OmnipianistError
from omnipianist_ros.bringup import Graph, ProcessGraph
from omnipianist_ros.config import config_path, load_bringup_config
from omnipianist_ros.nodes.main import CPUS_ENV, RT_PRIORITY_ENV, apply_cpu_affinity, apply_rt_priority
from omnipianist_ros.spinning import Spinner
from sim_training.constants import CONTROL_RATE_HZ

ISOLATED_ENV = "OMNIPIANIST_NETNS"
TARGETS_20HZ = {"period_jitter_ms_p99": 2.0, "latency_ms_p99": 10.0, "missed_deadlines": 0}


@dataclass(frozen=True)
class BenchLoopConfig:
    rate: float = CONTROL_RATE_HZ
    """loop rate [Hz] (20 = the control rate; 100 = stress)"""
    cycles: int = 5000
    """control cycles to time (>= 5000 for the record)"""
    warmup: int = 40
    """cycles run before timing starts"""
    policy: str = "prior"
    """'prior' or an exported .onnx policy"""
    embodiment: str = "shadow"
    """embodiment (shadow | leap)"""
    piece: str = "twinkle"
    """piece the score plays (looped by seeking back)"""
    trigger: Literal["goal", "timer"] = "goal"
    """policy trigger: 'goal' (the score paces the loop) or 'timer' (its own steady timer)"""
    graph: Literal["processes", "inprocess"] = "processes"
    """one process per node (as ros2 launch; the default) or every node in this process"""
    rt_priority: int = field(default=50, metadata={"metavar": "N"})
    """--graph processes: run the score, the policy, the mock and the probe SCHED_FIFO at priority N + 0..2
    (RT_OFFSETS; what a real-time rig does; needs CAP_SYS_NICE; a refusal is reported in rt_refused), 0 = normal
    scheduling"""
    pin: bool = True
    """--graph processes with >= 2 CPUs: the policy alone on the first CPU, the score, the mock and the probe on the
    others (sched_setaffinity; --no-pin: anywhere)"""
    cpu_latency: bool = True
    """hold /dev/cpu_dma_latency at 0 during the run (PM QoS: idle CPUs poll instead of halting, so a wake-up costs
    microseconds, not a halt exit; what cyclictest does; needs root)"""
    no_netns: bool = field(default=False, metadata={"action": "store_true"})
    """do not re-execute in a private network namespace (the loopback DDS profile still applies)"""


def _pct(xs: np.ndarray, q: float) -> float:
    return float(np.percentile(xs, q)) if xs.size else 0.0


def _isolated_argv(argv: list[str]) -> list[str] | None:
    """The command that re-runs ``argv`` in a fresh network namespace with lo up, or None if unavailable."""
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-n", "true"], capture_output=True).returncode != 0:
        return None
    return [unshare, "-n", "bash", "-c", 'ip link set lo up && exec "$@"', "bash", *argv]


RT_OFFSETS = {"score": 2, "probe": 2, "policy": 1, "mujoco_mock": 0}
"""``--rt-priority N``: each process's SCHED_FIFO priority is N + this. Equal FIFO priorities do not
preempt each other, so the pacer (the score's timer: a fraction of a millisecond per tick) and the
probe come first, then the policy, then the physics (the mock stands in for the hardware)."""


def bench_config(args: BenchLoopConfig) -> Any:
    """The real-time sim graph of the benchmark (sim.yaml without the evaluator, on the wall clock)."""
    period = 1.0 / args.rate
    cfg = load_bringup_config(config_path("sim.yaml"))
    cfg = dataclasses.replace(cfg, nodes=tuple(dataclasses.replace(n, use_sim_time=False) for n in cfg.nodes
                                               if n.name != "evaluator"))
    cfg = cfg.replace("mujoco_mock", mode="realtime", period_s=period, embodiment=args.embodiment,
                      wait_for_subscribers=1)
    cfg = cfg.replace("score", tick_source="timer", period_s=period, file=args.piece, autostart=True,
                      loop=True, stamp_goals=getattr(args, "graph", "inprocess") == "processes")
    return cfg.replace("policy", trigger=args.trigger, policy=args.policy, embodiment=args.embodiment,
                       publish_trajectory=False)


def measure(args: BenchLoopConfig) -> dict[str, Any]:
    """Run the graph for ``args.warmup + args.cycles`` cycles and return the figures (no exit-code logic)."""
    if getattr(args, "graph", "inprocess") == "processes":
        return measure_processes(args)
    from rclpy.node import Node
    from std_msgs.msg import Float64MultiArray

    from omnipianist_ros import topics

    period = 1.0 / args.rate
    cfg = bench_config(args)
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
        timeout = 30.0 + 3.0 * total * period
        end = time.monotonic() + timeout
        stats_at_warmup: dict[str, int] | None = None
        while len(arrivals) < total and time.monotonic() < end and g.alive:
            time.sleep(0.05)
            if stats_at_warmup is None and len(arrivals) >= args.warmup:
                st = policy.controller.stats
                stats_at_warmup = {"overruns": st.overruns, "stale": st.stale_inputs, "steps": st.steps}
        st = policy.controller.stats
        base = stats_at_warmup or {"overruns": 0, "stale": 0, "steps": 0}
        overruns, stale = st.overruns - base["overruns"], st.stale_inputs - base["stale"]
        infer = np.asarray(st.infer_s[base["steps"]:]) * 1e3
        states = [f.state.value for f in policy.controller.filters.values()]
    t = np.asarray(arrivals[args.warmup:total])
    g_at = np.asarray([np.nan if x is None else x for x in goal_at[args.warmup:total]])
    return _figures(args, "inprocess", t, g_at, overruns, stale, _pct(infer, 50), _pct(infer, 99), states)


def _figures(args: BenchLoopConfig, graph: str, t: np.ndarray, g_at: np.ndarray, overruns: int, stale: int,
             infer_p50: float, infer_p99: float, states: list[str]) -> dict[str, Any]:
    """The JSON figures from the timed command arrivals ``t`` and the newest goal publish before each."""
    period = 1.0 / args.rate
    intervals = np.diff(t)
    jitter = np.abs(intervals - period) * 1e3
    latency = (t - g_at)[np.isfinite(g_at)] * 1e3
    gaps = int(np.sum(np.maximum(np.round(intervals / period) - 1, 0)[intervals > 1.5 * period]))
    missed = gaps + overruns + stale + max(0, args.cycles - t.size)
    return {"bench": "loop", "graph": graph, "rate_hz": args.rate, "period_ms": period * 1e3,
            "trigger": args.trigger, "policy": args.policy, "embodiment": args.embodiment, "cycles": int(t.size),
            "cycles_asked": args.cycles,
            "period_jitter_ms_p50": _pct(jitter, 50), "period_jitter_ms_p99": _pct(jitter, 99),
            "period_jitter_ms_max": float(jitter.max()) if jitter.size else 0.0,
            "latency_ms_p50": _pct(latency, 50), "latency_ms_p99": _pct(latency, 99),
            "latency_ms_max": float(latency.max()) if latency.size else 0.0,
            "inference_ms_p50": infer_p50, "inference_ms_p99": infer_p99,
            "missed_deadlines": int(missed), "missed_gaps": gaps, "overruns": int(overruns),
            "stale_inputs": int(stale), "safety_states": states, "load_avg_1m": os.getloadavg()[0],
            "cpu_count": os.cpu_count()}


def hold_cpu_latency(enabled: bool) -> tuple[Any, str]:
    """Open ``/dev/cpu_dma_latency`` and write 0 (kept while the file stays open); (file or None, in words)."""
    if not enabled:
        return None, "off"
    try:
        f = open("/dev/cpu_dma_latency", "wb", buffering=0)  # noqa: SIM115 - held open for the run
        f.write((0).to_bytes(4, sys.byteorder, signed=True))
    except OSError as exc:
        return None, f"unavailable ({exc.strerror})"
    return f, "0 us"


def measure_processes(args: BenchLoopConfig) -> dict[str, Any]:
    """:func:`measure` with one process per node; the probe (commands, goal stamps, the policy's
    diagnostics) spins in this process."""

    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import Float64, Float64MultiArray

    from omnipianist_ros import topics

    period = 1.0 / args.rate
    total = args.warmup + args.cycles
    arrivals: list[float] = []
    stamps: list[float] = []
    diags: list[tuple[int, dict[str, str]]] = []  # (commands seen when it arrived, the policy's values)

    def on_cmd(_msg: Float64MultiArray) -> None:
        arrivals.append(time.perf_counter())

    def on_diag(msg: DiagnosticArray) -> None:
        for st in msg.status:
            if st.name == "omnipianist/policy":
                diags.append((len(arrivals), {kv.key: kv.value for kv in st.values}))

    cpus = sorted(os.sched_getaffinity(0))
    pins: dict[str, str] = {}
    if getattr(args, "pin", False) and len(cpus) >= 2:
        rest = ",".join(str(c) for c in cpus[1:])
        pins = {"policy": str(cpus[0]), "score": rest, "mujoco_mock": rest, "probe": rest}
    apply_cpu_affinity(pins.get("probe", ""))

    base = getattr(args, "rt_priority", 0)
    rt = str(base + RT_OFFSETS["probe"]) if base else ""
    rt_probe = apply_rt_priority(rt)  # before rclpy starts its threads: they inherit it
    context = rclpy.Context()
    rclpy.init(context=context)
    probe = rclpy.create_node("loop_probe", context=context)
    probe.create_subscription(Float64MultiArray, topics.commands("left"), on_cmd, topics.COMMAND_SUB_QOS)
    probe.create_subscription(Float64, topics.GOAL_STAMP, lambda m: stamps.append(m.data), topics.GOAL_STAMP_QOS)
    probe.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, on_diag, topics.DIAGNOSTICS_QOS)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(probe)
    import gc

    gc.collect()
    gc.freeze()  # as the nodes do (nodes/main.py): no full collection walks start-up objects mid-cycle

    spinner = Spinner(executor, "loop_probe").start()
    failure = ""
    refused: list[str] = []
    latency_hold, latency_state = hold_cpu_latency(getattr(args, "cpu_latency", False))
    try:
        cfg = bench_config(args)
        node_env: dict[str, dict[str, str]] = {n.name: {} for n in cfg.nodes}
        for n in cfg.nodes:
            if base:
                node_env[n.name][RT_PRIORITY_ENV] = str(base + RT_OFFSETS[n.name])
            if n.name in pins:
                node_env[n.name][CPUS_ENV] = pins[n.name]
        with ProcessGraph(cfg, node_env=node_env) as g:
            end = time.monotonic() + 60.0 + 3.0 * total * period
            while len(arrivals) < total and time.monotonic() < end and g.alive:
                time.sleep(0.05)
            done_at = len(arrivals)
            # one more policy report after the last timed cycle (its counters cover them)
            g.wait_for(lambda: bool(diags) and diags[-1][0] > min(done_at, total), 3.0)
            refused = [n for n in g.processes if "not applied" in g.log(n)]
            if not g.alive:
                failure = "; ".join(f"{n} exited {rc}: {g.log(n)[-400:]}" for n, rc in g.exited().items())
    finally:
        if latency_hold is not None:
            latency_hold.close()
        spinner.stop(timeout_s=2.0)
        probe.destroy_node()
        rclpy.try_shutdown(context=context)
    t = np.asarray(arrivals[args.warmup:total])
    s = np.asarray(sorted(stamps))
    idx = np.searchsorted(s, t, side="right") - 1  # the newest goal published before each arrival
    g_at = np.full(t.shape, np.nan)
    if s.size:
        g_at[idx >= 0] = s[idx[idx >= 0]]
    before = [v for n, v in diags if n <= args.warmup]
    after = [v for n, v in diags if n >= min(len(arrivals), total)]
    first = before[-1] if before else {"overruns": "0", "stale_inputs": "0"}
    last = after[0] if after else (diags[-1][1] if diags else {})
    overruns = int(last.get("overruns", 0)) - int(first.get("overruns", 0))
    stale = int(last.get("stale_inputs", 0)) - int(first.get("stale_inputs", 0))
    states = [last.get(f"{side}.state", "?") for side in ("left", "right")]
    r = _figures(args, "processes", t, g_at, overruns, stale, float(last.get("inference_ms_p50", "nan")),
                 float(last.get("inference_ms_p99", "nan")), states)
    timed = s[(s >= t[0]) & (s <= t[-1])] if t.size and s.size else s
    goal_jitter = np.abs(np.diff(timed) - period) * 1e3
    r["score_period_jitter_ms_p99"] = _pct(goal_jitter, 99)
    """The score's own publish jitter (its timer): the part of the command jitter the policy did not add."""
    r["inference_over"] = "the whole run (the policy's /diagnostics)"
    r["rt_priority"] = {name: base + off for name, off in RT_OFFSETS.items()} if base else 0
    r["rt_probe"] = rt_probe or "normal scheduling"
    r["cpu_pins"] = pins or "none"
    r["cpu_dma_latency"] = latency_state
    r["rt_refused"] = refused
    if not after:
        r["counters_note"] = "no policy diagnostics after the timed cycles: overruns / stale counted to the last one"
    if failure:
        r["failure"] = failure
    return r


def judge(r: dict[str, Any]) -> list[str]:
    """The targets missed (20 Hz: all three; other rates: misses only)."""
    misses = []
    if r["missed_deadlines"] > 0:
        misses.append(f"missed_deadlines {r['missed_deadlines']} > 0")
    if r.get("rt_refused"):
        misses.append(f"real-time priority refused for {r['rt_refused']} (run with CAP_SYS_NICE or --rt-priority 0)")
    if r["cycles"] < r["cycles_asked"]:
        misses.append(f"only {r['cycles']} of {r['cycles_asked']} cycles completed")
    if abs(r["rate_hz"] - CONTROL_RATE_HZ) < 1e-9:
        for key in ("period_jitter_ms_p99", "latency_ms_p99"):
            if r[key] > TARGETS_20HZ[key]:
                misses.append(f"{key} {r[key]:.2f} > {TARGETS_20HZ[key]}")
    return misses


def run_bench_loop(cfg: BenchLoopConfig) -> dict[str, Any]:
    """``omnipianist bench loop``: the figures, ``misses`` (:func:`judge`), ``ok`` and ``isolated_netns``.

    Re-runs itself in a private network namespace (its JSON read back) unless ``no_netns`` or already in one;
    ConfigError when none can be made (``--no-netns`` runs on the loopback profile alone)."""
    if not cfg.no_netns and os.environ.get(ISOLATED_ENV) != "1":
        argv = _isolated_argv([sys.executable, "-m", "omnipianist_ros.loopbench", *_forward(cfg), "--json"])
        if argv is None:
            raise ConfigError("bench loop: cannot create a network namespace (unshare -n); run as root, enable user "
                              "namespaces, or pass --no-netns")
        env = dict(os.environ, **{ISOLATED_ENV: "1"})
        use_loopback(env)
        env.setdefault("ROS_DOMAIN_ID", str(201 + os.getpid() % 30))
        done = subprocess.run(argv, env=env, stdout=subprocess.PIPE, text=True)
        lines = done.stdout.strip().splitlines()
        try:
            result: dict[str, Any] = json.loads(lines[-1])
        except (IndexError, ValueError):
            sys.stdout.write(done.stdout)
            raise OmnipianistError(f"bench loop: the run in the network namespace exited {done.returncode} "
                                   "without a result (its error is above)") from None
        return result
    use_loopback()
    os.environ.setdefault("ROS_DOMAIN_ID", str(201 + os.getpid() % 30))
    r = measure(cfg)
    r["misses"] = judge(r)
    r["ok"] = not r["misses"]
    r["isolated_netns"] = os.environ.get(ISOLATED_ENV) == "1"
    return r


def format_bench_loop(r: dict[str, Any]) -> str:
    """The figures as indented JSON (what the command prints without ``--json``)."""
    return json.dumps(r, indent=2)


BENCH_LOOP = Command("loop", "real-time ROS control loop: period jitter, score->command latency, misses",
                     BenchLoopConfig, run_bench_loop, format_bench_loop, exit_code=ok_or_1,
                     json_help="print only the JSON object")


def add_bench_loop_args(p: argparse.ArgumentParser) -> None:
    """The flags of ``omnipianist bench loop`` (those :data:`BENCH_LOOP` adds)."""
    BENCH_LOOP.add_arguments(p)


def _forward(cfg: Any) -> list[str]:
    """The flags that run ``cfg`` again (in the network namespace: ``--no-netns``)."""
    return ["--rate", str(cfg.rate), "--cycles", str(cfg.cycles), "--warmup", str(cfg.warmup),
            "--policy", cfg.policy, "--embodiment", cfg.embodiment, "--piece", cfg.piece,
            "--trigger", cfg.trigger, "--graph", getattr(cfg, "graph", "processes"),
            "--rt-priority", str(getattr(cfg, "rt_priority", 0)),
            "--pin" if getattr(cfg, "pin", True) else "--no-pin",
            "--cpu-latency" if getattr(cfg, "cpu_latency", True) else "--no-cpu-latency", "--no-netns"]


def main(argv: list[str] | None = None) -> int:
    """``python -m omnipianist_ros.loopbench``: the same command as ``omnipianist bench loop``."""
    return command_main(BENCH_LOOP, argv, prog="omnipianist bench loop")


if __name__ == "__main__":
    raise SystemExit(main())
