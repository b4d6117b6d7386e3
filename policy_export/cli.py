"""``omnipianist export CKPT --out model.onnx`` and ``omnipianist bench inference``.

Hook into the main CLI with :func:`add_export_args` / :func:`run_export` and
:func:`add_bench_inference_args` / :func:`run_bench_inference` (sub-parser, handler);
:func:`main_export` and :func:`main_bench_inference` run them standalone.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from omnipianist.cliutil import emit


def add_export_args(parser: argparse.ArgumentParser) -> None:
    """Positional CKPT, ``--out``, ``--euler-steps``, ``--opset``, ``--verify`` [``--piece``, sample counts], ``--json``."""
    from policy_export.export import DEFAULT_OPSET

    parser.add_argument("checkpoint", help="generalist checkpoint (policy.pt, last.pt or run dir), or an expert "
                                           "(train_expert run dir / best.pt, or a train_piece_expert folder)")
    parser.add_argument("--out", required=True, help="output file (.onnx)")
    parser.add_argument("--euler-steps", type=int, default=None,
                        help="Euler steps inside the graph (default: the checkpoint's k_steps)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset (default: %(default)s)")
    parser.add_argument("--verify", action="store_true",
                        help="check ORT vs torch parity (max |delta action|, F1 of --piece); exit 1 when it fails")
    parser.add_argument("--piece", default="twinkle", help="piece for --verify (default: %(default)s)")
    parser.add_argument("--n-random", type=int, default=500, help="random inputs for --verify (default: %(default)s)")
    parser.add_argument("--n-rollout", type=int, default=500,
                        help="rollout inputs for --verify (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")


def run_export(args: argparse.Namespace) -> int:
    """Export (and optionally verify); returns the exit status."""
    from policy_export.export import export_policy

    r = export_policy(args.checkpoint, args.out, args.euler_steps, args.opset)
    human = (f"exported {r['kind']} policy ({r['embodiment']}, K={r['euler_steps']}, opset {r['opset']}) -> {r['out']} "
             f"({r['bytes'] / 1e6:.2f} MB, {r['nodes']} nodes, {r['export_s']:.1f} s; ORT vs torch on a random "
             f"input {r['check_max_abs_diff']:.1e})")
    ok = True
    if args.verify:
        from policy_export.verify import format_parity, verify_parity

        v = verify_parity(args.checkpoint, args.out, args.n_random, args.n_rollout, args.piece)
        r["verify"] = v
        ok = bool(v["ok"])
        human += "\n" + format_parity(v)
    emit(r, args.json, human)
    return 0 if ok else 1


def add_bench_inference_args(parser: argparse.ArgumentParser) -> None:
    """``--policy``, ``--checkpoint``, ``--euler-steps``, call counts, ``--no-pin``, ``--int8``, ``--fp16``, ``--json``."""
    from policy_export.bench import InferenceBenchConfig

    d = InferenceBenchConfig()
    parser.add_argument("--policy", default=None,
                        help="exported .onnx (or a checkpoint, exported on the fly); default: the default FMT, untrained")
    parser.add_argument("--checkpoint", default=None, help="torch source of --policy (default: the path in its metadata)")
    parser.add_argument("--euler-steps", type=int, default=None, help="K for on-the-fly exports")
    parser.add_argument("--ort-calls", type=int, default=d.ort_calls, help="timed ORT steps (default: %(default)s)")
    parser.add_argument("--torch-calls", type=int, default=d.torch_calls, help="timed torch steps (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=d.rounds, help="interleaved ORT / torch blocks (default: %(default)s)")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin the process to one core")
    parser.add_argument("--int8", action="store_true",
                        help="also time the int8 (dynamic quantisation) variant, with its F1 change")
    parser.add_argument("--fp16", action="store_true", help="also time the fp16 variant, with its F1 change")
    parser.add_argument("--piece", default=d.piece, help="piece for the variants' F1 (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run_bench_inference(args: argparse.Namespace) -> int:
    """Run the benchmark and print it; exit status 1 when a target is missed."""
    from policy_export.bench import InferenceBenchConfig, format_bench, run_inference_bench

    cfg = InferenceBenchConfig(policy=args.policy, checkpoint=args.checkpoint, euler_steps=args.euler_steps,
                               ort_calls=args.ort_calls, torch_calls=args.torch_calls, rounds=args.rounds,
                               pin=args.pin, int8=args.int8, fp16=args.fp16, piece=args.piece)
    r = run_inference_bench(cfg)
    emit(r, args.json, format_bench(r))
    return 0 if r["ok"] else 1


def main_export(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="omnipianist export", description=__doc__)
    add_export_args(parser)
    return run_export(parser.parse_args(argv))


def main_bench_inference(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="omnipianist bench inference", description=__doc__)
    add_bench_inference_args(parser)
    return run_bench_inference(parser.parse_args(argv))
