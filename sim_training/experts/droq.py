"""DroQ: soft actor-critic with dropout + LayerNorm critics (Hiraoka et al. 2022), as RP1M trains experts.

One file, read top to bottom (CleanRL style): the hyper-parameters (:class:`DroQConfig`), the
observation normaliser, the networks, the three losses written out as functions of networks and
tensors, and :class:`DroQAgent` which owns the optimisers and does one update.

Notation. ``B`` batch size, ``D`` policy-input size, ``A`` action size, ``Q`` number of critics.
The actor outputs ``a = tanh(u)``, ``u ~ N(mean(s), std(s))``, so actions are in [-1, 1]. In
residual use (see :mod:`sim_training.experts.residual`) ``a`` is the residual, scaled and added to
the prior's action by the caller; this file does not know about the prior.

Losses (``alpha = exp(log_alpha)``, detached where it is a coefficient):

* critic: ``sum_q mean_B (Q_q(s, a) - y)^2``, ``y = r + gamma (1 - d) (min_q Q'_q(s', a') - alpha log pi(a'|s'))``,
  ``a' ~ pi(.|s')``, ``Q'`` the Polyak-averaged target critics (dropout active, as in DroQ);
* actor: ``mean_B (alpha log pi(a|s) - min_q Q_q(s, a))``, ``a ~ pi(.|s)`` (reparameterised);
* temperature: ``mean_B -alpha (log pi(a|s) + H)``, ``H`` the target entropy (default ``-A``).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class DroQConfig:
    """DroQ hyper-parameters; defaults are RP1M's expert settings unless a field says otherwise."""

    hidden_width: int = 256
    hidden_layers: int = 3
    """Actor and critics are MLPs of ``hidden_layers`` x ``hidden_width`` (RP1M: 3 x 256)."""
    n_critics: int = 2
    critic_dropout: float = 0.01
    critic_layer_norm: bool = True
    gamma: float = 0.88
    tau: float = 0.05
    """Polyak rate of the target critics per critic update."""
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    temperature_lr: float = 3e-4
    init_temperature: float = 1.0
    """alpha at the start (RoboPianist/jaxrl default)."""
    target_entropy: float | None = None
    """Entropy the temperature steers to; None = -action_dim."""
    backup_entropy: bool = True
    """Subtract alpha log pi(a'|s') in the TD target (soft Bellman backup)."""
    log_std_min: float = -20.0
    log_std_max: float = 2.0
    batch_size: int = 256
    learning_starts: int = 5000
    """Env steps collected (prior + noise, or uniform without a prior) before the first update."""
    update_every: int = 1
    """Env steps per update round (RP1M 1; the 2-core budget here prefers 4 or more)."""
    utd: int = 1
    """Critic updates per round (DroQ's update-to-data ratio G); the actor and alpha update once per round."""
    residual_scale: float = 0.1
    """Env action = clip(prior + residual_scale * a, -1, 1). 0.2 wrecked the prior in minutes (measured)."""
    obs_clip: float = 5.0
    """Normalised inputs are clipped to +-obs_clip (rare 0/1 goal bits would otherwise blow up)."""


# ----------------------------------------------------------------------------------- normaliser
class RunningNorm:
    """Running mean / variance of the policy input (Chan et al. parallel update, float64).

    ``normalize(x) = clip((x - mean) / sqrt(var + 1e-8), -clip, clip)``. Updated with every
    collected policy input; stored in checkpoints so a loaded policy sees what it was trained on.
    A column that has always been constant (a key the piece never plays) normalises to 0.
    """

    def __init__(self, dim: int, clip: float = 5.0) -> None:
        self.count = 0.0
        self.mean = np.zeros(dim)
        self.var = np.ones(dim)
        self.clip = clip

    def update(self, x: np.ndarray) -> None:
        """Fold a batch ``x`` (N, dim) into the statistics."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.mean.size)
        n = x.shape[0]
        if n == 0:
            return
        b_mean, b_var = x.mean(axis=0), x.var(axis=0)
        total = self.count + n
        delta = b_mean - self.mean
        m2 = self.var * self.count + b_var * n + delta**2 * self.count * n / total
        self.mean = self.mean + delta * n / total
        self.var = m2 / total
        self.count = total

    def normalize(self, x: np.ndarray) -> np.ndarray:
        """(..., dim) raw -> float32 normalised and clipped (identity stats before any update)."""
        if self.count == 0:
            return np.clip(np.asarray(x, dtype=np.float32), -self.clip, self.clip)
        z = (x - self.mean) / np.sqrt(self.var + 1e-8)
        return np.clip(z, -self.clip, self.clip).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count, "mean": torch.from_numpy(self.mean.copy()),
                "var": torch.from_numpy(self.var.copy()), "clip": self.clip}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = float(state["count"])
        self.mean = state["mean"].numpy().astype(np.float64)
        self.var = state["var"].numpy().astype(np.float64)
        self.clip = float(state["clip"])


# ----------------------------------------------------------------------------------- networks
def _mlp(in_dim: int, width: int, layers: int, dropout: float = 0.0, layer_norm: bool = False) -> nn.Sequential:
    """Hidden stack: per layer Linear -> [Dropout] -> [LayerNorm] -> ReLU (jaxrl/DroQ order)."""
    mods: list[nn.Module] = []
    for i in range(layers):
        mods.append(nn.Linear(in_dim if i == 0 else width, width))
        if dropout > 0:
            mods.append(nn.Dropout(dropout))
        if layer_norm:
            mods.append(nn.LayerNorm(width))
        mods.append(nn.ReLU())
    return nn.Sequential(*mods)


class Actor(nn.Module):
    """Tanh-Gaussian policy. The mean head starts at exactly zero: tanh(0) = 0 residual, i.e. the prior."""

    def __init__(self, obs_dim: int, action_dim: int, cfg: DroQConfig) -> None:
        super().__init__()
        self.trunk = _mlp(obs_dim, cfg.hidden_width, cfg.hidden_layers)
        self.mean = nn.Linear(cfg.hidden_width, action_dim)
        self.log_std = nn.Linear(cfg.hidden_width, action_dim)
        nn.init.zeros_(self.mean.weight)
        nn.init.zeros_(self.mean.bias)
        self.log_std_min, self.log_std_max = cfg.log_std_min, cfg.log_std_max

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, D) normalised input -> mean (B, A), log_std (B, A) clamped to [log_std_min, log_std_max]."""
        h = self.trunk(obs)
        return self.mean(h), self.log_std(h).clamp(self.log_std_min, self.log_std_max)

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised sample: action (B, A) in (-1, 1) and its log-density log pi(a|s) (B,).

        log pi(a) = log N(u; mean, std) - sum log(1 - tanh(u)^2), the Jacobian term written as
        2 (log 2 - u - softplus(-2u)) for numerical stability. Draws ``torch.randn_like(mean)``.
        """
        mean, log_std = self(obs)
        eps = torch.randn_like(mean)
        u = mean + log_std.exp() * eps
        gauss = (-0.5 * eps.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_det = (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)
        return torch.tanh(u), gauss - log_det

    def act_deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        """tanh(mean): (B, A)."""
        return torch.tanh(self(obs)[0])


class Critics(nn.Module):
    """``n_critics`` independent Q(s, a) MLPs with dropout + LayerNorm (DroQ)."""

    def __init__(self, obs_dim: int, action_dim: int, cfg: DroQConfig) -> None:
        super().__init__()
        self.qs = nn.ModuleList(
            nn.Sequential(_mlp(obs_dim + action_dim, cfg.hidden_width, cfg.hidden_layers,
                               cfg.critic_dropout, cfg.critic_layer_norm), nn.Linear(cfg.hidden_width, 1))
            for _ in range(cfg.n_critics))

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """(B, D), (B, A) -> Q values (n_critics, B)."""
        x = torch.cat([obs, action], dim=-1)
        return torch.stack([q(x).squeeze(-1) for q in self.qs])


# ----------------------------------------------------------------------------------- losses
@dataclass
class Batch:
    """A minibatch of transitions (normalised inputs). Shapes: obs/next_obs (B, D), action (B, A),
    reward (B,), done (B,) = 1.0 where the episode terminated (no bootstrap), 0.0 otherwise."""

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    done: torch.Tensor


def critic_loss(critics: Critics, target_critics: Critics, actor: Actor, batch: Batch, gamma: float,
                alpha: float, backup_entropy: bool = True) -> tuple[torch.Tensor, dict[str, float]]:
    """Soft TD loss summed over critics: sum_q mean_B (Q_q(s, a) - y)^2 (see the module docstring)."""
    with torch.no_grad():
        next_action, next_log_prob = actor.sample(batch.next_obs)
        next_q = target_critics(batch.next_obs, next_action).min(dim=0).values
        if backup_entropy:
            next_q = next_q - alpha * next_log_prob
        target = batch.reward + gamma * (1.0 - batch.done) * next_q
    q = critics(batch.obs, batch.action)
    loss = (q - target).pow(2).mean(dim=1).sum()
    return loss, {"critic_loss": loss.item(), "q_mean": q.mean().item(), "td_target_mean": target.mean().item()}


def actor_loss(actor: Actor, critics: Critics, obs: torch.Tensor, alpha: float
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """mean_B (alpha log pi(a|s) - min_q Q_q(s, a)), a ~ pi(.|s); also returns log pi (B,) for the temperature."""
    action, log_prob = actor.sample(obs)
    q = critics(obs, action).min(dim=0).values
    return (alpha * log_prob - q).mean(), log_prob


def temperature_loss(log_alpha: torch.Tensor, log_prob: torch.Tensor, target_entropy: float) -> torch.Tensor:
    """mean_B -alpha (log pi + H): raises alpha when the entropy -log pi falls below H."""
    return (-log_alpha.exp() * (log_prob.detach() + target_entropy)).mean()


# ----------------------------------------------------------------------------------- agent
class DroQAgent:
    """Actor, critics, target critics, temperature, their Adam optimisers and the input normaliser."""

    def __init__(self, obs_dim: int, action_dim: int, cfg: DroQConfig) -> None:
        self.cfg = cfg
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.actor = Actor(obs_dim, action_dim, cfg)
        self.critics = Critics(obs_dim, action_dim, cfg)
        self.target_critics = copy.deepcopy(self.critics)
        for p in self.target_critics.parameters():
            p.requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(cfg.init_temperature), requires_grad=True)
        self.target_entropy = float(-action_dim if cfg.target_entropy is None else cfg.target_entropy)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critics.parameters(), lr=cfg.critic_lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.temperature_lr)
        self.obs_norm = RunningNorm(obs_dim, cfg.obs_clip)

    @property
    def alpha(self) -> float:
        return float(self.log_alpha.exp().item())

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Raw policy input (N, D) or (D,) -> action in [-1, 1], same leading shape, float32."""
        x = torch.from_numpy(self.obs_norm.normalize(np.atleast_2d(obs)))
        with torch.no_grad():
            a = self.actor.act_deterministic(x) if deterministic else self.actor.sample(x)[0]
        out = a.numpy()
        return out[0] if np.ndim(obs) == 1 else out

    def make_batch(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray,
                   done: np.ndarray) -> Batch:
        """Normalise raw replay samples with the current statistics and wrap them as tensors."""
        return Batch(torch.from_numpy(self.obs_norm.normalize(obs)), torch.from_numpy(np.asarray(action, np.float32)),
                     torch.from_numpy(np.asarray(reward, np.float32)),
                     torch.from_numpy(self.obs_norm.normalize(next_obs)), torch.from_numpy(np.asarray(done, np.float32)))

    def update(self, batch: Batch, update_actor: bool = True) -> dict[str, float]:
        """One critic step (+ Polyak target update), then, if asked, one actor and one temperature step."""
        cfg = self.cfg
        alpha = self.alpha
        loss_q, info = critic_loss(self.critics, self.target_critics, self.actor, batch, cfg.gamma, alpha,
                                   cfg.backup_entropy)
        self.critic_opt.zero_grad(set_to_none=True)
        loss_q.backward()
        self.critic_opt.step()
        with torch.no_grad():
            for p, tp in zip(self.critics.parameters(), self.target_critics.parameters(), strict=True):
                tp.lerp_(p, cfg.tau)
        if not update_actor:
            return info

        self.critics.requires_grad_(False)  # the actor step must not touch (or pay for) critic gradients
        loss_pi, log_prob = actor_loss(self.actor, self.critics, batch.obs, alpha)
        self.actor_opt.zero_grad(set_to_none=True)
        loss_pi.backward()
        self.actor_opt.step()
        self.critics.requires_grad_(True)

        loss_alpha = temperature_loss(self.log_alpha, log_prob, self.target_entropy)
        self.alpha_opt.zero_grad(set_to_none=True)
        loss_alpha.backward()
        self.alpha_opt.step()
        info.update(actor_loss=loss_pi.item(), temperature_loss=loss_alpha.item(), alpha=self.alpha,
                    entropy=-log_prob.mean().item())
        return info

    # ------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {"actor": self.actor.state_dict(), "critics": self.critics.state_dict(),
                "target_critics": self.target_critics.state_dict(), "log_alpha": self.log_alpha.detach().clone(),
                "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
                "alpha_opt": self.alpha_opt.state_dict(), "obs_norm": self.obs_norm.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critics.load_state_dict(state["critics"])
        self.target_critics.load_state_dict(state["target_critics"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.alpha_opt.load_state_dict(state["alpha_opt"])
        self.obs_norm.load_state_dict(state["obs_norm"])
