"""``omnipianist train-knob-head PLANS --out DIR``: its config, run and text (imports torch: the table names it
by ``"module:name"``, so that this module is imported only when the command is parsed)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from omnipianist.errors import ConfigError
from sim_training.imitation.knobhead import (
    KnobHeadConfig,
    KnobTrainConfig,
    cached_plan_samples,
    relabel_rounds,
    train_knob_head,
)


@dataclass(frozen=True)
class TrainKnobHeadConfig:
    plans: str
    """folder of planner experts (<piece>/plan.json + expert.json), one embodiment"""
    out: str = field(metadata={"help": "output folder (knobhead.pt, result.json, loss.png)"})
    samples: str = ""
    """cache of the replayed samples (.npz): read if present (plans it lacks are replayed and added), else written"""
    relabel_rounds: int = 0
    """RP1M++ rounds: the student plays, the planner labels its states, retrain"""
    relabel_pieces: int = 8
    """pieces (of the plans') the student plays per round"""
    relabel_budget: int = 24
    """the relabelling planner's plays per window"""
    train: KnobTrainConfig = field(default_factory=KnobTrainConfig, metadata={"prefix": ""})
    knob: KnobHeadConfig = field(default_factory=KnobHeadConfig, metadata={
        "prefix": "knob_", "group": "knob-head network (flags prefixed --knob-)"})


@dataclass(frozen=True)
class TrainKnobHeadResult:
    result: dict[str, Any] = field(metadata={"flatten": True})
    """:func:`~sim_training.imitation.knobhead.train_knob_head`'s result (the loss curve last), or
    :func:`~sim_training.imitation.knobhead.relabel_rounds`'."""
    out: str = field(default="", metadata={"json": False})


def run_train_knob_head(cfg: TrainKnobHeadConfig) -> TrainKnobHeadResult:
    """Samples from the finished plans (or the cache), then training or ``relabel_rounds`` rounds."""
    plans = Path(cfg.plans)
    dirs = sorted(p.parent for p in plans.glob("*/expert.json") if (p.parent / "plan.json").is_file())
    if not dirs:
        raise ConfigError(f"{plans}: no finished plans (<piece>/plan.json with expert.json) in this folder")
    train = replace(cfg.train, model=cfg.knob)
    samples = cached_plan_samples(dirs, cfg.samples or None)
    if cfg.relabel_rounds > 0:
        from sim_training.experts.planner import PlannerConfig

        pieces = samples.pieces[: cfg.relabel_pieces]
        r = relabel_rounds(samples, pieces, cfg.out, cfg.relabel_rounds, train, PlannerConfig(budget=cfg.relabel_budget))
        return TrainKnobHeadResult(result=r, out=cfg.out)
    r = train_knob_head(samples, cfg.out, train)
    return TrainKnobHeadResult(result={k: v for k, v in r.items() if k != "curve"} | {"curve": r["curve"]},
                               out=cfg.out)


def format_train_knob_head(res: TrainKnobHeadResult) -> str:
    r = res.result
    if "rounds" in r:
        return "\n".join(f"round {x['round']}: {x['samples']} samples, student F1 {x['student_f1_mean']:.3f}"
                         for x in r["rounds"])
    f = r.get("final") or {}
    return (f"knob head ({r['params']:,} params): {r['steps']} steps on {r['samples']} samples from "
            f"{len(r['train_pieces'])} pieces in {r['wall_s']:.0f} s; held-out MSE {f.get('val_mse', float('nan')):.4f} "
            f"(the mean knobs: {f.get('val_mse_constant', float('nan')):.4f}); {res.out}")
