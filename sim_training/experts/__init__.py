"""Experts, one per piece: the receding-horizon planner over the prior's knobs (:mod:`.planner`, the
default), per-piece CEM (:mod:`.search`) and residual DroQ on the prior (:mod:`.droq`, :mod:`.train`,
:mod:`.policy`). Names are imported lazily, so that the planner loads without torch."""

from __future__ import annotations

from typing import Any

_LAZY = {"DroQAgent": "droq", "DroQConfig": "droq", "ExpertPolicy": "policy", "ExpertTrainConfig": "train",
         "train_expert": "train", "Planner": "planner", "PlannerConfig": "planner"}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"sim_training.experts.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'sim_training.experts' has no attribute {name!r}")
