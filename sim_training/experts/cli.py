"""``omnipianist train-expert PIECE --minutes M --out DIR``: flags generated from the config dataclasses.

:data:`TRAIN_EXPERT` is the :class:`omnipianist.command.Command` (flags: ExpertTrainConfig's fields, ``--droq-*``
for DroQConfig's, ``--prior-config FILE``, ``--no-prior``); :func:`main` runs it standalone.
:func:`add_train_expert_args` and :func:`config_from_args` build the parser / the config for tests and scripts.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from omnipianist import command
from omnipianist.command import Command, command_main

if TYPE_CHECKING:
    from sim_training.experts.train import ExpertTrainConfig


@dataclass(frozen=True, kw_only=True)
class ExpertTrainResult:
    """``omnipianist train-expert``'s result: :func:`sim_training.experts.train.train_expert`'s dict (the keys of
    the run's ``result.json``, in its order; the pipeline and ``describe_expert`` read that file and the dict)."""

    piece: str
    embodiment: str
    with_prior: bool
    obs_mode: str
    prior_f1: float
    best_f1: float
    best_env_steps: int
    final_f1: float
    final_note_step_f1: float
    prior_note_step_f1: float
    do_nothing_f1: float
    env_steps: int
    updates: int
    episodes: int
    wall_s: float
    """Over all sessions of the run (resumes add to it)."""
    env_steps_per_s: float
    updates_per_s: float
    ms_per_update: float
    ms_per_env_step: float
    time_split_s: dict[str, float]
    """Seconds in ``env`` stepping, ``update``, ``eval``."""
    alpha: float
    last_losses: dict[str, float]
    """The last DroQ update's losses (empty before the first update)."""
    resumed: bool
    checkpoint: str
    """The best policy (best.pt)."""
    last_checkpoint: str
    curve: str


def run_train_expert(cfg: ExpertTrainConfig) -> ExpertTrainResult:
    """Train (or resume) the expert (:func:`sim_training.experts.train.train_expert`; it writes result.json)."""
    from sim_training.experts.train import train_expert

    return ExpertTrainResult(**train_expert(cfg))


def format_train_expert(r: ExpertTrainResult) -> str:
    return (f"{r.piece} ({r.embodiment}): best F1 {r.best_f1:.3f} (prior {r.prior_f1:.3f}, "
            f"do nothing {r.do_nothing_f1:.3f}), final {r.final_f1:.3f}; {r.env_steps} env steps, "
            f"{r.updates} updates in {r.wall_s / 60:.1f} min ({r.env_steps_per_s:.1f} env steps/s, "
            f"{r.updates_per_s:.1f} updates/s); best policy {r.checkpoint}")


TRAIN_EXPERT: Command[ExpertTrainConfig, ExpertTrainResult] = Command(
    "train-expert", "train one residual DroQ expert on a piece (resumable)",
    "sim_training.experts.train:ExpertTrainConfig", run_train_expert,
    format_train_expert, positionals=("piece",), progress=None)


def add_train_expert_args(parser: argparse.ArgumentParser) -> None:
    """The flags of ``omnipianist train-expert`` (those :data:`TRAIN_EXPERT` adds)."""
    TRAIN_EXPERT.add_arguments(parser)


def config_from_args(args: argparse.Namespace) -> ExpertTrainConfig:
    """The ExpertTrainConfig of parsed :func:`add_train_expert_args` flags."""
    return command.config_from_args(TRAIN_EXPERT.config_type(), args)


def main(argv: Sequence[str] | None = None) -> int:
    return command_main(TRAIN_EXPERT, argv)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
