"""``omnipianist train-policy STORE``, ``omnipianist evaluate PIECE --policy CKPT`` and ``train-knob-head``.

:data:`TRAIN_POLICY`, :data:`EVALUATE` and :data:`TRAIN_KNOB_HEAD` are :class:`omnipianist.command.Command` objects
(flags from the config dataclasses; :func:`main_train` and :func:`main_evaluate` run them standalone);
:data:`TRAIN_KNOB_HEAD`'s config and run live in :mod:`sim_training.imitation.knobhead_command` (torch).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from omnipianist.command import Command, command_main, config_from_args
from sim_training.experts.pipeline import ActingExpert, is_expert_folder

if TYPE_CHECKING:
    from sim_training.imitation.evaluate import EvaluationResult
    from sim_training.imitation.knobhead_command import TrainKnobHeadConfig, TrainKnobHeadResult
    from sim_training.imitation.train import PolicyTrainConfig


@dataclass(frozen=True, kw_only=True)
class PolicyTrainResult:
    """``omnipianist train-policy``'s result: :func:`sim_training.imitation.train.train_policy`'s dict (the keys of
    the run's ``result.json``, in its order)."""

    model: str
    params: dict[str, int]
    """Trainable parameters: ``total``, ``encoder``, ``decoder``."""
    step: int
    samples: int
    sessions: int
    resumed: bool
    wall_s: float
    train_s: float
    val_s: float
    steps_per_s: float
    samples_per_s: float
    ms_per_step: float
    threads: int
    train_loss: float | None
    """Mean training loss since the last validation (None: no step since)."""
    val_loss: float
    val_action_mse: float
    first_val_loss: float
    data_card_id: str
    split: str
    """``piece``, ``episode`` or ``none`` (what the validation set was held out by)."""
    val_is_train: bool
    train_episodes: int
    val_episodes: int
    train_steps_in_data: int
    train_pieces: int
    val_pieces: int
    checkpoint: str
    last_checkpoint: str
    loss_curve: str
    loss_plot: str


def run_train_policy(cfg: PolicyTrainConfig) -> PolicyTrainResult:
    """Train (or resume) the generalist (:func:`sim_training.imitation.train.train_policy`; it writes result.json)."""
    from sim_training.imitation.train import train_policy

    return PolicyTrainResult(**train_policy(cfg))


def format_train_policy(r: PolicyTrainResult) -> str:
    return (f"{r.model} ({r.params['total']:,} params): {r.step} steps in {r.wall_s / 60:.1f} min "
            f"({r.steps_per_s:.2f} steps/s, {r.samples_per_s:.0f} samples/s, {r.threads} threads); "
            f"train loss {r.train_loss if r.train_loss is None else round(r.train_loss, 4)}, "
            f"val loss {r.val_loss:.4f} (start {r.first_val_loss:.4f}), val action MSE {r.val_action_mse:.4f} "
            f"on {r.val_pieces} held-out pieces{' (= training data)' if r.val_is_train else ''}; "
            f"policy {r.checkpoint}, curve {r.loss_plot}")


TRAIN_POLICY: Command[PolicyTrainConfig, PolicyTrainResult] = Command(
    "train-policy", "train the flow-matching generalist (or the BC-MLP baseline) on a dataset",
    "sim_training.imitation.train:PolicyTrainConfig", run_train_policy,
    format_train_policy, positionals=("store",), progress=None)
"""Flags: PolicyTrainConfig's fields, ``--fmt-*`` and ``--bc-*`` for the two models' (``--show-progress`` is its own
flag here, not tied to ``--json``)."""


def add_train_policy_args(parser: argparse.ArgumentParser) -> None:
    """The flags of ``omnipianist train-policy`` (those :data:`TRAIN_POLICY` adds)."""
    TRAIN_POLICY.add_arguments(parser)


def train_config_from_args(args: argparse.Namespace) -> PolicyTrainConfig:
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


def run_evaluate(cfg: EvaluateConfig) -> EvaluationResult:
    """Play the piece with the policy (same keys as ``omnipianist prior --json``)."""
    import torch

    from sim_training.imitation.evaluate import EvaluationResult, evaluate_policy
    from sim_training.imitation.policy import ActingPolicy, load_policy

    torch.set_num_threads(cfg.threads)
    kwargs: dict[str, Any] = {"noise": cfg.noise, "seed": cfg.seed}
    if cfg.execute is not None:
        kwargs["execute"] = cfg.execute
    policy: ActingPolicy = ActingExpert(cfg.policy) if is_expert_folder(cfg.policy) else load_policy(cfg.policy, **kwargs)
    return EvaluationResult.of(evaluate_policy(cfg.piece, policy, cfg.embodiment, stretch=cfg.stretch,
                                               show_progress=cfg.show_progress))


EVALUATE: Command[EvaluateConfig, EvaluationResult] = Command(
    "evaluate", "play a piece with a trained policy; same JSON keys as `prior`", EvaluateConfig,
    run_evaluate, "sim_training.imitation.evaluate:format_evaluation", positionals=("piece",))


TRAIN_KNOB_HEAD: Command[TrainKnobHeadConfig, TrainKnobHeadResult] = Command(
    "train-knob-head", "train the knob-head generalist on planner experts (+ relabel rounds)",
    "sim_training.imitation.knobhead_command:TrainKnobHeadConfig",
    "sim_training.imitation.knobhead_command:run_train_knob_head",
    "sim_training.imitation.knobhead_command:format_train_knob_head", positionals=("plans",))


def main_train(argv: Sequence[str] | None = None) -> int:
    return command_main(TRAIN_POLICY, argv)


def main_evaluate(argv: Sequence[str] | None = None) -> int:
    return command_main(EVALUATE, argv)
