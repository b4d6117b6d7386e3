"""DroQ losses against their formulas written out by hand, the residual wiring, the normaliser."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from sim_training.experts.droq import (
    Actor,
    Batch,
    Critics,
    DroQAgent,
    DroQConfig,
    RunningNorm,
    actor_loss,
    critic_loss,
    temperature_loss,
)
from sim_training.experts.residual import compose_action, observation_index, policy_input

B, D, A = 5, 6, 3
# dropout 0 so a hand computation with the same tensors gives the same numbers
TINY = DroQConfig(hidden_width=16, hidden_layers=2, critic_dropout=0.0)


def _nets(cfg: DroQConfig = TINY) -> tuple[Actor, Critics, Critics]:
    torch.manual_seed(0)
    actor, critics, target = Actor(D, A, cfg), Critics(D, A, cfg), Critics(D, A, cfg)
    # a non-zero mean head, so the tests exercise the mean path too
    nn.init.normal_(actor.mean.weight, std=0.5)
    return actor, critics, target


def _batch() -> Batch:
    g = torch.Generator().manual_seed(42)
    return Batch(obs=torch.randn(B, D, generator=g), action=torch.rand(B, A, generator=g) * 2 - 1,
                 reward=torch.randn(B, generator=g), next_obs=torch.randn(B, D, generator=g),
                 done=torch.tensor([0.0, 1.0, 0.0, 0.0, 1.0]))


def _sample_by_hand(actor: Actor, obs: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """a = tanh(mean + std eps); log pi = log N(u; mean, std) - log(1 - a^2), summed over action dims."""
    h = obs
    for layer in actor.trunk:
        h = layer(h)
    mean, log_std = actor.mean(h), actor.log_std(h).clamp(TINY.log_std_min, TINY.log_std_max)
    u = mean + log_std.exp() * eps
    a = torch.tanh(u)
    log_prob = torch.distributions.Normal(mean, log_std.exp()).log_prob(u).sum(-1) - torch.log(1 - a**2).sum(-1)
    return a, log_prob


def _q_by_hand(critics: Critics, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    x = torch.cat([obs, action], dim=1)
    return torch.stack([q(x)[:, 0] for q in critics.qs])


def test_critic_loss_matches_formula() -> None:
    actor, critics, target = _nets()
    batch, gamma, alpha = _batch(), 0.88, 0.3
    torch.manual_seed(7)
    loss, info = critic_loss(critics, target, actor, batch, gamma, alpha)
    torch.manual_seed(7)
    eps = torch.randn(B, A)
    with torch.no_grad():
        a2, logp2 = _sample_by_hand(actor, batch.next_obs, eps)
        y = batch.reward + gamma * (1 - batch.done) * (_q_by_hand(target, batch.next_obs, a2).min(0).values
                                                        - alpha * logp2)
        q = _q_by_hand(critics, batch.obs, batch.action)
        expected = ((q[0] - y) ** 2).mean() + ((q[1] - y) ** 2).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert info["td_target_mean"] == pytest.approx(y.mean().item(), rel=1e-5, abs=1e-6)
    # done rows do not bootstrap
    no_boot = critic_loss(critics, target, actor, dataclasses.replace(batch, done=torch.ones(B)), gamma, alpha)[0]
    assert no_boot.item() == pytest.approx(sum(((q[i] - batch.reward) ** 2).mean().item() for i in range(2)), rel=1e-5)


def test_actor_loss_matches_formula() -> None:
    actor, critics, _ = _nets()
    batch, alpha = _batch(), 0.3
    torch.manual_seed(3)
    loss, log_prob = actor_loss(actor, critics, batch.obs, alpha)
    torch.manual_seed(3)
    a, logp = _sample_by_hand(actor, batch.obs, torch.randn(B, A))
    expected = (alpha * logp - _q_by_hand(critics, batch.obs, a).min(0).values).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    np.testing.assert_allclose(log_prob.detach().numpy(), logp.detach().numpy(), rtol=1e-4, atol=1e-4)
    loss.backward()
    assert actor.mean.weight.grad is not None and actor.mean.weight.grad.abs().sum() > 0


def test_temperature_loss_matches_formula_and_direction() -> None:
    log_alpha = torch.tensor(np.log(0.5), requires_grad=True)
    log_prob = torch.tensor([-1.0, 2.0, 0.5])
    target_entropy = -3.0
    loss = temperature_loss(log_alpha, log_prob, target_entropy)
    assert loss.item() == pytest.approx((-0.5 * (log_prob + target_entropy)).mean().item(), rel=1e-6)
    loss.backward()
    # entropy -log pi = -0.5 on average > target -3: alpha must go down (gradient on log alpha > 0)
    assert log_alpha.grad is not None and log_alpha.grad.item() > 0


def test_critics_have_dropout_and_layer_norm_by_default() -> None:
    c = Critics(D, A, DroQConfig(hidden_width=16, hidden_layers=3))
    mods = list(c.qs[0].modules())
    assert sum(isinstance(m, nn.Dropout) and m.p == 0.01 for m in mods) == 3
    assert sum(isinstance(m, nn.LayerNorm) for m in mods) == 3
    assert len(c.qs) == 2


def test_rp1m_defaults() -> None:
    cfg = DroQConfig()
    assert (cfg.hidden_width, cfg.hidden_layers, cfg.gamma, cfg.tau, cfg.batch_size, cfg.learning_starts) == \
        (256, 3, 0.88, 0.05, 256, 5000)
    assert cfg.actor_lr == cfg.critic_lr == cfg.temperature_lr == 3e-4
    assert DroQAgent(D, A, cfg).target_entropy == -A


def test_initial_actor_is_exactly_the_prior() -> None:
    agent = DroQAgent(D, A, TINY)
    x = np.random.default_rng(0).normal(size=(8, D)).astype(np.float32)
    agent.obs_norm.update(x)
    residual = agent.act(x, deterministic=True)
    assert np.abs(residual).max() < 1e-3
    prior = np.random.default_rng(1).uniform(-1, 1, size=(8, A))
    np.testing.assert_array_equal(compose_action(prior, residual, 0.1), prior)
    # sampled (exploring) actions are not zero, and stay in [-1, 1]
    sampled = agent.act(x)
    assert np.abs(sampled).max() > 1e-3 and np.all(np.abs(sampled) <= 1)


def test_residual_composition_clips() -> None:
    prior = np.array([0.95, -0.95, 0.0, 1.0])
    residual = np.array([1.0, -1.0, -1.0, 0.5])
    np.testing.assert_allclose(compose_action(prior, residual, 0.1), [1.0, -1.0, -0.1, 1.0])
    np.testing.assert_allclose(compose_action(None, np.array([2.0, -0.3]), 0.1), [1.0, -0.3])


def test_policy_input_layouts(shadow_scene) -> None:  # noqa: ANN001 - fixture
    from sim_training.env.observation import ObservationLayout

    layout = ObservationLayout.for_embodiment(shadow_scene.embodiment)
    obs = np.arange(layout.size, dtype=np.float32)
    prior = np.full(shadow_scene.embodiment.action_dim, 0.5)
    full = policy_input(obs, prior, observation_index(layout, "full"))
    assert full.shape == (layout.size + prior.size,) and full[-1] == 0.5
    idx = observation_index(layout, "compact")
    n_tips = shadow_scene.embodiment.n_fingertips
    assert idx.size == 3 * 89 + 3 * n_tips + len(shadow_scene.embodiment.all_joint_names)
    assert idx[0] == 0 and idx[-1] == layout.size - 1  # starts at goal row 0, ends with the last hand joint
    assert policy_input(obs[None], prior[None], idx).shape == (1, idx.size + prior.size)


def test_running_norm_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    parts = [rng.normal(3.0, 2.0, size=(n, 4)) for n in (1, 7, 50)]
    norm = RunningNorm(4, clip=100.0)
    for p in parts:
        norm.update(p)
    allx = np.concatenate(parts)
    np.testing.assert_allclose(norm.mean, allx.mean(0), rtol=1e-10)
    np.testing.assert_allclose(norm.var, allx.var(0), rtol=1e-10)
    z = norm.normalize(allx)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
    constant = RunningNorm(2)
    constant.update(np.zeros((10, 2)))
    np.testing.assert_array_equal(constant.normalize(np.array([[0.0, 1.0]])), [[0.0, 5.0]])  # clipped


def test_update_moves_networks_and_targets_by_tau() -> None:
    cfg = dataclasses.replace(TINY, critic_dropout=0.01, tau=0.5, utd=1)
    agent = DroQAgent(D, A, cfg)
    before = [p.detach().clone() for p in agent.target_critics.parameters()]
    rng = np.random.default_rng(0)
    batch = agent.make_batch(rng.normal(size=(B, D)), rng.uniform(-1, 1, (B, A)), rng.normal(size=B),
                             rng.normal(size=(B, D)), np.zeros(B))
    info = agent.update(batch)
    assert all(np.isfinite(v) for v in info.values())
    assert {"critic_loss", "actor_loss", "temperature_loss", "alpha"} <= set(info)
    for p, tp, b in zip(agent.critics.parameters(), agent.target_critics.parameters(), before, strict=True):
        torch.testing.assert_close(tp, 0.5 * b + 0.5 * p)
    state = agent.state_dict()
    other = DroQAgent(D, A, cfg)
    other.load_state_dict(state)
    x = rng.normal(size=(3, D)).astype(np.float32)
    np.testing.assert_array_equal(other.act(x, True), agent.act(x, True))
