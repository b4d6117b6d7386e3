"""``omnipianist bringup CONFIG.yaml`` and ``omnipianist play PIECE --sim | --hardware DIR`` (wired into omnipianist/cli.py).

``play --sim`` brings the simulation graph of ``ros2_ws/config/sim.yaml`` up in lock-step (as fast as
the graph runs), plays the whole piece and prints the evaluator's live F1 (JSON keys as ``omnipianist
prior --json``: f1, precision, recall, onset_f1, steps, ... plus loop figures). ``play --hil`` does the
same on ``ros2_ws/config/hil.yaml``: the hand drivers talk Dynamixel bytes over ptys to emulated servos
whose physics is the mock (plus the drivers' bus figures). ``play --hardware`` plays in real time on the
rig's graph (``ros2_ws/config/hardware.yaml``). ``--record PATH`` adds the recorder (MCAP of every topic).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omnipianist.command import Command, build_parser
from omnipianist.errors import ConfigError, OmnipianistError
from omnipianist_ros.bringup import Graph, ProcessGraph, spin_forever
from omnipianist_ros.config import NodeSpec, config_path, load_bringup_config
from omnipianist_ros.params import RecorderParams, hil_port
from omnipianist_ros.spinning import Spinner


@dataclass(frozen=True)
class BringupConfig:
    config: str
    """bringup YAML (e.g. ros2_ws/config/sim.yaml)"""
    check: bool = field(default=False, metadata={"action": "store_true"})
    """validate the YAML and exit"""
    processes: bool = field(default=False, metadata={"action": "store_true", "exclusive": "how"})
    """one process per node (what `ros2 launch` does); the default for wall-clock graphs (no node on use_sim_time:
    the real-time ones, e.g. hardware.yaml)"""
    one_process: bool = field(default=False, metadata={"action": "store_true", "exclusive": "how"})
    """every node in this process (one executor thread each); the default for simulated-time graphs (sim.yaml,
    hil.yaml: lock-step)"""


@dataclass(frozen=True)
class BringupResult:
    config: str
    """The YAML's path."""
    nodes: dict[str, dict[str, Any]] | None = field(default=None, metadata={"omit_none": True})
    """``--check``: each node's ROS parameters."""
    exit_status: int = field(default=0, metadata={"json": False})
    """After the graph ran: 1 when a node exited on its own with an error."""


def run_bringup(cfg: BringupConfig) -> BringupResult:
    """``--check``: the validated config; else run the graph until Ctrl-C / SIGTERM."""
    graph = load_bringup_config(cfg.config)
    if cfg.check:
        return BringupResult(graph.path, {n.name: n.ros_parameters() for n in graph.nodes})

    return BringupResult(graph.path, exit_status=spin_forever(
        graph, processes=one_process_per_node(graph, cfg.processes, cfg.one_process)))


def format_bringup(r: BringupResult) -> str | None:
    """``--check``: the JSON, indented; nothing once a graph has run."""
    return None if r.nodes is not None else ""


BRINGUP = Command("bringup", "bring up a ROS 2 graph from a YAML file without `launch`", BringupConfig, run_bringup,
                  format_bringup, positionals=("config",), exit_code=lambda r: r.exit_status,
                  json_help="print one JSON object (with --check)")


def add_bringup_args(p: argparse.ArgumentParser) -> None:
    """The flags of ``omnipianist bringup`` (those :data:`BRINGUP` adds)."""
    BRINGUP.add_arguments(p)


def one_process_per_node(cfg: Any, processes: bool = False, one_process: bool = False) -> bool:
    """``bringup``'s choice: as asked, else one process per node for a real-time (wall-clock) graph."""
    if processes or one_process:
        return processes
    return not any(n.use_sim_time for n in cfg.nodes)


@dataclass(frozen=True)
class PlayConfig:
    piece: str
    """built-in piece name or MIDI file"""
    sim: bool = field(default=False, metadata={"action": "store_true", "exclusive": "where"})
    """play in simulation (the MuJoCo mock, lock-step)"""
    hil: bool = field(default=False, metadata={"action": "store_true", "exclusive": "where"})
    """hardware in the loop: hand drivers -> Dynamixel bytes over ptys -> emulated servos whose physics is the MuJoCo
    mock (lock-step, Shadow virtual hands)"""
    hardware: str | None = field(default=None, metadata={"metavar": "HARDWARE_CONFIG", "exclusive": "where"})
    """play on the rig: the hardware_config/ folder (hand YAMLs, bus.yaml, safety.yaml)"""
    policy: str = "prior"
    """'prior' or the path of an exported .onnx policy"""
    embodiment: str | None = None
    """override the config's embodiment"""
    tempo_scale: float | None = None
    """override the config's tempo_scale"""
    config: str | None = None
    """bringup YAML (default: ros2_ws/config/sim.yaml, or hardware.yaml with --hardware)"""
    report: str = ""
    """also write the evaluator's JSON report here"""
    record: str = field(default="", metadata={"metavar": "OUT.mcap"})
    """--sim / --hil: also record every topic to this MCAP file (the recorder node)"""
    realtime: bool = field(default=False, metadata={"action": "store_true"})
    """--hil: step on the wall clock (drivers on their timers) instead of lock-step"""
    processes: bool = field(default=False, metadata={"action": "store_true"})
    """one process per node (as ros2 launch) instead of all in this process; figures from the evaluator's report and
    the /diagnostics (no per-servo bus figures)"""
    timeout_s: float = 600.0
    """give up after this many wall seconds"""


def _need(cfg: Any, names: tuple[str, ...]) -> None:
    for name in names:
        try:
            cfg.node(name)
        except KeyError as exc:
            raise ConfigError(f"{cfg.path}: play needs a node {name!r} in bringup.nodes") from exc


def with_recorder(cfg: Any, output: str) -> Any:
    """``cfg`` with the recorder node writing ``output`` (added if the config has none)."""
    if any(n.name == "recorder" for n in cfg.nodes):
        return cfg.replace("recorder", output=output)
    use_sim_time = cfg.node("mujoco_mock").use_sim_time if any(n.name == "mujoco_mock" for n in cfg.nodes) else False
    spec = NodeSpec("recorder", RecorderParams(output=output), use_sim_time)
    return dataclasses.replace(cfg, nodes=(*cfg.nodes, spec))


def _hil_config(cfg: Any, port_dir: str, realtime: bool) -> Any:
    """The HIL graph pointed at a fresh port folder; lock-step (drivers cycle per command) or real time."""
    _need(cfg, HIL_DRIVERS)
    cfg = cfg.replace("mujoco_mock", hil=True, hil_port_dir=port_dir, mode="realtime" if realtime else "lockstep")
    for name in HIL_DRIVERS:
        side = cfg.node(name).params.side
        cfg = cfg.replace(name, port=hil_port(port_dir, side), trigger="timer" if realtime else "command",
                          autostart=True)
    if realtime:  # the wall clock everywhere, as on the rig
        cfg = dataclasses.replace(cfg, nodes=tuple(dataclasses.replace(n, use_sim_time=False) for n in cfg.nodes))
        # the score's clock runs from start-up: leave the drivers time to activate and the mock to start
        cfg = cfg.replace("score", tick_source="timer", start_delay=3.0).replace("policy", trigger="timer")
    return cfg


HIL_DRIVERS = ("hand_driver_left", "hand_driver_right")


def bus_figures(driver_node: Any, emulator: Any, channels: Any) -> dict[str, Any]:
    """One hand's bus figures from its driver node and emulator."""
    from omnipianist.hardware.hil import goals_outside_limits

    out: dict[str, Any] = {"lifecycle": driver_node.lifecycle_state,
                           "commands_cycled": driver_node.cycles_published}
    if driver_node.driver is not None:
        d = driver_node.driver.diagnostics()
        servos = d["servos"].values()
        out.update({"port": d["port"], "state": d["state"], "servos": len(servos),
                    "timeouts": int(sum(s.get("timeouts", 0) for s in servos)),
                    "crc_errors": int(sum(s.get("crc_errors", 0) for s in servos)),
                    "stale_servos": int(sum(bool(s.get("stale")) for s in servos)),
                    "watchdog_trips": int(sum(s.get("watchdog_trips", 0) for s in servos)),
                    "cycles": int(d["counters"]["cycles"]), "cycle_overruns": int(d["counters"]["cycle_overruns"]),
                    "goals_clipped": int(d["counters"]["goals_clipped"]), "filter": d["filter"]})
    bad = goals_outside_limits(emulator, channels)
    out.update({"out_of_limits": len(bad), "out_of_limits_first": bad[:3],
                "emulator_error": repr(emulator.error) if emulator.error else None})
    return out


def play(piece: str, *, policy: str = "prior", embodiment: str | None = None, tempo_scale: float | None = None,
         config: str | None = None, report: str = "", timeout_s: float = 600.0, hil: bool = False,
         record: str = "", realtime: bool = False, processes: bool = False) -> dict[str, Any]:
    """Play ``piece`` on the lock-step simulation graph (``hil``: the HIL graph of ``ros2_ws/config/hil.yaml``);
    returns the evaluator's report plus loop figures (HIL: plus ``buses``, per side the driver's lifecycle
    state and bus figures, and ``out_of_limits``, goal writes outside a servo's safe range on the wire).

    ``record``: also write an MCAP of every topic there. ``realtime`` (HIL only): step on the wall clock.
    ``processes``: one process per node (:func:`play_in_processes`).
    Raises ConfigError for a bad config, TimeoutError when the piece does not finish in ``timeout_s``.
    """
    if realtime and not hil:
        raise ConfigError("play: realtime is a HIL option (play --sim is lock-step)")
    cfg = load_bringup_config(config or config_path("hil.yaml" if hil else "sim.yaml"))
    _need(cfg, ("mujoco_mock", "score", "policy", "evaluator"))
    tempo = tempo_scale if tempo_scale is not None else cfg.node("score").params.tempo_scale
    cfg = cfg.replace("score", file=piece, tempo_scale=tempo, tick_source="clock", autostart=True)
    cfg = cfg.replace("evaluator", file=piece, tempo_scale=tempo, report=report)
    cfg = cfg.replace("policy", policy=policy, trigger="lockstep")
    cfg = cfg.replace("mujoco_mock", mode="lockstep")
    if embodiment is not None:
        cfg = cfg.replace("policy", embodiment=embodiment).replace("mujoco_mock", embodiment=embodiment)
        if hil:
            for name in HIL_DRIVERS:
                cfg = cfg.replace(name, embodiment=embodiment)
    if record:
        cfg = with_recorder(cfg, record)
    with tempfile.TemporaryDirectory(prefix="omnipianist-hil-") as port_dir:
        if hil:
            cfg = _hil_config(cfg, port_dir, realtime)
        mode = ("hil-realtime" if realtime else "hil") if hil else "sim"
        if processes:
            if realtime:  # each process starts on its own (imports, scene, ptys): more time before the first row
                cfg = cfg.replace("score", start_delay=max(cfg.node("score").params.start_delay, 8.0))
            return play_in_processes(cfg, piece, mode, policy=policy, timeout_s=timeout_s)
        t0 = time.monotonic()
        with Graph(cfg) as g:
            evaluator, mock, pol = g.nodes["evaluator"], g.nodes["mujoco_mock"], g.nodes["policy"]
            t_ready = time.monotonic()
            if not g.wait_for(lambda: evaluator.done, timeout_s):
                raise TimeoutError(f"play {piece}: the evaluator saw {evaluator.evaluator.n_seen}/"
                                   f"{evaluator.evaluator.roll.n_steps} steps in {timeout_s:.0f} s")
            wall = time.monotonic() - t_ready
            result: dict[str, Any] = {"piece": piece, "mode": mode, "embodiment": pol.controller.scene.embodiment.key,
                                      "policy": policy, **evaluator.report}
            result.update(pol.controller.stats.summary())
            result.update({"lockstep_timeouts": mock.lockstep_timeouts, "sim_steps": mock.piano.steps,
                           "wall_s": wall, "startup_s": t_ready - t0,
                           "steps_per_s": result["steps"] / max(wall, 1e-9)})
            if hil:
                result["buses"] = {g.nodes[n].params.side: bus_figures(g.nodes[n], mock.emulators[g.nodes[n].params.side],
                                                                       mock.hil_channels[g.nodes[n].params.side])
                                   for n in HIL_DRIVERS}
                result["out_of_limits"] = sum(b["out_of_limits"] for b in result["buses"].values())
                result["idle_timeouts"] = mock.idle_timeouts
            if record:
                result["recording"] = g.nodes["recorder"].path
    return result


def play_hardware(piece: str, hardware_config: str, *, policy: str = "prior", embodiment: str | None = None,
                  tempo_scale: float | None = None, config: str | None = None, report: str = "",
                  timeout_s: float = 600.0, processes: bool = False) -> dict[str, Any]:
    """Play ``piece`` on the rig (``ros2_ws/config/hardware.yaml`` graph: hand drivers, piano listener, score,
    policy + safety filter, evaluator, recorder) in real time; returns the evaluator's report plus loop figures.

    The score starts on its own (after ``start_delay``). ``processes``: one process per node
    (:func:`play_in_processes`), else all in this process. Raises ConfigError for a bad config or a missing
    node (e.g. "hand driver node not available: ..."), TimeoutError when the piece does not finish.
    """
    if not Path(hardware_config).is_dir():
        raise ConfigError(f"play --hardware: {hardware_config} is not a hardware_config folder")
    cfg = load_bringup_config(config or config_path("hardware.yaml"))
    _need(cfg, ("score", "policy", "evaluator"))
    tempo = tempo_scale if tempo_scale is not None else cfg.node("score").params.tempo_scale
    cfg = cfg.replace("score", file=piece, tempo_scale=tempo, autostart=True)
    cfg = cfg.replace("evaluator", file=piece, tempo_scale=tempo, **({"report": report} if report else {}))
    cfg = cfg.replace("policy", policy=policy, hardware_config=hardware_config, trigger="timer")
    if embodiment is not None:
        cfg = cfg.replace("policy", embodiment=embodiment)
    for name in ("hand_driver_left", "hand_driver_right"):
        if any(n.name == name for n in cfg.nodes):
            cfg = cfg.replace(name, hardware_config=hardware_config)
    if processes:
        r = play_in_processes(cfg, piece, "hardware", policy=policy, timeout_s=timeout_s)
        r["hardware_config"] = hardware_config
        return r
    t0 = time.monotonic()
    with Graph(cfg) as g:
        evaluator, pol = g.nodes["evaluator"], g.nodes["policy"]
        t_ready = time.monotonic()
        if not g.wait_for(lambda: evaluator.done, timeout_s):
            raise TimeoutError(f"play {piece} --hardware: the evaluator saw {evaluator.evaluator.n_seen}/"
                               f"{evaluator.evaluator.roll.n_steps} steps in {timeout_s:.0f} s")
        result: dict[str, Any] = {"piece": piece, "mode": "hardware", "hardware_config": hardware_config,
                                  "embodiment": pol.controller.scene.embodiment.key, "policy": policy,
                                  **evaluator.report}
        result.update(pol.controller.stats.summary())
        result.update({"wall_s": time.monotonic() - t_ready, "startup_s": t_ready - t0,
                       "safety": {s: f.state.value for s, f in pol.controller.filters.items()}})
        recorder = g.nodes.get("recorder")
        if recorder is not None:
            result["recording"] = recorder.path
    return result


LOOP_KEYS = ("loop_steps", "inference_ms_p50", "inference_ms_p99", "step_ms_p99", "loop_period_ms_p50",
             "loop_period_ms_p99", "overruns", "stale_inputs")
"""The policy's loop figures (``LoopStats.summary``), as its /diagnostics carry them."""


def play_in_processes(cfg: Any, piece: str, mode: str, *, policy: str = "prior",
                      timeout_s: float = 600.0) -> dict[str, Any]:
    """Play ``cfg`` (with an evaluator) one process per node (:class:`ProcessGraph`) until the evaluator's
    report; the report plus the policy's loop figures and safety states from its last /diagnostics, and
    each hand driver's last diagnostics status (``bus_diagnostics``)."""
    import json

    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor

    from omnipianist_ros import topics

    last: dict[str, dict[str, str]] = {}
    levels: dict[str, str] = {}
    policy_reports = [0]

    def on_diag(msg: DiagnosticArray) -> None:
        for st in msg.status:
            last[st.name] = {kv.key: kv.value for kv in st.values}
            levels[st.name] = st.message
            policy_reports[0] += st.name == "omnipianist/policy"

    with tempfile.TemporaryDirectory(prefix="omnipianist-play-") as tmp:
        report_path = Path(cfg.node("evaluator").params.report or Path(tmp) / "report.json")
        report_path.unlink(missing_ok=True)
        cfg = cfg.replace("evaluator", report=str(report_path))
        context = rclpy.Context()
        rclpy.init(context=context)
        probe = rclpy.create_node("play_probe", context=context)
        probe.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, on_diag, topics.DIAGNOSTICS_QOS)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(probe)

        spinner = Spinner(executor, "play_probe").start()
        try:
            t0 = time.monotonic()
            with ProcessGraph(cfg) as g:
                if not g.wait_for(report_path.exists, timeout_s):
                    logs = "".join(f"\n--- {n} ({'exited ' + str(p.returncode) if p.poll() is not None else 'running'})"
                                   f"\n{g.log(n)[-1500:]}" for n, p in g.processes.items())
                    raise TimeoutError(f"play {piece} ({mode}, processes): no evaluator report in {timeout_s:.0f} s"
                                       f"{logs}")
                wall = time.monotonic() - t0
                seen = policy_reports[0]  # one more 1 Hz /diagnostics from the policy, covering the last steps
                g.wait_for(lambda: policy_reports[0] > seen, 3.0)
        finally:
            spinner.stop(timeout_s=2.0)
            probe.destroy_node()
            rclpy.try_shutdown(context=context)
        report = json.loads(report_path.read_text())
    pol = last.get("omnipianist/policy", {})
    result: dict[str, Any] = {"piece": piece, "mode": mode, "graph": "processes",
                              "embodiment": cfg.node("policy").params.embodiment, "policy": policy, **report}
    for key in LOOP_KEYS:
        value = pol.get(key)
        result[key] = (float(value) if "." in value else int(value)) if value is not None else float("nan")
    result["safety"] = {side: pol.get(f"{side}.state", "?") for side in ("left", "right")}
    result["wall_s"] = wall
    result["steps_per_s"] = result["steps"] / max(wall, 1e-9)
    if any(n.name == "recorder" for n in cfg.nodes):
        result["recording"] = cfg.node("recorder").params.output
    drivers = {name.split("/", 1)[1]: levels[name] for name in levels if name.startswith("hand_driver/")}
    if drivers:
        result["bus_diagnostics"] = drivers
    return result


def run_play(cfg: PlayConfig) -> dict[str, Any]:
    """``omnipianist play``: :func:`play` (``--sim``, ``--hil``) or :func:`play_hardware` (``--hardware``);
    the evaluator's report plus loop figures (their keys vary with the mode)."""
    if not cfg.sim and not cfg.hil and cfg.hardware is None:
        raise ConfigError("play: choose --sim (the MuJoCo mock), --hil (hand drivers over emulated buses) or "
                          "--hardware HARDWARE_CONFIG (the rig)")
    if cfg.realtime and not cfg.hil:
        raise ConfigError("play: --realtime goes with --hil")
    common: dict[str, Any] = dict(policy=cfg.policy, embodiment=cfg.embodiment, tempo_scale=cfg.tempo_scale,
                                  config=cfg.config, report=cfg.report, timeout_s=cfg.timeout_s,
                                  processes=cfg.processes)
    try:
        if cfg.hardware is not None:
            if cfg.record:
                raise ConfigError("play --hardware: the recorder is in hardware.yaml (set recorder.output there)")
            return play_hardware(cfg.piece, cfg.hardware, **common)
        return play(cfg.piece, hil=cfg.hil, record=cfg.record, realtime=cfg.realtime, **common)
    except TimeoutError as exc:  # the message names what was seen and carries the nodes' logs
        raise OmnipianistError(f"{exc}\n(raise --timeout-s if the graph is only slow)") from exc


def format_play(r: dict[str, Any]) -> str:
    """One line of figures (plus one per bus with ``--hil``, and the recording)."""
    if r["mode"] == "hardware":
        where = f"hardware {r['hardware_config']}"
    else:
        where = "ROS HIL graph (drivers over emulated buses)" if r["mode"].startswith("hil") else "ROS sim graph"
    extra = (f", lock-step timeouts {r['lockstep_timeouts']}; {r['steps_per_s']:.0f} steps/s"
             if "lockstep_timeouts" in r else f", overruns {r['overruns']}, stale inputs {r['stale_inputs']}")
    human = (f"{r['piece']} ({r['embodiment']}, {r['policy']}, {where}): live F1 {r['f1']:.3f} "
             f"(P {r['precision']:.3f} R {r['recall']:.3f}), onset F1 {r['onset_f1']:.3f}, "
             f"do-nothing F1 {r['do_nothing_f1']:.3f}; {r['steps']} steps in {r['wall_s']:.1f} s, "
             f"inference p99 {r['inference_ms_p99']:.2f} ms, loop period p99 {r['loop_period_ms_p99']:.1f} ms{extra}")
    if "buses" in r:
        human += "".join(f"\n  {side} bus: {b.get('state')} ({b['lifecycle']}), {b.get('servos')} servos, "
                         f"{b.get('cycles')} cycles, timeouts {b.get('timeouts')}, CRC errors {b.get('crc_errors')}, "
                         f"watchdog trips {b.get('watchdog_trips')}, goals outside limits {b['out_of_limits']}"
                         for side, b in r["buses"].items())
    if r.get("recording"):
        human += f"\n  recorded {r['recording']}"
    return human


PLAY = Command("play", "play a piece through the ROS 2 graph (score, policy, safety, MuJoCo mock)", PlayConfig,
               run_play, format_play, positionals=("piece",))


def add_play_args(p: argparse.ArgumentParser) -> None:
    """The flags of ``omnipianist play`` (those :data:`PLAY` adds)."""
    PLAY.add_arguments(p)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry: ``python -m omnipianist_ros.cli play|bringup ...`` (the commands of ``omnipianist``)."""
    parser = argparse.ArgumentParser(prog="omnipianist_ros")
    args = build_parser(parser, (PLAY, BRINGUP), argv).parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
