"""Observation and action normalisation, stored as module buffers (so checkpoints and ONNX graphs carry them).

* Observation: ``(obs - mean) / std`` per entry, then clipped to ``[-obs_clip, obs_clip]``. Only the
  fields named in ``standardize_fields`` (default: fingertip positions and joint angles, whose
  scale is metres and radians) get data statistics; the bounded fields (goal bits, key depression,
  sustain, all in [0, 1]) keep mean 0 and std 1. A key never pressed in the training data would
  otherwise have std ~0 and blow up the first time a test piece asks for it.
* Action: min/max of the data mapped to [-1, 1] per entry. An entry that never moves in the data
  gets a half-range of ``min_action_half_range`` around its value (so it maps to ~0, not to inf).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

DEFAULT_STANDARDIZE_FIELDS: tuple[str, ...] = ("fingertip_xyz", "hand_joints")


def field_index(layout: dict[str, Any], names: Sequence[str]) -> np.ndarray:
    """Sorted flat indices of the observation entries of the fields ``names`` (layout as ``ObservationLayout.to_dict()``).

    Raises KeyError naming a field the layout lacks.
    """
    fields = {f["name"]: f for f in layout["fields"]}
    idx: list[np.ndarray] = []
    for name in names:
        if name not in fields:
            raise KeyError(f"observation layout has no field {name!r}; fields: {list(fields)}")
        f = fields[name]
        size = int(np.prod(f["shape"]))
        idx.append(np.arange(f["offset"], f["offset"] + size))
    return np.sort(np.concatenate(idx)) if idx else np.zeros(0, dtype=np.int64)


class Normalizer(nn.Module):
    """Buffers ``obs_mean``, ``obs_std`` (D,), ``action_low``, ``action_high`` (A,); identity until fitted."""

    obs_mean: Tensor
    obs_std: Tensor
    action_low: Tensor
    action_high: Tensor

    def __init__(self, obs_dim: int, action_dim: int, obs_clip: float = 10.0) -> None:
        super().__init__()
        self.obs_clip = float(obs_clip)
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))
        self.register_buffer("action_low", -torch.ones(action_dim))
        self.register_buffer("action_high", torch.ones(action_dim))

    @torch.no_grad()
    def fit(self, obs: np.ndarray, action: np.ndarray, layout: dict[str, Any],
            standardize_fields: Sequence[str] = DEFAULT_STANDARDIZE_FIELDS, min_std: float = 1e-2,
            min_action_half_range: float = 1e-2) -> Normalizer:
        """Statistics from data: ``obs`` (N, D), ``action`` (N, A) (raw, float); returns self.

        ``min_std`` floors the std of standardised entries (units of the field: 1 cm, ~0.6 degree).
        """
        obs = np.asarray(obs, dtype=np.float64)
        action = np.asarray(action, dtype=np.float64)
        if obs.ndim != 2 or obs.shape[1] != self.obs_mean.numel():
            raise ValueError(f"obs must be (N, {self.obs_mean.numel()}), got {obs.shape}")
        if action.ndim != 2 or action.shape[1] != self.action_low.numel():
            raise ValueError(f"action must be (N, {self.action_low.numel()}), got {action.shape}")
        idx = field_index(layout, standardize_fields)
        mean = np.zeros(obs.shape[1])
        std = np.ones(obs.shape[1])
        mean[idx] = obs[:, idx].mean(axis=0)
        std[idx] = np.maximum(obs[:, idx].std(axis=0), min_std)
        lo, hi = action.min(axis=0), action.max(axis=0)
        mid, half = 0.5 * (lo + hi), np.maximum(0.5 * (hi - lo), min_action_half_range)
        self.obs_mean.copy_(torch.as_tensor(mean))
        self.obs_std.copy_(torch.as_tensor(std))
        self.action_low.copy_(torch.as_tensor(mid - half))
        self.action_high.copy_(torch.as_tensor(mid + half))
        return self

    def normalize_obs(self, obs: Tensor) -> Tensor:
        """(..., D) raw -> (..., D) normalised and clipped."""
        return torch.clamp((obs - self.obs_mean) / self.obs_std, -self.obs_clip, self.obs_clip)

    def normalize_action(self, action: Tensor) -> Tensor:
        """(..., A) raw -> (..., A), the data range mapped to [-1, 1]."""
        return 2.0 * (action - self.action_low) / (self.action_high - self.action_low) - 1.0

    def unnormalize_action(self, action: Tensor) -> Tensor:
        """Inverse of :meth:`normalize_action`."""
        return self.action_low + 0.5 * (action + 1.0) * (self.action_high - self.action_low)

    def extra_repr(self) -> str:
        return f"obs_dim={self.obs_mean.numel()}, action_dim={self.action_low.numel()}, obs_clip={self.obs_clip}"
