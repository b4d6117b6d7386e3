"""``omnipianist train-expert PIECE --minutes M --out DIR``: flags generated from the config dataclasses.

:data:`TRAIN_EXPERT` is the :class:`omnipianist.command.Command` (flags: ExpertTrainConfig's fields, ``--droq-*``
for DroQConfig's, ``--prior-config FILE``, ``--no-prior``); :func:`main` runs it standalone.
:func:`add_train_expert_args` and :func:`config_from_args` build the parser / the config for tests and scripts.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from omnipianist import command
from omnipianist.command import Command, command_main

if TYPE_CHECKING:
    from sim_training.experts.train import ExpertTrainConfig


def format_train_expert(r: dict[str, Any]) -> str:
    return (f"{r['piece']} ({r['embodiment']}): best F1 {r['best_f1']:.3f} (prior {r['prior_f1']:.3f}, "
            f"do nothing {r['do_nothing_f1']:.3f}), final {r['final_f1']:.3f}; {r['env_steps']} env steps, "
            f"{r['updates']} updates in {r['wall_s'] / 60:.1f} min ({r['env_steps_per_s']:.1f} env steps/s, "
            f"{r['updates_per_s']:.1f} updates/s); best policy {r['checkpoint']}")


TRAIN_EXPERT: Command[ExpertTrainConfig, dict[str, Any]] = Command(
    "train-expert", "train one residual DroQ expert on a piece (resumable)",
    "sim_training.experts.train:ExpertTrainConfig", "sim_training.experts.train:train_expert",
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
