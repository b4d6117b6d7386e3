"""A trained generalist as a controller: ``GeneralistPolicy.load(ckpt)``, ``reset()``, ``act(obs) -> action``.

The policy keeps the observation history the model was trained on (``obs_horizon`` frames; the
first observation of an episode fills every slot, as the dataset pads episode starts), samples an
action chunk (``pred_horizon`` actions) and executes its first ``execute`` actions (default 1,
OmniPianist's setting: a new chunk every control step).

Noise for the flow (``noise``): ``fixed`` — the same N(0, I) draw (from ``seed``) every call, so the
policy is a deterministic function of the observations (and an exported graph fed the same noise
reproduces it); ``random`` — a fresh draw per chunk from a generator seeded at ``reset``; ``zero`` —
the mean of the noise distribution.

Residual generalists (``meta['residual_on_prior']``): the policy steps the OT/IK prior every call
(:class:`~sim_training.imitation.residual.PriorResidual`), feeds the network ``obs ⊕ prior_action``
and executes ``clip(prior_action + residual, -1, 1)`` — the prior of THIS step plus the chunk's row.

Runtime hook: :func:`load_policy` returns this class for torch checkpoints and, for ``*.onnx`` files,
``policy_export.runtime.Policy.load(path)`` — the exporter's ORT runtime, which must offer the same
``reset`` / ``act`` / ``embodiment`` / ``meta`` interface (:class:`ActingPolicy`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch

from sim_training.imitation.base import GeneralistModel
from sim_training.imitation.checkpoint import embodiment_from_meta, load_checkpoint
from sim_training.imitation.residual import PriorResidual, base_layout, compose
from sim_training.models.embodiment import Embodiment
from sim_training.noise import fixed_noise, noise_generator

NoiseMode = Literal["fixed", "random", "zero"]


@runtime_checkable
class ActingPolicy(Protocol):
    """What :func:`sim_training.imitation.evaluate.evaluate_policy` needs from a policy."""

    meta: dict[str, Any]
    source: str

    @property
    def embodiment(self) -> Embodiment: ...

    def reset(self) -> None: ...

    def act(self, obs: np.ndarray) -> np.ndarray | None:
        """The action (A,), or None when the policy refuses the observation (the ONNX runtime's NaN / Inf
        check; :func:`~sim_training.env.rollout.rollout` then holds still)."""
        ...


class GeneralistPolicy:
    """Torch runtime of a generalist checkpoint (FMT or BC); see the module docstring."""

    def __init__(self, model: GeneralistModel, meta: dict[str, Any], source: str = "", noise: NoiseMode = "fixed",
                 seed: int = 0, execute: int | None = None, k_steps: int | None = None) -> None:
        if noise not in ("fixed", "random", "zero"):
            raise ValueError(f"noise must be 'fixed', 'random' or 'zero', got {noise!r}")
        self.model = model.eval()
        self.meta = meta
        self.source = source
        self.noise_mode: NoiseMode = noise
        self.seed = seed
        self.obs_horizon = int(meta["obs_horizon"])
        self.pred_horizon = int(meta["pred_horizon"])
        self.execute = int(execute if execute is not None else meta.get("execute_horizon", 1))
        if not 1 <= self.execute <= self.pred_horizon:
            raise ValueError(f"execute must be in 1..{self.pred_horizon}, got {self.execute}")
        self.k_steps = k_steps or int(meta["k_steps"])
        self.obs_dim, self.action_dim = int(meta["obs_dim"]), int(meta["action_dim"])
        self.residual = None
        if meta.get("residual_on_prior"):
            lookahead = int(base_layout(meta["observation_layout"])["lookahead"])
            self.residual = PriorResidual(self.embodiment, meta.get("prior_config") or {}, lookahead)
        chunk = (1, self.pred_horizon, self.action_dim)
        self._fixed_noise = torch.from_numpy(fixed_noise(chunk, seed))
        self._zero_noise = torch.zeros(chunk)
        self._gen = noise_generator(seed)
        self._history = torch.zeros(1, self.obs_horizon, self.obs_dim)
        self._queue: list[np.ndarray] = []
        self._fresh = True

    @classmethod
    def load(cls, path: str | Path, noise: NoiseMode = "fixed", seed: int = 0, execute: int | None = None,
             k_steps: int | None = None, use_ema: bool = True) -> GeneralistPolicy:
        """From ``policy.pt``, ``last.pt`` or a run directory (see :func:`load_checkpoint`)."""
        model, meta, source = load_checkpoint(path, use_ema=use_ema)
        return cls(model, meta, source, noise, seed, execute, k_steps)

    @property
    def embodiment(self) -> Embodiment:
        """The embodiment the training data was recorded with (ModelError if the store did not name a real one)."""
        return embodiment_from_meta(self.meta.get("embodiment_key") or self.meta["embodiment"])

    def reset(self) -> None:
        """Call at the start of every episode: clears the history and the action queue, reseeds ``random`` noise."""
        self._fresh = True
        self._queue.clear()
        self._gen = noise_generator(self.seed)
        if self.residual is not None:
            self.residual.reset()

    def _noise(self) -> torch.Tensor:
        if self.noise_mode == "fixed":
            return self._fixed_noise
        if self.noise_mode == "zero":
            return self._zero_noise
        return torch.from_numpy(self._gen.standard_normal(tuple(self._fixed_noise.shape), dtype=np.float32))

    def _push(self, obs: np.ndarray) -> None:
        """Append ``obs`` (D,) to the history (the first observation of an episode fills every slot)."""
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32))
        if x.shape != (self.obs_dim,):
            raise ValueError(f"{self.source}: observation has shape {tuple(x.shape)}, the policy expects ({self.obs_dim},)")
        if self._fresh:
            self._history[0, :] = x
            self._fresh = False
        else:
            self._history = torch.roll(self._history, -1, dims=1)
            self._history[0, -1] = x

    @torch.no_grad()
    def act_chunk(self, obs: np.ndarray) -> np.ndarray:
        """Push ``obs`` (D,) into the history and sample a full chunk (H, A), float64, clipped to [-1, 1].

        Residual policies: ``obs`` is the environment observation; the chunk is prior (this step) + residual rows."""
        if self.residual is not None:
            x, prior_action = self.residual.step(obs)
            self._push(x)
            chunk = self.model.sample(self._history, self._noise(), self.k_steps)[0].numpy()
            return compose(prior_action[None], np.clip(chunk.astype(np.float64), -1.0, 1.0))
        self._push(obs)
        chunk = self.model.sample(self._history, self._noise(), self.k_steps)[0].numpy()
        return np.clip(chunk.astype(np.float64), -1.0, 1.0)

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        """Observation (D,) -> action (A,) in [-1, 1], float64 (a new chunk every ``execute`` calls)."""
        if self.residual is not None:
            x, prior_action = self.residual.step(obs)
            if self._queue:
                self._push(x)
            else:
                self._push(x)
                chunk = self.model.sample(self._history, self._noise(), self.k_steps)[0].numpy()
                self._queue = list(np.clip(chunk.astype(np.float64), -1.0, 1.0)[: self.execute])
            return compose(prior_action, self._queue.pop(0))
        if self._queue:
            self._push(obs)
        else:
            self._queue = list(self.act_chunk(obs)[: self.execute])
        return self._queue.pop(0)


def load_policy(path: str | Path, **kwargs: Any) -> ActingPolicy:
    """The runtime for a policy file: ``*.onnx`` -> ``policy_export.runtime.Policy``; else :class:`GeneralistPolicy`.

    ``kwargs`` go to the runtime's ``load`` (``noise``, ``seed``, ``execute``, ... for the torch runtime).
    """
    path = Path(path)
    if path.suffix == ".onnx":
        try:  # lazy: optional, its ImportError is reported below
            from policy_export.runtime import Policy
        except ImportError as exc:
            raise NotImplementedError(f"{path}: ONNX policies need policy_export.runtime.Policy, which is not "
                                      f"available ({exc}); evaluate the torch checkpoint instead") from exc
        return Policy.load(path, **kwargs)
    return GeneralistPolicy.load(path, **kwargs)
