"""The ``omnipianist`` command line. Every command a script may call has ``--json``."""

from __future__ import annotations

import os

# Offscreen rendering on a machine without a display: EGL (Mesa) unless the user chose otherwise.
# Must be set before mujoco is imported anywhere in this process.
os.environ.setdefault("MUJOCO_GL", "egl")
# Our parallelism is explicit (batched envs on threads, Ray/process pools, torch.set_num_threads);
# a multi-threaded BLAS under it oversubscribes the cores. Must be set before numpy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable, Sequence
from typing import Any

from omnipianist import __version__
from omnipianist.cliutil import add_dataclass_args, dataclass_from_args, emit, progress
from omnipianist.errors import OmnipianistError

Handler = Callable[[argparse.Namespace], int]


def _add_common(p: argparse.ArgumentParser, embodiment: bool = True) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")
    if embodiment:
        p.add_argument("--embodiment", default="shadow", choices=["shadow", "leap"],
                       help="hand model (default: %(default)s)")
        p.add_argument("--action-set", default="reduced", choices=["reduced", "full"],
                       help="commanded joints: RP1M's reduced set or every actuator (default: %(default)s)")
        p.add_argument("--forearm-z", action="store_true", help="add a vertical forearm slide (PianoMime)")


# ---------------------------------------------------------------------------------------- info
def cmd_info(args: argparse.Namespace) -> int:
    from sim_training.env.observation import ObservationLayout
    from sim_training.models.embodiment import embodiment_names, get_embodiment
    from sim_training.models.scene import build_scene

    out: dict[str, Any] = {"version": __version__, "embodiments": {}}
    for name in embodiment_names():
        emb = get_embodiment(name, args.action_set, args.forearm_z)
        scene = build_scene(emb)
        layout = ObservationLayout.for_embodiment(emb)
        out["embodiments"][emb.key] = {
            "model": scene.sizes(), "action_dim": emb.action_dim, "observation_dim": layout.size,
            "fingertips": emb.n_fingertips, "hand_joints": len(emb.all_joint_names),
            "observation_fields": {f.name: f.size for f in layout.fields},
        }
    lines = [f"omnipianist {__version__}"]
    for key, v in out["embodiments"].items():
        lines.append(f"  {key:8s} obs {v['observation_dim']:5d}  action {v['action_dim']:3d}  "
                     f"fingertips {v['fingertips']:2d}  model {v['model']}")
    emit(out, args.json, "\n".join(lines))
    return 0


# ---------------------------------------------------------------------------------------- sim
def cmd_sim(args: argparse.Namespace) -> int:
    """Play a piece with a baseline policy (hold the home posture, or random actions)."""
    import numpy as np

    from sim_training.env.piano_env import EnvConfig, PianoEnv
    from sim_training.env.rollout import rollout
    from sim_training.models.embodiment import get_embodiment

    emb = get_embodiment(args.embodiment, args.action_set, args.forearm_z)
    env = PianoEnv(args.piece, emb, EnvConfig(clip_steps=None, random_start=False, stretch=args.stretch),
                   render_mode="rgb_array" if args.video else None)
    rng = np.random.default_rng(args.seed)
    home = env.scene.ctrl_to_action(env.scene.home_ctrl)
    ep = rollout(env, lambda obs: home if args.policy == "home" else rng.uniform(-1, 1, emb.action_dim),
                 seed=args.seed, start_step=None, frames=bool(args.video),
                 steps_iter=lambda r: progress(r, desc=f"{args.policy} on {args.piece}", disable=args.json))
    m = {k: v for k, v in ep.metrics.items() if k not in ("onset_precision", "onset_recall")}
    result = {"piece": args.piece, "embodiment": emb.key, "policy": args.policy, **m,
              "return": ep.reward, "steps_per_s": ep.steps_per_s}
    if args.video:
        from omnipianist.media import write_video

        result["video"] = write_video(ep.frames, args.video, fps=env.metadata["render_fps"])
    env.close()
    emit(result, args.json, _format_play(result))
    return 0


def _format_play(r: dict[str, Any]) -> str:
    return (f"{r['piece']} ({r['embodiment']}, {r['policy']}): F1 {r['f1']:.3f} "
            f"(P {r['precision']:.3f} R {r['recall']:.3f}; note steps {r['note_step_f1']:.3f}; "
            f"onset F1 {r['onset_f1']:.3f}; do-nothing F1 {r['do_nothing_f1']:.3f}) "
            f"{r['steps']} steps at {r['steps_per_s']:.0f} steps/s")


# ---------------------------------------------------------------------------------------- prior
def _prior_run(args: argparse.Namespace, video: bool = False) -> Any:
    from sim_training.fingering.piece import play_with_prior
    from sim_training.fingering.prior import PriorConfig
    from sim_training.models.embodiment import get_embodiment

    emb = get_embodiment(args.embodiment, args.action_set, args.forearm_z)
    return play_with_prior(args.piece, emb, dataclass_from_args(PriorConfig, args), video=video,
                           stretch=args.stretch)


def cmd_prior(args: argparse.Namespace) -> int:
    """Play a piece with the zero-training OT/IK prior and report F1."""
    run = _prior_run(args, video=bool(args.video))
    m = run.metrics
    result: dict[str, Any] = {
        "piece": args.piece, **run.summary(),
        "f1": m["f1"], "precision": m["precision"], "recall": m["recall"], "onset_f1": m["onset_f1"],
        "steps": int(m["steps"]),
    }
    if args.video:
        from omnipianist.media import write_video

        result["video"] = write_video(run.frames, args.video, fps=20)
    if args.plot:
        from omnipianist.plots import plot_piano_roll

        result["plot"] = plot_piano_roll(run.roll, run.active, args.plot, fingering=run.notes,
                                         title=f"{args.piece} — OT/IK prior ({run.embodiment}) F1 {m['f1']:.3f}")
    human = (f"{args.piece} ({run.embodiment}, OT/IK prior): F1 {m['f1']:.3f} (P {m['precision']:.3f} "
             f"R {m['recall']:.3f}; note steps {m['note_step_f1']:.3f}; onset F1 {m['onset_f1']:.3f}; "
             f"do-nothing F1 {m['do_nothing_f1']:.3f}); {int(m['steps'])} steps, "
             f"{result['steps_per_s']:.0f} steps/s, prior step p99 {result['prior_step_ms_p99']:.2f} ms")
    emit(result, args.json, human)
    return 0


def cmd_fingering(args: argparse.Namespace) -> int:
    """A finger (hand, digit) for every note of a piece, from the prior playing it in simulation."""
    from collections import Counter

    from sim_training.fingering.piece import write_fingering_csv

    run = _prior_run(args)
    notes = run.notes
    out_csv = args.out
    if out_csv:
        write_fingering_csv(notes, out_csv)
    png = args.plot or (str(out_csv).rsplit(".", 1)[0] + ".png" if out_csv else None)
    if png:
        from omnipianist.plots import plot_piano_roll

        plot_piano_roll(run.roll, run.active, png, fingering=notes, title=f"{args.piece} — fingering ({run.embodiment})")
    counts = Counter(f"{n.hand[0].upper()}{n.digit}" if n.hand else "dropped" for n in notes)
    result = {"piece": args.piece, "embodiment": run.embodiment, "notes": len(notes),
              "dropped": sum(n.hand is None for n in notes), "played": sum(n.played for n in notes),
              "by_finger": dict(sorted(counts.items())), "csv": out_csv, "png": png,
              "fingering": [n.__dict__ for n in notes] if args.json and not out_csv else None}
    human = "\n".join([f"{args.piece}: {len(notes)} notes, {result['played']} played, {result['dropped']} dropped",
                        *(f"  {n.onset_s:7.2f}s  pitch {n.pitch:3d}  "
                          f"{(n.hand or '-'):5s} {n.digit or '-'}  {'played' if n.played else 'MISSED'}"
                          for n in notes[: args.show]),
                        *([f"  ... ({len(notes) - args.show} more; --out F.csv for all)"] if len(notes) > args.show else []),
                        *([f"  wrote {out_csv}"] if out_csv else []), *([f"  wrote {png}"] if png else [])])
    emit(result, args.json, human)
    return 0


# ---------------------------------------------------------------------------------------- bench
def cmd_bench_prior(args: argparse.Namespace) -> int:
    from sim_training.fingering.bench import PriorBenchConfig, run_prior_bench

    result = run_prior_bench(dataclass_from_args(PriorBenchConfig, args))
    emit(result, args.json)
    return 0 if result["ok"] else 1


def cmd_bench_generalist(args: argparse.Namespace) -> int:
    from sim_training.imitation.benchmark import GeneralistBenchConfig, format_table, run_generalist_bench

    cfg = GeneralistBenchConfig(policies=tuple(args.policy), unseen_pieces=args.unseen_pieces,
                                seen_pieces=args.seen_pieces, seed=args.seed, target_policy=args.target_policy,
                                plans=args.plans, show_progress=not args.json)
    result = run_generalist_bench(cfg)
    if args.out:
        from pathlib import Path

        from omnipianist.fileio import save_json

        save_json(result, Path(args.out))
    targets = "; ".join(f"{k} {v['measured']} (target {v['target']}) {'ok' if v['ok'] else 'MISSED'}"
                        for k, v in result["targets"].items())
    emit(result, args.json, f"{format_table(result)}\n\n{targets}; {result['wall_s']:.0f} s")
    return 0 if result["ok"] else 1


def cmd_bench_expert(args: argparse.Namespace) -> int:
    from sim_training.experts.bench import ExpertBenchConfig, run_expert_bench

    result = run_expert_bench(dataclass_from_args(ExpertBenchConfig, args), list(args.extra))
    emit(result, args.json, _format_expert_bench(result))
    return 0 if result["ok"] else 1


def _format_expert_bench(r: dict[str, Any]) -> str:
    lines = [f"expert bench ({r['split']} split, planner budget {r['budget']}):"]
    for emb, t in r["planner"].items():
        m = t["mean"]
        lines.append(f"  planner {emb}: {t['pieces']} clips, F1 {m['f1']:.3f} vs prior {m['prior_f1']:.3f} "
                     f"(onset {m['onset_f1']:.3f} vs {m['prior_onset_f1']:.3f}; do nothing {m['do_nothing_f1']:.3f}); "
                     f"beats the prior on {t['beats_prior']}/{t['pieces']}; {m['cpu_s_per_30s']:.1f} CPU-s per 30 s "
                     f"(p90 {t['cpu_s_per_30s_p90']:.1f})")
    for key in ("cem", "droq"):
        if key in r:
            c = r[key]
            lines.append(f"  {key}: {c['pieces']} clips, F1 {c['mean_f1']:.3f} vs planner "
                         f"{c['mean_planner_f1_same_pieces']:.3f} vs prior {c['mean_prior_f1']:.3f} ({c['note']})")
    for c in r.get("budget_curve", []):
        lines.append(f"  budget {c['budget']:3d}: F1 {c['f1']:.3f} (prior {c['prior_f1']:.3f}), "
                     f"{c['cpu_s_per_30s']:.1f} CPU-s per 30 s")
    for k, v in r["targets"].items():
        lines.append(f"  {'ok  ' if v['ok'] else 'MISS'} {k}: {v['measured']} (target {v['target']})")
    return "\n".join(lines)


def cmd_bench_sim(args: argparse.Namespace) -> int:
    from sim_training.env.bench import SimBenchConfig, run_sim_bench

    result = run_sim_bench(dataclass_from_args(SimBenchConfig, args))
    human = (f"sim bench ({result['embodiment']}, {result['model']}):\n"
             f"  env      {result['env_steps_per_s']:8.1f} control steps/s\n"
             f"  raw      {result['raw_mj_step_control_steps_per_s']:8.1f} control steps/s  "
             f"env/raw {result['env_over_raw']:.3f} (target >= {result['targets']['env_over_raw']})\n"
             f"  batched  {result['batched_steps_per_s']:8.1f} control steps/s  "
             f"({result['batched_envs']} envs, {result['batched_threads']} threads) "
             f"x{result['batched_over_single']:.2f} (target >= {result['targets']['batched_over_single']})\n"
             f"  {'OK' if result['ok'] else 'MISSED TARGET'}")
    emit(result, args.json, human)
    return 0 if result["ok"] else 1


# ---------------------------------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace) -> int:
    from omnipianist.demo import run_demo

    return run_demo(args)


# ---------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omnipianist", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Sim-to-real piano playing with two dexterous hands.")
    parser.add_argument("--version", action="version", version=f"omnipianist {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("info", help="embodiments, model sizes and observation layouts")
    _add_common(p, embodiment=False)
    p.add_argument("--action-set", default="reduced", choices=["reduced", "full"])
    p.add_argument("--forearm-z", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("sim", help="play a piece in the simulator with a baseline policy")
    p.add_argument("piece", help="built-in piece name or a MIDI file")
    _add_common(p)
    p.add_argument("--policy", default="home", choices=["home", "random"],
                   help="baseline: hold the home posture, or uniform random actions (default: %(default)s)")
    p.add_argument("--stretch", type=float, default=1.0, help="time stretch (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    p.add_argument("--video", default=None, help="write an MP4 of the hands to this path")
    p.set_defaults(func=cmd_sim)

    from sim_training.fingering.prior import PriorConfig

    for name, func, helptext in (("prior", cmd_prior, "play a piece with the zero-training OT/IK prior"),
                                 ("fingering", cmd_fingering, "a finger for every note of a piece (CSV + PNG)")):
        p = sub.add_parser(name, help=helptext, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        p.add_argument("piece", help="built-in piece name or a MIDI file")
        _add_common(p)
        p.add_argument("--stretch", type=float, default=1.0, help="time stretch")
        p.add_argument("--plot", default=None, help="write a PNG piano roll (score vs played, by finger)")
        if name == "prior":
            p.add_argument("--video", default=None, help="write an MP4 of the hands playing")
        else:
            p.add_argument("--out", default=None, help="write the fingering CSV here (PNG beside it)")
            p.add_argument("--show", type=int, default=20, help="notes to print")
        add_dataclass_args(p, PriorConfig)
        p.set_defaults(func=func)

    from sim_training.experts.cli import add_train_expert_args, run_train_expert

    p = sub.add_parser("train-expert", help="train one residual DroQ expert on a piece (resumable)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_train_expert_args(p)
    p.set_defaults(func=run_train_expert)

    from sim_training.experts.fanout import add_train_experts_args, run_train_experts
    from sim_training.experts.search import add_search_prior_args, run_search_prior

    p = sub.add_parser("search-prior", help="cross-entropy search of the OT/IK prior's knobs on one piece",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_search_prior_args(p)
    p.set_defaults(func=run_search_prior)
    from sim_training.experts.planner import add_plan_args, run_plan

    p = sub.add_parser("plan", help="the expert: receding-horizon search over the prior's knobs on one piece",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_plan_args(p)
    p.set_defaults(func=run_plan)
    p = sub.add_parser("train-experts", help="one expert per piece (the planner by default), fanned out on Ray",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_train_experts_args(p)
    p.set_defaults(func=run_train_experts)

    from sim_training.dataset.cli import add_collect_args, add_dataset_card_args, run_collect, run_dataset_card

    p = sub.add_parser("collect", help="collect expert/prior-labelled episodes into a zarr dataset (RP1M++)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_collect_args(p)
    p.set_defaults(func=run_collect)
    p = sub.add_parser("dataset-card", help="the dataset card (pieces, episodes, steps, hours, F1 histogram)")
    add_dataset_card_args(p)
    p.set_defaults(func=run_dataset_card)

    from sim_training.imitation.cli import (
        add_evaluate_args,
        add_train_knob_head_args,
        add_train_policy_args,
        run_evaluate,
        run_train_knob_head,
        run_train_policy,
    )

    p = sub.add_parser("train-policy", help="train the flow-matching generalist (or the BC-MLP baseline) on a dataset",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_train_policy_args(p)
    p.set_defaults(func=run_train_policy)
    p = sub.add_parser("train-knob-head", help="train the knob-head generalist on planner experts (+ relabel rounds)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_train_knob_head_args(p)
    p.set_defaults(func=run_train_knob_head)
    p = sub.add_parser("evaluate", help="play a piece with a trained policy; same JSON keys as `prior`",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_evaluate_args(p)
    p.set_defaults(func=run_evaluate)

    from omnipianist_ros.cli import add_bringup_args, add_play_args, run_bringup, run_play

    p = sub.add_parser("play", help="play a piece through the ROS 2 graph (score, policy, safety, MuJoCo mock)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_play_args(p)
    p.set_defaults(func=run_play)
    p = sub.add_parser("bringup", help="bring up a ROS 2 graph from a YAML file without `launch`",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_bringup_args(p)
    p.set_defaults(func=run_bringup)

    from omnipianist.hardware.calibration import add_calibrate_args, run_calibrate

    p = sub.add_parser("calibrate", help="guided calibration: joint offsets/directions into a hand YAML (hand limp)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_calibrate_args(p)
    p.set_defaults(func=run_calibrate)

    from policy_export.cli import add_export_args, run_export

    p = sub.add_parser("export", help="export a policy (generalist or expert) to ONNX with its contract embedded",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_export_args(p)
    p.set_defaults(func=run_export)

    from sim_training.music import corpus as corpus_mod

    p = sub.add_parser("corpus", help="the corpus of two-hand clips: build it from music21, or list it")
    corpus_mod.build_parser(p)
    p.set_defaults(func=lambda a: corpus_mod.run(a, sys.argv[2:]))

    bench = sub.add_parser("bench", help="benchmarks (print JSON with --json; exit 1 when a target is missed)")
    bsub = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    from sim_training.env.bench import SimBenchConfig

    p = bsub.add_parser("sim", help="env vs raw mj_step control-steps/s, and batched speed-up")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_dataclass_args(p, SimBenchConfig)
    p.set_defaults(func=cmd_bench_sim)

    from sim_training.fingering.bench import PriorBenchConfig

    p = bsub.add_parser("prior", help="prior F1 on built-in and corpus pieces; OT and prior step p99")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_dataclass_args(p, PriorBenchConfig)
    p.set_defaults(func=cmd_bench_prior)

    from sim_training.experts.bench import ExpertBenchConfig

    p = bsub.add_parser("expert", help="planner vs prior (and per-piece CEM, residual DroQ) on the test clips, "
                                       "Shadow and LEAP; F1 vs budget")
    p.add_argument("extra", nargs="*", help="extra MIDI files or folders (e.g. RoboPianist's nocturne-trimmed.mid)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_dataclass_args(p, ExpertBenchConfig)
    p.set_defaults(func=cmd_bench_expert)

    p = bsub.add_parser("generalist", help="generalists (FMT, BC-MLP) vs the prior: F1 on seen and unseen corpus pieces",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--policy", action="append", required=True, metavar="NAME=PATH",
                   help="a generalist checkpoint, run directory or .onnx (repeat; the first is checked against the targets)")
    p.add_argument("--unseen-pieces", type=int, default=20, help="test-split pieces (the same for every policy; 0 = all)")
    p.add_argument("--seen-pieces", type=int, default=20, help="pieces from each policy's own training set")
    p.add_argument("--seed", type=int, default=0, help="piece sampling seed")
    p.add_argument("--target-policy", default="", help="policy the targets are checked on ('' = the first)")
    p.add_argument("--plans", default="", help="planner experts' folder (<piece>/plan.json): the planner as a row")
    p.add_argument("--out", default="", help="also write the JSON result here")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_bench_generalist)

    from omnipianist_ros.loopbench import add_bench_loop_args, run_bench_loop

    p = bsub.add_parser("loop", help="real-time ROS control loop: period jitter, score->command latency, misses",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_bench_loop_args(p)
    p.set_defaults(func=run_bench_loop)

    from policy_export.cli import add_bench_inference_args, run_bench_inference

    p = bsub.add_parser("inference", help="ORT vs torch latency per control step, FLOPs, fraction of the GEMM ceiling")
    add_bench_inference_args(p)
    p.set_defaults(func=run_bench_inference)

    p = sub.add_parser("demo", help="the main job: what `make demo` runs")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", default="runs", help="output folder (default: %(default)s)")
    p.add_argument("--piece", default="twinkle", help="piece to play (default: %(default)s)")
    p.add_argument("--policy", default="", help="exported .onnx generalist (default: the shipped models/generalist one)")
    p.add_argument("--no-video", action="store_true", help="skip the MP4 (offscreen rendering)")
    p.add_argument("--no-ros", action="store_true", help="skip the ROS 2 graph + serial HIL stage")
    p.add_argument("--ros-timeout-s", type=float, default=600.0, help="give up on the ROS stage after (default: %(default)s)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from omnipianist.dds import use_loopback

    use_loopback()  # before anything can start DDS (rclpy) in this process or its children
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except OmnipianistError as exc:
        print(f"omnipianist: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as exc:
        # loaders name the file and field in these; a traceback helps only a developer
        if os.environ.get("OMNIPIANIST_DEBUG"):
            raise
        print(f"omnipianist: error: {type(exc).__name__}: {exc} (OMNIPIANIST_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("omnipianist: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
