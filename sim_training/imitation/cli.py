"""``omnipianist train-policy STORE``, ``omnipianist evaluate PIECE --policy CKPT`` and ``train-knob-head``.

:data:`TRAIN_POLICY` and :data:`EVALUATE` are :class:`omnipianist.command.Command` objects (flags from the
config dataclasses; :func:`main_train` and :func:`main_evaluate` run them standalone);
``train-knob-head`` is still an add/run pair (:func:`add_train_knob_head_args` / :func:`run_train_knob_head`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from omnipianist.cliutil import add_dataclass_args, dataclass_from_args, emit
from omnipianist.command import Command, command_main, config_from_args


def format_train_policy(r: dict[str, Any]) -> str:
    return (f"{r['model']} ({r['params']['total']:,} params): {r['step']} steps in {r['wall_s'] / 60:.1f} min "
            f"({r['steps_per_s']:.2f} steps/s, {r['samples_per_s']:.0f} samples/s, {r['threads']} threads); "
            f"train loss {r['train_loss'] if r['train_loss'] is None else round(r['train_loss'], 4)}, "
            f"val loss {r['val_loss']:.4f} (start {r['first_val_loss']:.4f}), val action MSE {r['val_action_mse']:.4f} "
            f"on {r['val_pieces']} held-out pieces{' (= training data)' if r['val_is_train'] else ''}; "
            f"policy {r['checkpoint']}, curve {r['loss_plot']}")


TRAIN_POLICY = Command("train-policy", "train the flow-matching generalist (or the BC-MLP baseline) on a dataset",
                       "sim_training.imitation.train:PolicyTrainConfig", "sim_training.imitation.train:train_policy",
                       format_train_policy, positionals=("store",), progress=None)
"""Flags: PolicyTrainConfig's fields, ``--fmt-*`` and ``--bc-*`` for the two models' (``--show-progress`` is its own
flag here, not tied to ``--json``)."""


def add_train_policy_args(parser: argparse.ArgumentParser) -> None:
    """The flags of ``omnipianist train-policy`` (those :data:`TRAIN_POLICY` adds)."""
    TRAIN_POLICY.add_arguments(parser)


def train_config_from_args(args: argparse.Namespace):  # noqa: ANN201 - PolicyTrainConfig (lazy import)
    """The PolicyTrainConfig of parsed :func:`add_train_policy_args` flags."""
    return config_from_args(TRAIN_POLICY.config_type(), args)


@dataclass(frozen=True)
class EvaluateConfig:
    piece: str
    """built-in piece name or MIDI file"""
    policy: str = field(metadata={"help": "generalist checkpoint: policy.pt, last.pt or a run directory (.onnx: "
                                          "exported policy), or an expert directory (expert.json / plan.json, e.g. "
                                          "from train-experts or plan)"})
    embodiment: str | None = None
    """hand model key (default: the policy's, e.g. shadow)"""
    stretch: float = 1.0
    """time stretch"""
    noise: Literal["fixed", "random", "zero"] = "fixed"
    """flow noise per chunk"""
    seed: int = 0
    """noise seed"""
    execute: int | None = None
    """actions executed per sampled chunk (default: the checkpoint's, 1)"""
    threads: int = 1
    """torch threads"""
    show_progress: bool = field(default=True, metadata={"cli": False})


def run_evaluate(cfg: EvaluateConfig) -> dict[str, Any]:
    """Play the piece with the policy (same keys as ``omnipianist prior --json``)."""
    import torch

    from sim_training.experts.pipeline import ActingExpert, is_expert_folder
    from sim_training.imitation.evaluate import evaluate_policy
    from sim_training.imitation.policy import ActingPolicy, load_policy

    torch.set_num_threads(cfg.threads)
    kwargs: dict[str, Any] = {"noise": cfg.noise, "seed": cfg.seed}
    if cfg.execute is not None:
        kwargs["execute"] = cfg.execute
    policy: ActingPolicy = ActingExpert(cfg.policy) if is_expert_folder(cfg.policy) else load_policy(cfg.policy, **kwargs)
    return evaluate_policy(cfg.piece, policy, cfg.embodiment, stretch=cfg.stretch, show_progress=cfg.show_progress)


EVALUATE = Command("evaluate", "play a piece with a trained policy; same JSON keys as `prior`", EvaluateConfig,
                   run_evaluate, "sim_training.imitation.evaluate:format_evaluation", positionals=("piece",))


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
    return command_main(TRAIN_POLICY, argv)


def main_evaluate(argv: Sequence[str] | None = None) -> int:
    return command_main(EVALUATE, argv)
