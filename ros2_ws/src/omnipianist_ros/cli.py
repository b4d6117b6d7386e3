"""``omnipianist bringup CONFIG.yaml`` and ``omnipianist play PIECE --sim`` (wired into omnipianist/cli.py).

``play`` brings the simulation graph of ``ros2_ws/config/sim.yaml`` up in lock-step (as fast as the
graph runs), plays the whole piece and prints the evaluator's F1 (JSON keys as ``omnipianist prior
--json``: f1, precision, recall, onset_f1, steps, ... plus loop figures).
"""

from __future__ import annotations

import argparse
import time
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
    p.add_argument("--sim", action="store_true", help="play in simulation (the MuJoCo mock); required for now")
    p.add_argument("--policy", default="prior", help="'prior' or the path of an exported .onnx policy")
    p.add_argument("--embodiment", default=None, help="override the config's embodiment")
    p.add_argument("--tempo-scale", type=float, default=None, help="override the config's tempo_scale")
    p.add_argument("--config", default=None, help="bringup YAML (default: ros2_ws/config/sim.yaml)")
    p.add_argument("--report", default="", help="also write the evaluator's JSON report here")
    p.add_argument("--timeout-s", type=float, default=600.0, help="give up after this many wall seconds")
    p.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")


def play(piece: str, *, policy: str = "prior", embodiment: str | None = None, tempo_scale: float | None = None,
         config: str | None = None, report: str = "", timeout_s: float = 600.0) -> dict[str, Any]:
    """Play ``piece`` on the lock-step simulation graph; returns the evaluator's report plus loop figures.

    Raises ConfigError for a bad config, TimeoutError when the piece does not finish in ``timeout_s``.
    """
    from omnipianist_ros.bringup import Graph
    from omnipianist_ros.config import config_path, load_bringup_config

    cfg = load_bringup_config(config or config_path("sim.yaml"))
    for name in ("mujoco_mock", "score", "policy", "evaluator"):
        cfg.node(name)  # KeyError -> the config lacks a node play needs
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
        result: dict[str, Any] = {"piece": piece, "embodiment": pol.controller.scene.embodiment.key,
                                  "policy": policy, **evaluator.report}
        result.update(pol.controller.stats.summary())
        result.update({"lockstep_timeouts": mock.lockstep_timeouts, "sim_steps": mock.piano.steps,
                       "wall_s": wall, "startup_s": t_ready - t0,
                       "steps_per_s": result["steps"] / max(wall, 1e-9)})
    return result


def run_play(args: argparse.Namespace) -> int:
    if not args.sim:
        raise ConfigError("play: only --sim is available (the hardware driver node is not written yet)")
    r = play(args.piece, policy=args.policy, embodiment=args.embodiment, tempo_scale=args.tempo_scale,
             config=args.config, report=args.report, timeout_s=args.timeout_s)
    human = (f"{r['piece']} ({r['embodiment']}, {r['policy']}, ROS sim graph): F1 {r['f1']:.3f} "
             f"(P {r['precision']:.3f} R {r['recall']:.3f}), onset F1 {r['onset_f1']:.3f}, "
             f"do-nothing F1 {r['do_nothing_f1']:.3f}; {r['steps']} steps in {r['wall_s']:.1f} s "
             f"({r['steps_per_s']:.0f} steps/s), inference p99 {r['inference_ms_p99']:.2f} ms, "
             f"lock-step timeouts {r['lockstep_timeouts']}")
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
