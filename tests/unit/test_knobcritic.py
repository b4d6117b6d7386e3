"""The knob critic: it learns a ranking that depends on the observation (and a knobs-only critic cannot),
and candidate windows join a plan's candidates.npz with its replay."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sim_training.experts.planner import PlannerConfig, plan_piece
from sim_training.imitation.knobcritic import (
    CandidateWindows,
    CriticConfig,
    candidate_windows,
    fit_critic,
    neighbour_pick_quality,
    pick_quality,
)
from sim_training.imitation.knobhead import plan_samples


def _planted(n_windows: int, seed: int) -> CandidateWindows:
    """Horizon F1 = u0 where obs0 > 0, 1 - u0 elsewhere: which knob wins depends on the state only."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n_windows, 6)).astype(np.float32)
    per = 12
    u = rng.uniform(size=(n_windows * per, 2)).astype(np.float32)
    group = np.repeat(np.arange(n_windows), per)
    up = obs[group, 0] > 0
    f1 = np.where(up, u[:, 0], 1 - u[:, 0]).astype(np.float32) + rng.normal(0, 0.01, len(group)).astype(np.float32)
    return CandidateWindows(obs, np.asarray([f"p{w % 10}" for w in range(n_windows)]), np.zeros(n_windows, int),
                            np.full(n_windows, 0.5),
                            group, u, f1)


def test_critic_learns_a_state_dependent_ranking_that_a_knobs_only_critic_cannot() -> None:
    data = _planted(160, 0)
    train, held = list(range(120)), list(range(120, 160))
    cfg = CriticConfig(steps=400, windows_per_batch=8, tau=0.05, dropout=0.0, encoder_width=16, hidden_width=32)
    with_obs = pick_quality(fit_critic(data, train, cfg), data, held)
    knobs_only = pick_quality(fit_critic(data, train, CriticConfig(**{**cfg.__dict__, "use_obs": False})), data, held)
    assert with_obs.oracle > with_obs.random
    assert with_obs.recovered > 0.7, with_obs
    assert knobs_only.recovered < 0.4, knobs_only


@pytest.mark.slow
def test_candidate_windows_join_a_plan_with_its_replay(tmp_path: Path) -> None:
    d = tmp_path / "c_major_scale"
    plan_piece("c_major_scale", d, config=PlannerConfig(budget=4, window=10, horizon=10, iterations=1))
    doc = json.loads((d / "plan.json").read_text())
    samples = plan_samples([d])
    data = candidate_windows([d], samples)
    searched = [w for w in doc["windows"] if w.get("searched")]
    assert searched and data.pieces == ["c_major_scale"] and len(set(data.step.tolist())) == data.n_windows
    for w in searched:  # every window the plan records was searched from its start observation
        k = int(np.flatnonzero(data.step == w["step"])[0])
        np.testing.assert_array_equal(data.obs[k], samples.obs[w["step"]])
        rows = data.rows(k)
        assert data.f1[rows].max() == pytest.approx(w["horizon_f1"], abs=1e-6)  # the planner kept the best
        assert data.base[k] == pytest.approx(w["default_horizon_f1"], abs=1e-6)


def test_neighbour_bound_sees_a_smooth_landscape_and_not_noise() -> None:
    smooth = _planted(40, 1)
    rng = np.random.default_rng(2)
    noise = CandidateWindows(smooth.obs, smooth.piece, smooth.step, smooth.base, smooth.group, smooth.u,
                             rng.uniform(size=smooth.f1.shape).astype(np.float32))
    assert neighbour_pick_quality(smooth, 0.2).recovered > 0.6
    assert abs(neighbour_pick_quality(noise, 0.2).recovered) < 0.3
