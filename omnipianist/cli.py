"""The ``omnipianist`` command line: a table of commands. Every command a script may call has ``--json``.

Each command lives in its domain module as an :class:`omnipianist.command.Command` (a config dataclass whose
fields are the flags, ``run(cfg) -> result``, a formatter); :func:`build_parser` turns the table into the
argparse parser. The ROS 2 commands and ``calibrate`` are named by ``"module:NAME"``
(:class:`~omnipianist.command.LazyCommand`): ``omnipianist_ros`` and the hardware layer are imported only for them.
"""

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
from collections.abc import Sequence  # noqa: E402

from omnipianist import __version__  # noqa: E402
from omnipianist.command import Entry, Group, LazyCommand  # noqa: E402
from omnipianist.command import build_parser as build_command_parser  # noqa: E402
from omnipianist.dds import use_loopback  # noqa: E402
from omnipianist.demo import DEMO  # noqa: E402
from omnipianist.errors import OmnipianistError  # noqa: E402
from policy_export.cli import BENCH_INFERENCE, EXPORT  # noqa: E402
from sim_training.dataset.cli import COLLECT, DATASET_CARD  # noqa: E402
from sim_training.env.commands import BENCH_SIM, INFO, SIM  # noqa: E402
from sim_training.experts.bench import BENCH_EXPERT  # noqa: E402
from sim_training.experts.cli import TRAIN_EXPERT  # noqa: E402
from sim_training.experts.fanout import TRAIN_EXPERTS  # noqa: E402
from sim_training.experts.planner import PLAN  # noqa: E402
from sim_training.experts.search import SEARCH_PRIOR  # noqa: E402
from sim_training.fingering.commands import BENCH_PRIOR, FINGERING, PRIOR  # noqa: E402
from sim_training.imitation.benchmark import BENCH_GENERALIST  # noqa: E402
from sim_training.imitation.cli import EVALUATE, TRAIN_KNOB_HEAD, TRAIN_POLICY  # noqa: E402
from sim_training.music.corpus.cli import COMMANDS as CORPUS  # noqa: E402

COMMANDS: tuple[Entry, ...] = (
    INFO,
    SIM,
    PRIOR,
    FINGERING,
    TRAIN_EXPERT,
    SEARCH_PRIOR,
    PLAN,
    TRAIN_EXPERTS,
    COLLECT,
    DATASET_CARD,
    TRAIN_POLICY,
    TRAIN_KNOB_HEAD,
    EVALUATE,
    # imported when named: omnipianist_ros sets BLAS thread variables, the hardware layer needs pyserial
    LazyCommand("play", "play a piece through the ROS 2 graph (score, policy, safety, MuJoCo mock)",
                "omnipianist_ros.cli:PLAY"),
    LazyCommand("bringup", "bring up a ROS 2 graph from a YAML file without `launch`", "omnipianist_ros.cli:BRINGUP"),
    LazyCommand("calibrate", "guided calibration: joint offsets/directions into a hand YAML (hand limp)",
                "omnipianist.hardware.calibration:CALIBRATE"),
    EXPORT,
    Group("corpus", "the corpus of two-hand clips: build it from music21, or list it", CORPUS),
    Group("bench", "benchmarks (print JSON with --json; exit 1 when a target is missed)", (
        BENCH_SIM,
        BENCH_PRIOR,
        BENCH_EXPERT,
        BENCH_GENERALIST,
        LazyCommand("loop", "real-time ROS control loop: period jitter, score->command latency, misses",
                    "omnipianist_ros.loopbench:BENCH_LOOP"),
        BENCH_INFERENCE,
        LazyCommand("plan-noise", "how much of the planner's gain over the prior survives action noise",
                    "sim_training.experts.plan_noise:BENCH_PLAN_NOISE"),
        LazyCommand("knob-critic", "can a critic tell which of the planner's knob candidates win, from the observation?",
                    "sim_training.imitation.knobcritic:BENCH_KNOB_CRITIC"),
    ), metavar="BENCH"),
    DEMO,
)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of :data:`COMMANDS` (with ``argv``: only the command it names gets its flags)."""
    parser = argparse.ArgumentParser(
        prog="omnipianist", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Sim-to-real piano playing with two dexterous hands.")
    parser.add_argument("--version", action="version", version=f"omnipianist {__version__}")
    return build_command_parser(parser, COMMANDS, argv)


def main(argv: Sequence[str] | None = None) -> int:
    use_loopback()  # before anything can start DDS (rclpy) in this process or its children
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
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
    except BrokenPipeError:  # `omnipianist ... --json | head`: the reader left; no traceback at exit either
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
