"""Flow matching on a linear path: the loss and the Euler sampler, as pure functions of a velocity field.

Notation (normalised action space). ``a0 ~ N(0, I)`` noise, ``a1`` a data action chunk, ``t`` in [0, 1].

* path:      ``a_t = (1 - t) a0 + t a1``
* target:    ``d/dt a_t = a1 - a0``
* loss:      ``mean over batch and entries of (u(a_t, t) - (a1 - a0))^2`` (the squared norm of
  flow-matching loss divided by the number of entries of a chunk, so its scale does not depend on ``H x A``)
* sampling:  ``a <- a + (1 / K) u(a, k / K)`` for ``k = 0 .. K-1``, from ``a = a0`` at ``t = 0`` to ``t = 1``.

``velocity(a_t, t)`` takes ``a_t`` (B, H, A) and ``t`` (B,) (or (1,), broadcast) and returns (B, H, A); the observation
conditioning is closed over by the caller (see :meth:`FlowMatchingTransformer.velocity`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

VelocityFn = Callable[[Tensor, Tensor], Tensor]
"""``(a_t (B, H, A), t (B,) or (1,)) -> velocity (B, H, A)``."""


def interpolate(a0: Tensor, a1: Tensor, t: Tensor) -> Tensor:
    """Point on the linear path: ``(1 - t) a0 + t a1``; ``a0, a1`` (B, H, A), ``t`` (B,)."""
    tb = t.reshape(-1, *([1] * (a0.dim() - 1)))
    return (1.0 - tb) * a0 + tb * a1


def flow_matching_loss(velocity: VelocityFn, a1: Tensor, a0: Tensor, t: Tensor) -> Tensor:
    """Linear-path (rectified flow / OT-CFM) loss, a scalar.

    ``a1`` data (B, H, A), ``a0`` noise (B, H, A), ``t`` (B,) in [0, 1]. Exactly zero for a field
    that returns ``a1 - a0`` at ``(a_t, t)``.
    """
    if a0.shape != a1.shape:
        raise ValueError(f"noise {tuple(a0.shape)} and actions {tuple(a1.shape)} differ in shape")
    if t.shape != a1.shape[:1]:
        raise ValueError(f"t must be (B,) = ({a1.shape[0]},), got {tuple(t.shape)}")
    a_t = interpolate(a0, a1, t)
    return torch.mean((velocity(a_t, t) - (a1 - a0)) ** 2)


def euler_sample(velocity: VelocityFn, a0: Tensor, k_steps: int) -> Tensor:
    """Integrate ``da/dt = velocity(a, t)`` from ``t = 0`` (``a0``, (B, H, A)) to ``t = 1`` in ``k_steps`` Euler steps.

    The loop is a Python loop over a fixed ``k_steps``: traced for ONNX it unrolls into a static graph.
    """
    if k_steps < 1:
        raise ValueError(f"k_steps must be >= 1, got {k_steps}")
    a = a0
    dt = 1.0 / k_steps
    for k in range(k_steps):
        # t as a (1,) constant broadcast over the batch: in an exported graph everything that
        # depends on t alone (the time embedding and its projections) folds into constants.
        a = a + dt * velocity(a, torch.full((1,), k * dt, dtype=a0.dtype, device=a0.device))
    return a


def sample_flow_time(n: int, generator: torch.Generator | None = None, kind: str = "uniform") -> Tensor:
    """Training times ``t`` (n,): ``uniform`` on [0, 1), or ``beta`` (pi0's Beta(1.5, 1) on 1 - t,
    which puts more weight near t = 0 where the noise dominates)."""
    u = torch.rand(n, generator=generator)
    if kind == "uniform":
        return u
    if kind == "beta":
        # Inverse CDF of Beta(1.5, 1) is u ** (1 / 1.5); applied to 1 - t.
        return 1.0 - u ** (1.0 / 1.5)
    raise ValueError(f"unknown flow-time sampling {kind!r}; expected 'uniform' or 'beta'")
