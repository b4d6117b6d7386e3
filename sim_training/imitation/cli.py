"""``omnipianist train-policy STORE`` and ``omnipianist evaluate PIECE --policy CKPT``: flags from the config dataclasses.

Hook into the main CLI with :func:`add_train_policy_args` / :func:`run_train_policy` and
:func:`add_evaluate_args` / :func:`run_evaluate` (sub-parser, handler); :func:`main_train` and
:func:`main_evaluate` run them standalone.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from omnipianist.cliutil import add_dataclass_args, dataclass_from_args, emit

FMT_PREFIX, BC_PREFIX = "fmt_", "bc_"


def add_train_policy_args(parser: argparse.ArgumentParser) -> None:
    """Positional STORE, ``--json``, one flag per PolicyTrainConfig field, ``--fmt-*`` and ``--bc-*`` model flags."""
    from sim_training.imitation.bc import BCConfig
    from sim_training.imitation.model import FMTConfig
    from sim_training.imitation.train import PolicyTrainConfig

    parser.add_argument("store", help="zarr dataset store (sim_training.dataset)")  # PolicyTrainConfig.store
    parser.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")
    add_dataclass_args(parser, PolicyTrainConfig)
    group = parser.add_argument_group("flow-matching transformer (flags prefixed --fmt-)")
    add_dataclass_args(group, FMTConfig, prefix=FMT_PREFIX)  # type: ignore[arg-type]
    group = parser.add_argument_group("BC-MLP baseline (flags prefixed --bc-)")
    add_dataclass_args(group, BCConfig, prefix=BC_PREFIX)  # type: ignore[arg-type]


def train_config_from_args(args: argparse.Namespace):  # noqa: ANN201 - PolicyTrainConfig (lazy import)
    from sim_training.imitation.bc import BCConfig
    from sim_training.imitation.model import FMTConfig
    from sim_training.imitation.train import PolicyTrainConfig

    return dataclass_from_args(PolicyTrainConfig, args, fmt=dataclass_from_args(FMTConfig, args, prefix=FMT_PREFIX),
                               bc=dataclass_from_args(BCConfig, args, prefix=BC_PREFIX))


def run_train_policy(args: argparse.Namespace) -> int:
    """Train (or resume) and print the result; returns the exit status."""
    from sim_training.imitation.train import train_policy

    r = train_policy(train_config_from_args(args))
    human = (f"{r['model']} ({r['params']['total']:,} params): {r['step']} steps in {r['wall_s'] / 60:.1f} min "
             f"({r['steps_per_s']:.2f} steps/s, {r['samples_per_s']:.0f} samples/s, {r['threads']} threads); "
             f"train loss {r['train_loss'] if r['train_loss'] is None else round(r['train_loss'], 4)}, "
             f"val loss {r['val_loss']:.4f} (start {r['first_val_loss']:.4f}), val action MSE {r['val_action_mse']:.4f} "
             f"on {r['val_pieces']} held-out pieces{' (= training data)' if r['val_is_train'] else ''}; "
             f"policy {r['checkpoint']}, curve {r['loss_plot']}")
    emit(r, args.json, human)
    return 0


def add_evaluate_args(parser: argparse.ArgumentParser) -> None:
    """Positional PIECE, ``--policy CKPT`` and runtime options."""
    parser.add_argument("piece", help="built-in piece name or MIDI file")
    parser.add_argument("--policy", required=True,
                        help="generalist checkpoint: policy.pt, last.pt or a run directory (.onnx: exported policy), "
                             "or an expert directory (expert.json / plan.json, e.g. from train-experts or plan)")
    parser.add_argument("--embodiment", default=None, help="hand model key (default: the policy's, e.g. shadow)")
    parser.add_argument("--stretch", type=float, default=1.0, help="time stretch (default: %(default)s)")
    parser.add_argument("--noise", default="fixed", choices=["fixed", "random", "zero"],
                        help="flow noise per chunk (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default: %(default)s)")
    parser.add_argument("--execute", type=int, default=None,
                        help="actions executed per sampled chunk (default: the checkpoint's, 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluate and print the result (same keys as ``omnipianist prior --json``)."""
    import torch

    from sim_training.experts.pipeline import ActingExpert, is_expert_folder
    from sim_training.imitation.evaluate import evaluate_policy, format_evaluation
    from sim_training.imitation.policy import ActingPolicy, load_policy

    torch.set_num_threads(args.threads)
    kwargs = {"noise": args.noise, "seed": args.seed}
    if args.execute is not None:
        kwargs["execute"] = args.execute
    policy: ActingPolicy = ActingExpert(args.policy) if is_expert_folder(args.policy) else load_policy(args.policy, **kwargs)
    r = evaluate_policy(args.piece, policy, args.embodiment, stretch=args.stretch, show_progress=not args.json)
    emit(r, args.json, format_evaluation(r))
    return 0


def main_train(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="omnipianist train-policy", description=__doc__)
    add_train_policy_args(parser)
    return run_train_policy(parser.parse_args(argv))


def main_evaluate(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="omnipianist evaluate", description=__doc__)
    add_evaluate_args(parser)
    return run_evaluate(parser.parse_args(argv))
