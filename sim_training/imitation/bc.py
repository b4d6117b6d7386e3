"""BC-MLP baseline: the flattened, normalised observation history -> the normalised action chunk, MSE.

Same data, normalisation and interface as :class:`FlowMatchingTransformer` (``loss``, ``sample``),
so the trainer, the policy wrapper and the evaluation treat both alike. It regresses to the
conditional MEAN of the actions: where the experts disagree (two fingerings of one passage) it
averages them, which is what flow matching is there to avoid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sim_training.imitation.base import GeneralistModel
from sim_training.imitation.normalization import Normalizer


@dataclass(frozen=True)
class BCConfig:
    """BC-MLP hyper-parameters."""

    hidden_width: int = 512
    hidden_layers: int = 3
    dropout: float = 0.0
    obs_horizon: int = 2
    pred_horizon: int = 4
    k_steps: int = 1
    """Unused (one forward pass); kept so checkpoints of both models carry the same fields."""
    obs_clip: float = 10.0


class BCPolicyMLP(GeneralistModel):
    """MLP (To * D) -> (H * A) with LayerNorm + GELU hidden layers; inputs/outputs of ``predict`` are raw."""

    kind = "bc"
    config: BCConfig

    def __init__(self, config: BCConfig, layout: dict[str, Any], action_dim: int) -> None:
        super().__init__()
        c = self.config = config
        self.layout = layout
        self.obs_dim = int(layout["fields"][-1]["offset"] + np.prod(layout["fields"][-1]["shape"]))
        self.action_dim = action_dim
        self.normalizer = Normalizer(self.obs_dim, action_dim, c.obs_clip)
        layers: list[nn.Module] = []
        width = c.obs_horizon * self.obs_dim
        for _ in range(c.hidden_layers):
            layers += [nn.Linear(width, c.hidden_width), nn.LayerNorm(c.hidden_width), nn.GELU(), nn.Dropout(c.dropout)]
            width = c.hidden_width
        layers.append(nn.Linear(width, c.pred_horizon * action_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, obs_norm: Tensor) -> Tensor:
        """Normalised history (B, To, D) -> normalised chunk (B, H, A)."""
        want = (self.config.obs_horizon, self.obs_dim)
        if obs_norm.dim() != 3 or tuple(obs_norm.shape[1:]) != want:
            raise ValueError(f"observation history must be (B, {want[0]}, {want[1]}), got {tuple(obs_norm.shape)}")
        return self.net(obs_norm.flatten(1)).reshape(-1, self.config.pred_horizon, self.action_dim)

    def predict(self, obs_hist: Tensor) -> Tensor:
        """Raw history (B, To, D) -> raw action chunk (B, H, A)."""
        return self.normalizer.unnormalize_action(self(self.normalizer.normalize_obs(obs_hist)))

    def sample(self, obs_hist: Tensor, noise: Tensor | None = None, k_steps: int | None = None) -> Tensor:
        """Same signature as :meth:`FlowMatchingTransformer.sample`; ``noise`` and ``k_steps`` are ignored."""
        return self.predict(obs_hist)

    def loss(self, obs_hist: Tensor, actions: Tensor, noise: Tensor | None = None, t: Tensor | None = None,
             generator: torch.Generator | None = None) -> Tensor:
        """MSE in normalised action units between the prediction and raw ``actions`` (B, H, A) normalised."""
        target = self.normalizer.normalize_action(actions)
        return torch.mean((self(self.normalizer.normalize_obs(obs_hist)) - target) ** 2)

    def n_params(self) -> dict[str, int]:
        n = sum(p.numel() for p in self.parameters())
        return {"total": n, "encoder": n, "decoder": 0}
