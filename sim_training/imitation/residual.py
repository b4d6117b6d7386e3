"""The generalist as a residual on the OT/IK prior (``PolicyTrainConfig.residual_on_prior``).

Why: the prior already plays unseen pieces (corpus mean step F1 ~0.64 on Shadow) because it solves
fingering (optimal transport) and reaching (IK) from the score alone; a network that learns the full
action from 1,150 observation numbers must rediscover both from data. The residual form keeps what
the prior knows and lets the network learn only the correction that expert labels teach, so a network
that has learnt nothing plays as well as the prior instead of flailing.

Contract (one definition for training, the torch runtime, the ONNX export and its runtime):

* the network's input observation is ``obs ⊕ prior_action`` — the environment observation (layout
  :class:`~sim_training.env.observation.ObservationLayout`) with one extra field ``prior_action``
  (A,) appended, the prior's action at the same state; :func:`augment_layout` describes it;
* its target is ``action - prior_action`` (per row of the action chunk);
* at run time :class:`PriorResidual` computes the prior with the simulator's own
  :class:`~sim_training.fingering.prior.OTIKPrior` (stateful: stepped once per control step, reset
  per episode) and the executed action is ``clip(prior_action + residual, -1, 1)``.

A store's ``prior_action`` column (written by :mod:`sim_training.dataset`) is exactly that prior at
every recorded state, with the store's ``prior_config``; the checkpoint records that config.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

PRIOR_FIELD = "prior_action"
PRIOR_UNIT = "normalised action in [-1, 1] (OT/IK prior at this state)"


def augment_layout(layout: dict[str, Any], action_dim: int) -> dict[str, Any]:
    """``layout`` (``ObservationLayout.to_dict()`` form) with the ``prior_action`` field appended."""
    if any(f["name"] == PRIOR_FIELD for f in layout["fields"]):
        raise ValueError(f"observation layout already has a {PRIOR_FIELD!r} field")
    out = copy.deepcopy(layout)
    size = int(layout["size"])
    out["fields"].append({"name": PRIOR_FIELD, "offset": size, "shape": [int(action_dim)], "unit": PRIOR_UNIT})
    out["size"] = size + int(action_dim)
    out["residual_on_prior"] = True
    return out


def base_layout(layout: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`augment_layout` (the environment's layout); unchanged if not augmented."""
    fields = [f for f in layout["fields"] if f["name"] != PRIOR_FIELD]
    if len(fields) == len(layout["fields"]):
        return layout
    out = copy.deepcopy(layout)
    out["fields"] = copy.deepcopy(fields)
    out["size"] = int(layout["size"]) - int(np.prod(next(f for f in layout["fields"] if f["name"] == PRIOR_FIELD)["shape"]))
    out.pop("residual_on_prior", None)
    return out


def augment_obs(obs: np.ndarray, prior_action: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``obs`` (..., D) ⊕ ``prior_action`` (..., A) -> (..., D + A) float32."""
    obs = np.asarray(obs, dtype=np.float32)
    prior_action = np.asarray(prior_action, dtype=np.float32)
    if obs.shape[:-1] != prior_action.shape[:-1]:
        raise ValueError(f"observation rows {obs.shape[:-1]} and prior action rows {prior_action.shape[:-1]} differ")
    if out is None:
        return np.concatenate([obs, prior_action], axis=-1)
    d = obs.shape[-1]
    out[..., :d] = obs
    out[..., d:] = prior_action
    return out


def compose(prior_action: np.ndarray, residual: np.ndarray) -> np.ndarray:
    """The executed action: ``clip(prior_action + residual, -1, 1)``, float64."""
    return np.clip(np.asarray(prior_action, dtype=np.float64) + np.asarray(residual, dtype=np.float64), -1.0, 1.0)


class PriorResidual:
    """Run-time side of the contract: the stateful prior and the input augmentation.

    ``embodiment``: the policy's; ``prior_config``: the dict the checkpoint / metadata stores;
    ``lookahead``: the observation builder's. ``scene`` is built if not given.
    """

    def __init__(self, embodiment: Any, prior_config: dict[str, Any], lookahead: int, scene: Any = None) -> None:
        from sim_training.experts.train import prior_config_from_dict
        from sim_training.fingering.prior import OTIKPrior
        from sim_training.models.scene import build_scene

        self.scene = scene if scene is not None else build_scene(embodiment)
        self.prior = OTIKPrior(self.scene, prior_config_from_dict(dict(prior_config)), int(lookahead))
        self.last_prior_action: np.ndarray | None = None

    def reset(self) -> None:
        self.prior.reset()
        self.last_prior_action = None

    def step(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Advance the prior by one control step: returns (augmented obs (D + A,) float32, prior action (A,))."""
        prior_action = np.asarray(self.prior.act(obs), dtype=np.float64)
        self.last_prior_action = prior_action
        return augment_obs(obs, prior_action), prior_action
