"""What every generalist model (:class:`~sim_training.imitation.model.FlowMatchingTransformer`,
:class:`~sim_training.imitation.bc.BCPolicyMLP`) offers the trainer, the policy runtime and the exporter.

:class:`GeneralistModel` is their common base: the normaliser, the sizes, the config fields both configs
share (:class:`ModelConfig`), ``sample``, ``loss`` and ``n_params``. Code that takes "a generalist" takes
this type, so it can call those without knowing which model it holds.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor, nn

from sim_training.imitation.normalization import Normalizer


class ModelConfig(Protocol):
    """The fields both model configs (``FMTConfig``, ``BCConfig``) have."""

    @property
    def obs_horizon(self) -> int: ...

    @property
    def pred_horizon(self) -> int: ...

    @property
    def k_steps(self) -> int: ...

    @property
    def obs_clip(self) -> float: ...


class GeneralistModel(nn.Module):
    """Base of the generalist models; inputs and outputs of :meth:`sample` and :meth:`loss` are raw (env units)."""

    kind: ClassVar[str]
    """``fmt`` | ``bc`` (the checkpoint's ``model.kind``)."""
    config: ModelConfig
    layout: dict[str, Any]
    """``ObservationLayout.to_dict()`` the model was built for."""
    obs_dim: int
    action_dim: int
    normalizer: Normalizer

    def sample(self, obs_hist: Tensor, noise: Tensor | None = None, k_steps: int | None = None) -> Tensor:
        """Raw observation history (B, To, D) [+ noise (B, H, A)] -> raw action chunk (B, H, A)."""
        raise NotImplementedError

    def loss(self, obs_hist: Tensor, actions: Tensor, noise: Tensor | None = None, t: Tensor | None = None,
             generator: torch.Generator | None = None) -> Tensor:
        """The training loss (scalar) of raw ``obs_hist`` (B, To, D) and raw ``actions`` (B, H, A)."""
        raise NotImplementedError

    def n_params(self) -> dict[str, int]:
        """Trainable parameters: ``total``, ``encoder``, ``decoder``."""
        raise NotImplementedError
