"""Generalist checkpoints: what they contain, how a model is rebuilt from one, atomic writes.

Two files per run (both ``torch.save`` of plain dicts / tensors, so ``torch.load(weights_only=True)`` reads them):

* ``policy.pt`` — deployment: ``meta``, ``model`` (``kind``, ``config``), ``state_dict`` (EMA weights,
  normaliser buffers included), ``normalizer`` (the same buffers, named, for readers without torch models).
* ``last.pt`` — resuming: the above plus the raw weights, the optimiser, counters, loss curve, RNG states.

``meta`` is the contract a runtime checks: ``observation_layout``, ``embodiment`` (as the store
wrote it) and ``embodiment_key``, ``action_names``, ``control_dt``, ``obs_horizon``,
``pred_horizon``, ``execute_horizon``, ``k_steps``, ``data_card_id``, ``format``, ``kind``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from sim_training.imitation.base import GeneralistModel
from sim_training.imitation.bc import BCConfig, BCPolicyMLP
from sim_training.imitation.model import FlowMatchingTransformer, FMTConfig
from sim_training.models.embodiment import Embodiment, embodiment_from_meta  # noqa: F401 - re-exported

CHECKPOINT_FORMAT = 1
CHECKPOINT_KIND = "omnipianist-generalist"
POLICY, LAST = "policy.pt", "last.pt"
MODELS: dict[str, tuple[type, type[GeneralistModel]]] = {"fmt": (FMTConfig, FlowMatchingTransformer),
                                                          "bc": (BCConfig, BCPolicyMLP)}


def model_config(kind: str, values: dict[str, Any] | None = None) -> Any:
    """The config dataclass of model ``kind`` (``fmt`` | ``bc``) from a dict (unknown keys raise TypeError)."""
    if kind not in MODELS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {sorted(MODELS)}")
    return MODELS[kind][0](**(values or {}))


def build_model(kind: str, config: Any, layout: dict[str, Any], action_dim: int) -> GeneralistModel:
    """A fresh model of ``kind`` (config: its dataclass or a dict of its fields)."""
    cfg = config if dataclasses.is_dataclass(config) else model_config(kind, config)
    return MODELS[kind][1](cfg, layout, action_dim)


def config_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass as a JSON-round-tripped dict (tuples -> lists), so saved and current configs compare equal."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


from omnipianist.fileio import atomic_write, save_json  # noqa: E402,F401 - re-exported here
from sim_training.torch_io import save_torch  # noqa: E402,F401 - re-exported here


def load_checkpoint(path: str | Path, use_ema: bool = True) -> tuple[GeneralistModel, dict[str, Any], str]:
    """Model (eval mode) + meta from ``policy.pt``, ``last.pt``, or a run directory (``policy.pt`` preferred).

    ``use_ema`` picks the EMA weights of ``last.pt`` (``policy.pt`` only holds those). Returns
    (model, meta, the file read). Raises FileNotFoundError / ValueError naming the path.
    """
    path = Path(path)
    if path.is_dir():
        found = [path / n for n in (POLICY, LAST) if (path / n).exists()]
        if not found:
            raise FileNotFoundError(f"{path}: no {POLICY} or {LAST} in this directory")
        path = found[0]
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    state = torch.load(path, map_location="cpu", weights_only=True)
    meta = state.get("meta") if isinstance(state, dict) else None
    if not meta or meta.get("kind") != CHECKPOINT_KIND:
        raise ValueError(f"{path}: not an omnipianist generalist checkpoint")
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: checkpoint format {meta.get('format')}, this code reads {CHECKPOINT_FORMAT}")
    spec = state["model"]
    model = build_model(spec["kind"], spec["config"], meta["observation_layout"], int(meta["action_dim"]))
    weights = state["state_dict"] if "state_dict" in state else state["ema" if use_ema else "weights"]
    model.load_state_dict(weights)
    return model.eval(), meta, str(path)
