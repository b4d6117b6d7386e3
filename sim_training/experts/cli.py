"""``omnipianist train-expert PIECE --minutes M --out DIR``: flags generated from the config dataclasses.

Hook into the main CLI with :func:`add_train_expert_args` (on the sub-parser) and
:func:`run_train_expert` (the handler); :func:`main` runs it standalone.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from omnipianist.cliutil import add_dataclass_args, dataclass_from_args, emit

DROQ_PREFIX = "droq_"


def add_train_expert_args(parser: argparse.ArgumentParser) -> None:
    """Positional PIECE, ``--json``, ``--prior-config FILE``, one flag per ExpertTrainConfig / DroQConfig field."""
    from sim_training.experts.droq import DroQConfig
    from sim_training.experts.train import ExpertTrainConfig

    parser.add_argument("piece", help="built-in piece name or MIDI file")  # ExpertTrainConfig.piece (no default)
    parser.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")
    parser.add_argument("--prior-config", type=Path, default=None,
                        help="JSON object of PriorConfig fields (e.g. from a per-piece search)")
    add_dataclass_args(parser, ExpertTrainConfig)
    parser.add_argument("--no-prior", dest="use_prior", action="store_false",
                        help="plain DroQ on the plain observation, no OT/IK prior (= --no-use-prior)")
    group = parser.add_argument_group("DroQ (flags prefixed --droq-)")
    add_dataclass_args(group, DroQConfig, prefix=DROQ_PREFIX)  # type: ignore[arg-type]


def config_from_args(args: argparse.Namespace):  # noqa: ANN201 - returns ExpertTrainConfig (lazy import)
    from sim_training.experts.droq import DroQConfig
    from sim_training.experts.train import ExpertTrainConfig, prior_config_from_dict

    droq = dataclass_from_args(DroQConfig, args, prefix=DROQ_PREFIX)
    extra = {"droq": droq}
    if args.prior_config is not None:
        try:
            extra["prior"] = prior_config_from_dict(json.loads(args.prior_config.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise SystemExit(f"{args.prior_config}: not a PriorConfig JSON object ({exc})") from exc
    return dataclass_from_args(ExpertTrainConfig, args, **extra)


def run_train_expert(args: argparse.Namespace) -> int:
    """Train (or resume) and print the result; returns the exit status."""
    from sim_training.experts.train import train_expert

    cfg = config_from_args(args)
    r = train_expert(cfg)
    human = (f"{r['piece']} ({r['embodiment']}): best F1 {r['best_f1']:.3f} (prior {r['prior_f1']:.3f}, "
             f"do nothing {r['do_nothing_f1']:.3f}), final {r['final_f1']:.3f}; {r['env_steps']} env steps, "
             f"{r['updates']} updates in {r['wall_s'] / 60:.1f} min ({r['env_steps_per_s']:.1f} env steps/s, "
             f"{r['updates_per_s']:.1f} updates/s); best policy {r['checkpoint']}")
    emit(r, args.json, human)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="omnipianist train-expert", description=__doc__)
    add_train_expert_args(parser)
    return run_train_expert(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
