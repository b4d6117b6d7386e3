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


KNOB_PREFIX = "knob_"


def add_train_knob_head_args(parser: argparse.ArgumentParser) -> None:
    """``omnipianist train-knob-head PLANS --out DIR``: samples from the plans, training, relabel rounds."""
    from sim_training.imitation.knobhead import KnobHeadConfig, KnobTrainConfig

    parser.add_argument("plans", help="folder of planner experts (<piece>/plan.json + expert.json), one embodiment")
    parser.add_argument("--out", required=True, help="output folder (knobhead.pt, result.json, loss.png)")
    parser.add_argument("--samples", default="", help="cache of the replayed samples (.npz): read if present, else written")
    parser.add_argument("--relabel-rounds", type=int, default=0,
                        help="RP1M++ rounds: the student plays, the planner labels its states, retrain")
    parser.add_argument("--relabel-pieces", type=int, default=8, help="pieces (of the plans') the student plays per round")
    parser.add_argument("--relabel-budget", type=int, default=24, help="the relabelling planner's plays per window")
    parser.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")
    add_dataclass_args(parser, KnobTrainConfig)
    group = parser.add_argument_group("knob-head network (flags prefixed --knob-)")
    add_dataclass_args(group, KnobHeadConfig, prefix=KNOB_PREFIX)  # type: ignore[arg-type]


def run_train_knob_head(args: argparse.Namespace) -> int:
    from pathlib import Path

    from omnipianist.errors import ConfigError
    from sim_training.imitation.knobhead import (
        KnobHeadConfig,
        KnobSamples,
        KnobTrainConfig,
        plan_samples,
        relabel_rounds,
        train_knob_head,
    )

    plans = Path(args.plans)
    dirs = sorted(p.parent for p in plans.glob("*/expert.json") if (p.parent / "plan.json").is_file())
    if not dirs:
        raise ConfigError(f"{plans}: no finished plans (<piece>/plan.json with expert.json) in this folder")
    cfg = dataclass_from_args(KnobTrainConfig, args, model=dataclass_from_args(KnobHeadConfig, args, prefix=KNOB_PREFIX))
    cache = Path(args.samples) if args.samples else None
    if cache is not None and cache.is_file():
        samples = KnobSamples.load(cache)
    else:
        samples = plan_samples(dirs)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            samples.save(cache)
    if args.relabel_rounds > 0:
        from sim_training.experts.planner import PlannerConfig

        pieces = samples.pieces[: args.relabel_pieces]
        r = relabel_rounds(samples, pieces, args.out, args.relabel_rounds, cfg, PlannerConfig(budget=args.relabel_budget))
        emit(r, args.json, "\n".join(f"round {x['round']}: {x['samples']} samples, student F1 {x['student_f1_mean']:.3f}"
                                      for x in r["rounds"]))
        return 0
    r = train_knob_head(samples, args.out, cfg)
    f = r.get("final") or {}
    emit({k: v for k, v in r.items() if k != "curve"} | {"curve": r["curve"]}, args.json,
         f"knob head ({r['params']:,} params): {r['steps']} steps on {r['samples']} samples from "
         f"{len(r['train_pieces'])} pieces in {r['wall_s']:.0f} s; held-out MSE {f.get('val_mse', float('nan')):.4f} "
         f"(the mean knobs: {f.get('val_mse_constant', float('nan')):.4f}); {args.out}")
    return 0


def main_train(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="omnipianist train-policy", description=__doc__)
    add_train_policy_args(parser)
    return run_train_policy(parser.parse_args(argv))


def main_evaluate(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="omnipianist evaluate", description=__doc__)
    add_evaluate_args(parser)
    return run_evaluate(parser.parse_args(argv))
