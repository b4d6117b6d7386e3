"""A trained expert as a plain controller: ``ExpertPolicy.load(dir).act(obs)`` (prior + deterministic residual).

For the dataset stage and for evaluation: it rebuilds the embodiment, the scene and the OT/IK prior
(with the :class:`PriorConfig` the expert was trained with) from the checkpoint metadata, so it
needs nothing but the checkpoint. Stateful like the prior: call :meth:`reset` at each episode start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from sim_training.env.observation import ObservationLayout
from sim_training.experts.droq import Actor, DroQConfig, RunningNorm
from sim_training.experts.residual import compose_action, observation_index, policy_input
from sim_training.experts.train import BEST, CHECKPOINT_FORMAT, LAST, prior_config_from_dict
from sim_training.fingering.prior import OTIKPrior
from sim_training.models.embodiment import get_embodiment
from sim_training.models.scene import Scene, build_scene


class ExpertPolicy:
    """Deterministic expert: action = clip(prior(obs) + residual_scale * tanh(mean(obs_aug)), -1, 1)."""

    def __init__(self, meta: dict[str, Any], actor: Actor, obs_norm: RunningNorm, scene: Scene | None = None,
                 source: str = "") -> None:
        self.meta = meta
        self.source = source
        emb_meta = meta["embodiment"]
        self.embodiment = get_embodiment(emb_meta["name"], emb_meta["action_set"], emb_meta["forearm_z"])
        self.scene = scene if scene is not None else build_scene(self.embodiment)
        if self.scene.embodiment != self.embodiment:
            raise ValueError(f"{source}: expert is for {self.embodiment.key!r}, scene is {self.scene.embodiment.key!r}")
        self.layout = ObservationLayout.for_embodiment(self.embodiment, int(meta["lookahead"]))
        self.layout.check_matches(meta["observation_layout"], where=f"{source} observation_layout")
        self.prior = OTIKPrior(self.scene, prior_config_from_dict(meta["prior_config"]), self.layout.lookahead) \
            if meta["with_prior"] else None
        self.index = observation_index(self.layout, meta["obs_mode"])
        self.residual_scale = float(meta["residual_scale"])
        self.actor = actor.eval()
        self.obs_norm = obs_norm

    @property
    def action_dim(self) -> int:
        return self.embodiment.action_dim

    @classmethod
    def load(cls, path: str | Path, scene: Scene | None = None) -> ExpertPolicy:
        """From a run directory (``best.pt``, else ``last.pt``) or a checkpoint file.

        Raises FileNotFoundError naming the path, ValueError for a file that is not an expert checkpoint.
        """
        path = Path(path)
        if path.is_dir():
            found = [path / n for n in (BEST, LAST) if (path / n).exists()]
            if not found:
                raise FileNotFoundError(f"{path}: no {BEST} or {LAST} in this directory")
            path = found[0]
        state = torch.load(path, weights_only=path.name != LAST, map_location="cpu")
        meta = state.get("meta") if isinstance(state, dict) else None
        if not meta or meta.get("kind") != "omnipianist-expert":
            raise ValueError(f"{path}: not an omnipianist expert checkpoint")
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path}: checkpoint format {meta.get('format')}, this code reads {CHECKPOINT_FORMAT}")
        actor_state = state["actor"] if "actor" in state else state["agent"]["actor"]
        norm_state = state["obs_norm"] if "obs_norm" in state else state["agent"]["obs_norm"]
        actor = Actor(int(meta["policy_input_dim"]), int(meta["action_dim"]), DroQConfig(**meta["droq"]))
        actor.load_state_dict(actor_state)
        norm = RunningNorm(int(meta["policy_input_dim"]))
        norm.load_state_dict(norm_state)
        return cls(meta, actor, norm, scene, str(path))

    def reset(self) -> None:
        """Call at the start of every episode (resets the stateful prior)."""
        if self.prior is not None:
            self.prior.reset()

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Env observation (layout.size,) -> action (action_dim,) in [-1, 1], float64."""
        prior_action = self.prior.act(obs) if self.prior is not None else None
        x = torch.from_numpy(self.obs_norm.normalize(policy_input(obs, prior_action, self.index)[None]))
        with torch.no_grad():
            residual = self.actor.act_deterministic(x)[0].numpy()
        return compose_action(prior_action, residual, self.residual_scale)
