"""Unit tests of the OT fingering assignment (sim_training.fingering.assignment)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim_training.fingering.assignment import Assignment, assign_fingers, hand_side_mask

SOLVERS = ("pot", "scipy")


def _brute_force(dist: np.ndarray, allowed: np.ndarray | None = None) -> tuple[int, float]:
    """(max number of assigned keys, min cost among those) by enumerating every injection."""
    n_f, n_k = dist.shape
    ok = np.ones_like(dist, dtype=bool) if allowed is None else allowed
    best = (0, 0.0)
    # Every key gets a finger or None (-1); fingers used at most once.
    for choice in itertools.product(range(-1, n_f), repeat=n_k):
        used = [f for f in choice if f >= 0]
        if len(used) != len(set(used)):
            continue
        if any(f >= 0 and not ok[f, k] for k, f in enumerate(choice)):
            continue
        cost = sum(dist[f, k] for k, f in enumerate(choice) if f >= 0)
        cand = (len(used), cost)
        if cand[0] > best[0] or (cand[0] == best[0] and cand[1] < best[1]):
            best = cand
    return best


def _line(xs: list[float]) -> np.ndarray:
    return np.array([[x, 0.0, 0.0] for x in xs], dtype=np.float64)


def _check_valid(a: Assignment, key_ids: np.ndarray, n_f: int) -> None:
    assert a.finger_idx.shape == a.key_idx.shape == a.distance_m.shape
    assert np.all(np.diff(a.key_idx) > 0)  # sorted, unique
    assert np.unique(a.finger_idx).size == a.finger_idx.size  # each finger at most once
    assert np.all((a.finger_idx >= 0) & (a.finger_idx < n_f))
    assert np.all(np.diff(a.dropped_keys) > 0)
    both = np.sort(np.concatenate([a.key_idx, a.dropped_keys]))
    np.testing.assert_array_equal(both, np.sort(key_ids))  # every due key accounted for once


@pytest.mark.parametrize("solver", SOLVERS)
def test_single_key_goes_to_nearest_finger(solver: str) -> None:
    tips = _line([0.0, 0.1, 0.2, 0.3, 0.4])
    a = assign_fingers(tips, _line([0.21]), np.array([40]), solver=solver)
    assert a.finger_idx.tolist() == [2]
    assert a.key_idx.tolist() == [40]
    assert a.distance_m[0] == pytest.approx(0.01)
    assert a.cost == pytest.approx(0.01)
    assert a.dropped_keys.size == 0
    assert a.finger_for_key(40) == 2
    assert a.finger_for_key(41) is None


@pytest.mark.parametrize("solver", SOLVERS)
def test_two_keys_non_crossing_pairing(solver: str) -> None:
    # Greedy on key 10 would take finger 1 (0.09 away) and leave key 11 to finger 0 (0.2):
    # total 0.29. The optimal, non-crossing pairing is 0->10, 1->11: 0.01 + 0.1 = 0.11.
    tips = _line([0.0, 0.1])
    keys = _line([0.01, 0.2])
    a = assign_fingers(tips, keys, np.array([10, 11]), solver=solver)
    assert a.finger_idx.tolist() == [0, 1]
    assert a.key_idx.tolist() == [10, 11]
    assert a.cost == pytest.approx(0.11)
    np.testing.assert_allclose(a.distance_m, [0.01, 0.1])


@pytest.mark.parametrize("solver", SOLVERS)
def test_output_sorted_by_key_number_not_input_order(solver: str) -> None:
    tips = _line([0.0, 0.1, 0.2])
    a = assign_fingers(tips, _line([0.2, 0.0, 0.1]), np.array([60, 20, 40]), solver=solver)
    assert a.key_idx.tolist() == [20, 40, 60]
    assert a.finger_idx.tolist() == [0, 1, 2]


@pytest.mark.parametrize("solver", SOLVERS)
def test_ties_are_deterministic(solver: str) -> None:
    # Key midway between two fingers, and a second symmetric pair: four equally cheap optima.
    tips = _line([0.0, 0.2, 1.0, 1.2])
    keys = _line([0.1, 1.1])
    ids = np.array([5, 50])
    first = assign_fingers(tips, keys, ids, solver=solver)
    assert first.cost == pytest.approx(0.2)
    for _ in range(5):
        again = assign_fingers(tips.copy(), keys.copy(), ids.copy(), solver=solver)
        np.testing.assert_array_equal(again.finger_idx, first.finger_idx)
        np.testing.assert_array_equal(again.key_idx, first.key_idx)
        assert again.cost == first.cost


@pytest.mark.parametrize("solver", SOLVERS)
def test_no_keys_is_empty(solver: str) -> None:
    a = assign_fingers(_line([0.0, 0.1]), np.zeros((0, 3)), np.zeros(0, dtype=int), solver=solver)
    assert a.num_assigned == 0
    assert a.dropped_keys.size == 0
    assert a.cost == 0.0
    assert a.distance_m.shape == (0,)


@pytest.mark.parametrize("solver", SOLVERS)
def test_no_fingers_drops_every_key(solver: str) -> None:
    a = assign_fingers(np.zeros((0, 3)), _line([0.1, 0.0]), np.array([7, 3]), solver=solver)
    assert a.num_assigned == 0
    assert a.dropped_keys.tolist() == [3, 7]


@pytest.mark.parametrize("solver", SOLVERS)
def test_more_keys_than_fingers_reports_dropped(solver: str) -> None:
    rng = np.random.default_rng(3)
    tips = rng.uniform(-0.5, 0.5, (10, 3))
    ids = np.sort(rng.choice(88, 12, replace=False))
    keys = rng.uniform(-0.5, 0.5, (12, 3))
    a = assign_fingers(tips, keys, ids, solver=solver)
    assert a.num_assigned == 10
    assert a.dropped_keys.size == 2
    _check_valid(a, ids, 10)


@pytest.mark.parametrize("solver", SOLVERS)
def test_more_keys_than_fingers_optimal_vs_brute_force(solver: str) -> None:
    rng = np.random.default_rng(11)
    for _ in range(10):
        tips = rng.uniform(-0.3, 0.3, (3, 3))
        keys = rng.uniform(-0.3, 0.3, (5, 3))
        ids = np.arange(30, 35)
        a = assign_fingers(tips, keys, ids, solver=solver)
        dist = np.linalg.norm(tips[:, None] - keys[None], axis=2)
        n_best, cost_best = _brute_force(dist)
        assert a.num_assigned == n_best == 3
        assert a.dropped_keys.size == 2
        assert a.cost == pytest.approx(cost_best, rel=1e-12)
        _check_valid(a, ids, 3)


@pytest.mark.parametrize("solver", SOLVERS)
def test_allowed_mask_respected_and_unreachable_keys_dropped(solver: str) -> None:
    tips = _line([0.0, 0.1, 0.2, 0.3])
    keys = _line([0.0, 0.1, 0.3])
    ids = np.array([10, 20, 30])
    allowed = np.ones((4, 3), dtype=bool)
    allowed[:, 2] = False  # key 30: no finger may press it
    allowed[0, 0] = False  # key 10: not its nearest finger
    a = assign_fingers(tips, keys, ids, solver=solver, allowed=allowed)
    assert a.dropped_keys.tolist() == [30]
    assert all(allowed[f, list(ids).index(k)] for f, k in zip(a.finger_idx, a.key_idx, strict=True))
    dist = np.abs(tips[:, 0][:, None] - keys[:, 0][None, :])
    assert a.cost == pytest.approx(_brute_force(dist, allowed)[1])
    _check_valid(a, ids, 4)


@pytest.mark.parametrize("solver", SOLVERS)
def test_all_disallowed_drops_everything(solver: str) -> None:
    a = assign_fingers(
        _line([0.0, 0.1]),
        _line([0.0]),
        np.array([44]),
        solver=solver,
        allowed=np.zeros((2, 1), dtype=bool),
    )
    assert a.num_assigned == 0
    assert a.dropped_keys.tolist() == [44]
    assert a.cost == 0.0


@pytest.mark.parametrize("solver", SOLVERS)
def test_hand_side_mask(solver: str) -> None:
    hand = np.array([0, 0, 1, 1])
    ids = np.array([30, 60])
    mask = hand_side_mask(hand, ids, split_key=44)
    np.testing.assert_array_equal(
        mask, [[True, False], [True, False], [False, True], [False, True]]
    )
    # Key 30 sits right under a right-hand finger, but only the left hand may press it.
    tips = _line([0.0, 0.05, 0.5, 0.6])
    keys = _line([0.5, 0.6])
    a = assign_fingers(tips, keys, ids, solver=solver, allowed=mask)
    assert a.finger_for_key(30) in (0, 1)
    assert a.finger_for_key(60) in (2, 3)
    with pytest.raises(ValueError, match="fingertip_hand"):
        hand_side_mask(np.array([0, 2]), ids, 44)


@pytest.mark.parametrize("solver", SOLVERS)
def test_switch_penalty_keeps_previous_finger_when_nearly_equal(solver: str) -> None:
    tips = _line([0.0, 0.2])
    ids = np.array([40])
    prev = assign_fingers(tips, _line([0.2]), ids, solver=solver)
    assert prev.finger_for_key(40) == 1
    # Now finger 0 is 1 mm closer: without the penalty it switches, with 5 mm it stays.
    keys = _line([0.0995])
    free = assign_fingers(tips, keys, ids, solver=solver)
    assert free.finger_for_key(40) == 0
    kept = assign_fingers(tips, keys, ids, solver=solver, previous=prev, switch_penalty_m=0.005)
    assert kept.finger_for_key(40) == 1
    assert kept.cost == pytest.approx(0.1005)  # the held finger pays no penalty
    # Much closer to finger 0: switches and pays the penalty.
    moved = assign_fingers(
        tips, _line([0.01]), ids, solver=solver, previous=prev, switch_penalty_m=0.005
    )
    assert moved.finger_for_key(40) == 0
    assert moved.cost == pytest.approx(0.015)
    np.testing.assert_allclose(moved.distance_m, [0.01])  # distances exclude the penalty


@pytest.mark.parametrize("solver", SOLVERS)
def test_switch_penalty_ignores_keys_not_held_before(solver: str) -> None:
    tips = _line([0.0, 0.2])
    prev = assign_fingers(tips, _line([0.2]), np.array([40]), solver=solver)
    a = assign_fingers(
        tips, _line([0.01]), np.array([41]), solver=solver, previous=prev, switch_penalty_m=1.0
    )
    assert a.finger_for_key(41) == 0
    assert a.cost == pytest.approx(0.01)


def test_invalid_inputs_raise() -> None:
    tips = _line([0.0, 0.1])
    with pytest.raises(ValueError, match="fingertip_xyz"):
        assign_fingers(np.zeros((2, 2)), _line([0.0]), np.array([1]))
    with pytest.raises(ValueError, match="key_ids"):
        assign_fingers(tips, _line([0.0]), np.array([1, 2]))
    with pytest.raises(ValueError, match=r"0\.\.87"):
        assign_fingers(tips, _line([0.0]), np.array([88]))
    with pytest.raises(ValueError, match="unique"):
        assign_fingers(tips, _line([0.0, 0.1]), np.array([3, 3]))
    with pytest.raises(ValueError, match="allowed"):
        assign_fingers(tips, _line([0.0]), np.array([1]), allowed=np.ones((1, 1), dtype=bool))
    with pytest.raises(ValueError, match="solver"):
        assign_fingers(tips, _line([0.0]), np.array([1]), solver="hungarian")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="switch_penalty_m"):
        assign_fingers(tips, _line([0.0]), np.array([1]), switch_penalty_m=-1.0)
    with pytest.raises(ValueError, match="non-finite"):
        assign_fingers(np.full((2, 3), np.nan), _line([0.0]), np.array([1]))


@st.composite
def _problems(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    n_f = draw(st.integers(1, 10))
    n_k = draw(st.integers(0, 14))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # Coarse grid positions make exact ties common, which is where engines may differ.
    tips = rng.integers(-5, 6, (n_f, 3)) * 0.02
    keys = rng.integers(-5, 6, (n_k, 3)) * 0.02
    ids = np.sort(rng.choice(88, n_k, replace=False))
    mask_kind = draw(st.sampled_from(["none", "random", "sparse"]))
    allowed = None
    if mask_kind == "random":
        allowed = rng.random((n_f, n_k)) < 0.7
    elif mask_kind == "sparse":
        allowed = rng.random((n_f, n_k)) < 0.2
    return tips, keys, ids, allowed


@settings(max_examples=300, deadline=None)
@given(_problems(), st.sampled_from([0.0, 0.003, 0.05]))
def test_pot_and_scipy_reach_the_same_optimal_cost(
    problem: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None], penalty: float
) -> None:
    tips, keys, ids, allowed = problem
    n_f = tips.shape[0]
    previous = None
    if penalty and ids.size:
        # Previous step: a few of today's keys held by arbitrary distinct fingers.
        held = ids[: min(n_f, ids.size, 3)]
        previous = Assignment(
            finger_idx=np.arange(held.size)[::-1].copy(),
            key_idx=held,
            distance_m=np.zeros(held.size),
            dropped_keys=np.zeros(0, dtype=np.int64),
            cost=0.0,
        )
    kw = {"allowed": allowed, "previous": previous, "switch_penalty_m": penalty}
    a_pot = assign_fingers(tips, keys, ids, solver="pot", **kw)
    a_sp = assign_fingers(tips, keys, ids, solver="scipy", **kw)
    assert a_pot.num_assigned == a_sp.num_assigned
    np.testing.assert_allclose(a_pot.cost, a_sp.cost, rtol=1e-9, atol=1e-12)
    for a in (a_pot, a_sp):
        _check_valid(a, ids, n_f)
        if allowed is not None:
            col = np.searchsorted(ids, a.key_idx)
            assert allowed[a.finger_idx, col].all()
        expected = np.linalg.norm(
            tips[a.finger_idx] - keys[np.searchsorted(ids, a.key_idx)], axis=1
        )
        np.testing.assert_allclose(a.distance_m, expected)


@settings(max_examples=150, deadline=None)
@given(_problems())
def test_small_problems_match_brute_force(
    problem: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None],
) -> None:
    tips, keys, ids, allowed = problem
    tips, keys, ids = tips[:4], keys[:5], ids[:5]
    if allowed is not None:
        allowed = allowed[:4, :5]
    dist = np.linalg.norm(tips[:, None] - keys[None], axis=2).reshape(tips.shape[0], keys.shape[0])
    n_best, cost_best = _brute_force(dist, allowed)
    for solver in SOLVERS:
        a = assign_fingers(tips, keys, ids, solver=solver, allowed=allowed)  # type: ignore[arg-type]
        assert a.num_assigned == n_best
        assert a.cost == pytest.approx(cost_best, rel=1e-9, abs=1e-12)
