"""Unit tests of the reward terms (sim_training.env.rewards)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim_training.constants import NUM_KEYS
from sim_training.env.rewards import (
    RewardTerms,
    RewardWeights,
    collision_reward,
    energy_penalty,
    key_press_reward,
    ot_fingering_reward,
    sustain_reward,
    tolerance,
    total_reward,
)

ALL_SIGMOIDS = (
    "gaussian",
    "linear",
    "quadratic",
    "cosine",
    "hyperbolic",
    "long_tail",
    "reciprocal",
    "tanh_squared",
)


@pytest.mark.parametrize("sigmoid", ALL_SIGMOIDS)
def test_tolerance_bound_margin_and_monotone(sigmoid: str) -> None:
    lo, hi, margin = 0.0, 0.01, 0.1
    assert tolerance(lo, (lo, hi), margin, sigmoid) == 1.0  # type: ignore[arg-type]
    assert tolerance(hi, (lo, hi), margin, sigmoid) == 1.0  # type: ignore[arg-type]
    assert tolerance(0.005, (lo, hi), margin, sigmoid) == 1.0  # type: ignore[arg-type]
    assert tolerance(hi + margin, (lo, hi), margin, sigmoid) == pytest.approx(0.1)  # type: ignore[arg-type]
    assert tolerance(lo - margin, (lo, hi), margin, sigmoid) == pytest.approx(0.1)  # type: ignore[arg-type]
    d = np.linspace(hi, hi + 5 * margin, 200)
    v = tolerance(d, (lo, hi), margin, sigmoid)  # type: ignore[arg-type]
    assert isinstance(v, np.ndarray)
    assert v.shape == d.shape
    assert np.all(np.diff(v) <= 1e-15)  # non-increasing away from the bound
    assert np.all((v >= 0.0) & (v <= 1.0))


def test_tolerance_gaussian_formula() -> None:
    d = np.array([0.0, 0.03, 0.1, 0.25])
    got = tolerance(0.01 + d, bounds=(0.0, 0.01), margin=0.1)
    np.testing.assert_allclose(got, np.exp(math.log(0.1) * (d / 0.1) ** 2))
    assert tolerance(0.11, (0.0, 0.01), 0.1, value_at_margin=0.5) == pytest.approx(0.5)


def test_tolerance_linear_reaches_zero() -> None:
    assert tolerance(2.0, (0.0, 1.0), 1.0, "linear", value_at_margin=0.0) == 0.0
    assert tolerance(1.5, (0.0, 1.0), 1.0, "linear", value_at_margin=0.0) == pytest.approx(0.5)
    assert tolerance(1.0 + 1.0 / 0.9 + 0.1, (0.0, 1.0), 1.0, "linear") == 0.0


def test_tolerance_zero_margin_is_step() -> None:
    x = np.array([-0.1, 0.0, 0.5, 1.0, 1.0001])
    np.testing.assert_array_equal(tolerance(x, (0.0, 1.0), 0.0), [0, 1, 1, 1, 0])


def test_tolerance_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="lower bound"):
        tolerance(0.0, (1.0, 0.0), 0.1)
    with pytest.raises(ValueError, match="margin"):
        tolerance(0.0, (0.0, 1.0), -0.1)
    with pytest.raises(ValueError, match="value_at_margin"):
        tolerance(0.0, (0.0, 1.0), 0.1, "gaussian", value_at_margin=0.0)
    with pytest.raises(ValueError, match="unknown sigmoid"):
        tolerance(0.0, (0.0, 1.0), 0.1, "bogus")  # type: ignore[arg-type]


def test_ot_fingering_reward() -> None:
    assert ot_fingering_reward(np.zeros(0)) == 1.0
    assert ot_fingering_reward(np.array([0.0, 0.005, 0.01])) == 1.0
    assert ot_fingering_reward(np.array([0.11])) == pytest.approx(0.1)
    assert ot_fingering_reward(np.array([0.0, 0.11])) == pytest.approx(0.55)
    far = ot_fingering_reward(np.array([0.5]))
    assert 0.0 <= far < 1e-10


def _keys(*idx: int) -> np.ndarray:
    v = np.zeros(NUM_KEYS, dtype=bool)
    v[list(idx)] = True
    return v


def test_key_press_perfect() -> None:
    goal = _keys(39, 43, 46)
    state = goal.astype(float)
    assert key_press_reward(state, goal, goal) == pytest.approx(1.0)
    # Within 5 % of full depression still counts as fully pressed.
    assert key_press_reward(np.where(goal, 0.96, 0.0), goal, goal) == pytest.approx(1.0)


def test_key_press_missed() -> None:
    goal = _keys(39, 43)
    state = np.zeros(NUM_KEYS)
    state[39] = 1.0
    no_press = tolerance(1.0, (0.0, 0.05), 0.5)
    expected = 0.5 * (1.0 + no_press) / 2 + 0.5
    assert key_press_reward(state, goal, _keys(39)) == pytest.approx(expected)
    assert key_press_reward(np.zeros(NUM_KEYS), goal, _keys()) == pytest.approx(
        0.5 + 0.5 * no_press
    )


def test_key_press_false_positive() -> None:
    goal = _keys(39)
    state = np.zeros(NUM_KEYS)
    state[[39, 40]] = 1.0
    assert key_press_reward(state, goal, _keys(39, 40)) == pytest.approx(0.5)


def test_key_press_empty_goal() -> None:
    silent = np.zeros(NUM_KEYS)
    assert key_press_reward(silent, _keys(), _keys()) == 1.0
    assert key_press_reward(silent, _keys(), _keys(), empty_goal_press_score=0.0) == 0.5
    pressed = silent.copy()
    pressed[10] = 1.0
    assert key_press_reward(pressed, _keys(), _keys(10)) == 0.5


def test_key_press_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError, match="key_state"):
        key_press_reward(np.zeros(87), _keys(), _keys())


def test_sustain_reward() -> None:
    assert sustain_reward(True, True) == 1.0
    assert sustain_reward(False, False) == 1.0
    assert sustain_reward(False, True) == pytest.approx(10 ** (-((0.95 / 0.5) ** 2)))
    assert sustain_reward(True, False) == pytest.approx(1e-4)


def test_energy_penalty_sign_and_value() -> None:
    force = np.array([1.0, -2.0, 0.5])
    vel = np.array([-3.0, 1.0, 0.0])
    assert energy_penalty(force, vel) == pytest.approx(-0.005 * (3.0 + 2.0))
    rng = np.random.default_rng(0)
    assert energy_penalty(rng.normal(size=44), rng.normal(size=44)) <= 0.0
    assert energy_penalty(np.zeros(4), rng.normal(size=4)) == 0.0
    with pytest.raises(ValueError, match="differ"):
        energy_penalty(np.zeros(3), np.zeros(4))


def test_collision_reward() -> None:
    assert collision_reward(False) == 0.5
    assert collision_reward(True) == 0.0


def test_total_reward_sums_weighted_terms() -> None:
    goal = _keys(39)
    state = goal.astype(float)
    kw = {
        "distance_m": np.array([0.005]),
        "key_state": state,
        "goal_keys": goal,
        "active": goal,
        "sustain_active": False,
        "goal_sustain": False,
        "forearm_collision": False,
        "actuator_force": np.array([1.0, 1.0]),
        "joint_velocity": np.array([1.0, 2.0]),
    }
    terms = total_reward(**kw)
    assert isinstance(terms, RewardTerms)
    assert terms.ot_fingering == 1.0
    assert terms.key_press == pytest.approx(1.0)
    assert terms.sustain == 1.0
    assert terms.collision == 0.5
    assert terms.energy == pytest.approx(-0.015)
    assert terms.total == pytest.approx(1.0 + 1.0 + 1.0 + 0.5 - 0.015)
    weighted = total_reward(**kw, weights=RewardWeights(ot_fingering=0.0, energy=2.0))
    assert weighted.total == pytest.approx(1.0 + 1.0 + 0.5 - 0.03)
    assert set(weighted.as_dict()) == {
        "ot_fingering",
        "key_press",
        "sustain",
        "collision",
        "energy",
        "total",
    }


def test_fast_gaussian_path_equals_tolerance() -> None:
    from sim_training.env.rewards import _gaussian_tolerance

    x = np.linspace(-1.0, 1.5, 501)
    np.testing.assert_allclose(
        _gaussian_tolerance(x, 0.0, 0.05, 0.5),
        tolerance(x, bounds=(0.0, 0.05), margin=0.5, sigmoid="gaussian"),
        rtol=1e-12,
    )


def test_env_step_reward_path_equals_total_reward() -> None:
    from sim_training.env.rewards import RewardWeights, step_reward_terms, total_reward

    rng = np.random.default_rng(0)
    for trial in range(200):
        goal = rng.random(88) < 0.05 * (trial % 3)
        active = rng.random(88) < 0.03
        state = rng.random(88) * (rng.random(88) < 0.5)
        dist = rng.random(int(goal.sum())) * 0.2
        force, vel = rng.normal(size=40), rng.normal(size=40)
        kw = dict(sustain_active=bool(trial % 2), goal_sustain=bool(trial % 5 == 0), forearm_collision=trial % 7 == 0)
        w = RewardWeights(ot_fingering=1.0, key_press=0.7, sustain=1.2, collision=1.0, energy=0.5)
        want = total_reward(distance_m=dist, key_state=state, goal_keys=goal, active=active, actuator_force=force,
                            joint_velocity=vel, weights=w, **kw)
        got = step_reward_terms(dist, state, goal, active, kw["sustain_active"], kw["goal_sustain"],
                                kw["forearm_collision"], force, vel, w)
        for name, value in want.as_dict().items():
            assert getattr(got, name) == pytest.approx(value, rel=1e-12, abs=1e-12), (trial, name)
