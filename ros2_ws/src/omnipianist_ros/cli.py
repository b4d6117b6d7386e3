"""``omnipianist bringup CONFIG.yaml`` and ``omnipianist play PIECE --sim | --hardware DIR`` (wired into omnipianist/cli.py).

``play --sim`` brings the simulation graph of ``ros2_ws/config/sim.yaml`` up in lock-step (as fast as
the graph runs), plays the whole piece and prints the evaluator's live F1 (JSON keys as ``omnipianist
prior --json``: f1, precision, recall, onset_f1, steps, ... plus loop figures). ``play --hardware``
does the same in real time on the rig's graph (``ros2_ws/config/hardware.yaml``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from omnipianist.cliutil import emit
from omnipianist.errors import ConfigError


def add_bringup_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="bringup YAML (e.g. ros2_ws/config/sim.yaml)")
    p.add_argument("--check", action="store_true", help="validate the YAML and exit")
    p.add_argument("--json", action="store_true", help="print one JSON object (with --check)")


def run_bringup(args: argparse.Namespace) -> int:
    from omnipianist_ros.config import load_bringup_config

    cfg = load_bringup_config(args.config)
    if args.check:
        emit({"config": cfg.path, "nodes": {n.name: n.ros_parameters() for n in cfg.nodes}}, args.json)
        return 0
    from omnipianist_ros.bringup import spin_forever

    spin_forever(cfg)
    return 0


def add_play_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("piece", help="built-in piece name or MIDI file")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--sim", action="store_true", help="play in simulation (the MuJoCo mock, lock-step)")
    where.add_argument("--hardware", metavar="HARDWARE_CONFIG", default=None,
                       help="play on the rig: the hardware_config/ folder (hand YAMLs, bus.yaml, safety.yaml)")
    p.add_argument("--policy", default="prior", help="'prior' or the path of an exported .onnx policy")
    p.add_argument("--embodiment", default=None, help="override the config's embodiment")
    p.add_argument("--tempo-scale", type=float, default=None, help="override the config's tempo_scale")
    p.add_argument("--config", default=None,
                   help="bringup YAML (default: ros2_ws/config/sim.yaml, or hardware.yaml with --hardware)")
    p.add_argument("--report", default="", help="also write the evaluator's JSON report here")
    p.add_argument("--timeout-s", type=float, default=600.0, help="give up after this many wall seconds")
    p.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")


def _need(cfg: Any, names: tuple[str, ...]) -> None:
    for name in names:
        try:
            cfg.node(name)
        except KeyError as exc:
            raise ConfigError(f"{cfg.path}: play needs a node {name!r} in bringup.nodes") from exc


def play(piece: str, *, policy: str = "prior", embodiment: str | None = None, tempo_scale: float | None = None,
         config: str | None = None, report: str = "", timeout_s: float = 600.0) -> dict[str, Any]:
    """Play ``piece`` on the lock-step simulation graph; returns the evaluator's report plus loop figures.

    Raises ConfigError for a bad config, TimeoutError when the piece does not finish in ``timeout_s``.
    """
    from omnipianist_ros.bringup import Graph
    from omnipianist_ros.config import config_path, load_bringup_config

    cfg = load_bringup_config(config or config_path("sim.yaml"))
    _need(cfg, ("mujoco_mock", "score", "policy", "evaluator"))
    tempo = tempo_scale if tempo_scale is not None else cfg.node("score").params.tempo_scale
    cfg = cfg.replace("score", file=piece, tempo_scale=tempo, tick_source="clock", autostart=True)
    cfg = cfg.replace("evaluator", file=piece, tempo_scale=tempo, report=report)
    cfg = cfg.replace("policy", policy=policy, trigger="lockstep")
    cfg = cfg.replace("mujoco_mock", mode="lockstep")
    if embodiment is not None:
        cfg = cfg.replace("policy", embodiment=embodiment).replace("mujoco_mock", embodiment=embodiment)
    t0 = time.monotonic()
    with Graph(cfg) as g:
        evaluator, mock, pol = g.nodes["evaluator"], g.nodes["mujoco_mock"], g.nodes["policy"]
        t_ready = time.monotonic()
        if not g.wait_for(lambda: evaluator.done, timeout_s):
            raise TimeoutError(f"play {piece}: the evaluator saw {evaluator.evaluator.n_seen}/"
                               f"{evaluator.evaluator.roll.n_steps} steps in {timeout_s:.0f} s")
        wall = time.monotonic() - t_ready
        result: dict[str, Any] = {"piece": piece, "mode": "sim", "embodiment": pol.controller.scene.embodiment.key,
                                  "policy": policy, **evaluator.report}
        result.update(pol.controller.stats.summary())
        result.update({"lockstep_timeouts": mock.lockstep_timeouts, "sim_steps": mock.piano.steps,
                       "wall_s": wall, "startup_s": t_ready - t0,
                       "steps_per_s": result["steps"] / max(wall, 1e-9)})
    return result


def play_hardware(piece: str, hardware_config: str, *, policy: str = "prior", embodiment: str | None = None,
                  tempo_scale: float | None = None, config: str | None = None, report: str = "",
                  timeout_s: float = 600.0) -> dict[str, Any]:
    """Play ``piece`` on the rig (``ros2_ws/config/hardware.yaml`` graph: hand drivers, piano listener, score,
    policy + safety filter, evaluator, recorder) in real time; returns the evaluator's report plus loop figures.

    The score starts on its own (after ``start_delay``). Raises ConfigError for a bad config or a missing
    node (e.g. "hand driver node not available: ..."), TimeoutError when the piece does not finish.
    """
    from omnipianist_ros.bringup import Graph
    from omnipianist_ros.config import config_path, load_bringup_config

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


def run_play(args: argparse.Namespace) -> int:
    if not args.sim and args.hardware is None:
        raise ConfigError("play: choose --sim (the MuJoCo mock) or --hardware HARDWARE_CONFIG (the rig)")
    common = dict(policy=args.policy, embodiment=args.embodiment, tempo_scale=args.tempo_scale,
                  config=args.config, report=args.report, timeout_s=args.timeout_s)
    if args.hardware is not None:
        r = play_hardware(args.piece, args.hardware, **common)  # type: ignore[arg-type]
        where = f"hardware {args.hardware}"
    else:
        r = play(args.piece, **common)  # type: ignore[arg-type]
        where = "ROS sim graph"
    extra = (f", lock-step timeouts {r['lockstep_timeouts']}; {r['steps_per_s']:.0f} steps/s"
             if "lockstep_timeouts" in r else f", overruns {r['overruns']}, stale inputs {r['stale_inputs']}")
    human = (f"{r['piece']} ({r['embodiment']}, {r['policy']}, {where}): live F1 {r['f1']:.3f} "
             f"(P {r['precision']:.3f} R {r['recall']:.3f}), onset F1 {r['onset_f1']:.3f}, "
             f"do-nothing F1 {r['do_nothing_f1']:.3f}; {r['steps']} steps in {r['wall_s']:.1f} s, "
             f"inference p99 {r['inference_ms_p99']:.2f} ms, loop period p99 {r['loop_period_ms_p99']:.1f} ms{extra}")
    emit(r, args.json, human)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m omnipianist_ros.cli play ...``) until omnipianist/cli.py wires it."""
    parser = argparse.ArgumentParser(prog="omnipianist_ros")
    sub = parser.add_subparsers(dest="cmd", required=True)
    add_play_args(sub.add_parser("play"))
    add_bringup_args(sub.add_parser("bringup"))
    args = parser.parse_args(argv)
    return run_play(args) if args.cmd == "play" else run_bringup(args)


if __name__ == "__main__":
    raise SystemExit(main())
