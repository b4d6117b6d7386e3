"""Optimal-transport fingering: which fingertip presses which due key, this control step.

RP1M's OT fingering: the cost of giving key ``k`` to fingertip ``f`` is the Euclidean distance (m)
from the fingertip to the key's target point; both hands' fingertips are pooled; every due key gets
exactly one finger and every finger at most one key. With uniform unit marginals on a square
(padded) problem the optimal transport plan is a permutation matrix, so ``ot.emd`` solves the
assignment exactly; ``scipy.optimize.linear_sum_assignment`` (Jonker-Volgenant) is the reference
engine, and both reach the same optimal cost (ties may pick different, equally cheap pairings).

When there are more due keys than usable fingers the solution assigns as many keys as possible
(maximum cardinality) and, among those, minimises the total cost; the keys left over are reported
in :attr:`Assignment.dropped_keys`, never silently truncated.

Pure numpy/scipy/POT; called every control step, so it avoids per-call Python loops.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import numpy as np

# We call POT's C++ solver on numpy arrays only: keep its backend module from importing torch (1 s and
# ~300 MB per process: every planner worker, every ROS node running the prior).
os.environ.setdefault("POT_BACKEND_DISABLE_PYTORCH", "1")
os.environ.setdefault("POT_BACKEND_DISABLE_JAX", "1")
os.environ.setdefault("POT_BACKEND_DISABLE_TENSORFLOW", "1")
import ot  # noqa: E402
from scipy.optimize import linear_sum_assignment

from sim_training.constants import NUM_KEYS

__all__ = ["Assignment", "assign_fingers", "hand_side_mask"]

try:  # POT's C++ network-simplex wrapper (what ot.emd calls after its checks)
    from ot.lp.emd_wrap import emd_c as _emd_c
except ImportError:  # pragma: no cover - depends on the POT release
    _emd_c = None
_EMD_MAX_ITER = 100_000

_EMPTY_INT = np.zeros(0, dtype=np.int64)
_EMPTY_FLOAT = np.zeros(0, dtype=np.float64)


@dataclass(frozen=True)
class Assignment:
    """Result of one fingering assignment; every array is sorted by ``key_idx`` (ascending).

    Attributes:
        finger_idx: ``(A,)`` int64, index into the fingertip array, one per assigned key.
        key_idx: ``(A,)`` int64, key numbers 0..87, same order as ``finger_idx``.
        distance_m: ``(A,)`` float64, Euclidean fingertip → key-target distance in metres
            (without any temporal penalty).
        dropped_keys: ``(D,)`` int64, ascending key numbers that were due but got no finger
            (more keys than fingers, or no allowed finger).
        cost: total cost of the assignment in metres: sum of the cost-matrix entries used,
            i.e. distances plus any switch penalties paid.
    """

    finger_idx: np.ndarray
    key_idx: np.ndarray
    distance_m: np.ndarray
    dropped_keys: np.ndarray
    cost: float

    @property
    def num_assigned(self) -> int:
        """Number of assigned (finger, key) pairs, ``A``."""
        return int(self.key_idx.shape[0])

    def finger_for_key(self, key: int) -> int | None:
        """The finger index assigned to key number ``key``, or ``None`` when it has none."""
        hit = np.flatnonzero(self.key_idx == key)
        return int(self.finger_idx[hit[0]]) if hit.size else None

    @classmethod
    def empty(cls, dropped_keys: np.ndarray | None = None) -> Assignment:
        """An assignment with no pairs; ``dropped_keys`` (sorted here) defaults to none."""
        dropped = (
            _EMPTY_INT.copy()
            if dropped_keys is None
            else np.sort(np.asarray(dropped_keys, dtype=np.int64))
        )
        return cls(_EMPTY_INT.copy(), _EMPTY_INT.copy(), _EMPTY_FLOAT.copy(), dropped, 0.0)


def hand_side_mask(fingertip_hand: np.ndarray, key_ids: np.ndarray, split_key: int) -> np.ndarray:
    """Hand-side constraint for :func:`assign_fingers`'s ``allowed``.

    Args:
        fingertip_hand: ``(F,)`` int, 0 = left hand, 1 = right hand, per fingertip.
        key_ids: ``(K,)`` int key numbers 0..87.
        split_key: keys with number ``< split_key`` go to the left hand only, the others to the
            right hand only.

    Returns:
        ``(F, K)`` bool, ``True`` where fingertip ``f`` may press key ``k``.

    Raises:
        ValueError: ``fingertip_hand`` holds a value other than 0 or 1, or an input is not 1-D.
    """
    hand = np.asarray(fingertip_hand)
    keys = np.asarray(key_ids)
    if hand.ndim != 1 or keys.ndim != 1:
        raise ValueError(
            f"hand_side_mask: fingertip_hand and key_ids must be 1-D, got shapes "
            f"{hand.shape} and {keys.shape}"
        )
    if hand.size and not np.isin(hand, (0, 1)).all():
        raise ValueError(
            f"hand_side_mask: fingertip_hand must be 0 (left) or 1 (right), got {hand}"
        )
    right_key = keys >= split_key
    return (hand[:, None] == 1) == right_key[None, :]


def _validate(
    fingertip_xyz: np.ndarray, key_xyz: np.ndarray, key_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tips = np.asarray(fingertip_xyz, dtype=np.float64)
    targets = np.asarray(key_xyz, dtype=np.float64)
    keys = np.asarray(key_ids)
    if tips.ndim != 2 or tips.shape[1] != 3:
        raise ValueError(f"assign_fingers: fingertip_xyz must be (F, 3), got {tips.shape}")
    if targets.ndim != 2 or targets.shape[1] != 3:
        raise ValueError(f"assign_fingers: key_xyz must be (K, 3), got {targets.shape}")
    if keys.ndim != 1 or keys.shape[0] != targets.shape[0]:
        raise ValueError(
            f"assign_fingers: key_ids must be (K,) = ({targets.shape[0]},), got {keys.shape}"
        )
    if keys.size:
        if not np.issubdtype(keys.dtype, np.integer):
            raise ValueError(f"assign_fingers: key_ids must be integers, got dtype {keys.dtype}")
        if keys.min() < 0 or keys.max() >= NUM_KEYS:
            raise ValueError(f"assign_fingers: key_ids must lie in 0..{NUM_KEYS - 1}, got {keys}")
        if np.unique(keys).size != keys.size:
            raise ValueError(f"assign_fingers: key_ids must be unique, got {keys}")
        if not np.isfinite(targets).all():
            raise ValueError("assign_fingers: key_xyz holds a non-finite value")
    if tips.size and not np.isfinite(tips).all():
        raise ValueError("assign_fingers: fingertip_xyz holds a non-finite value")
    return tips, targets, keys.astype(np.int64, copy=False)


def _emd_plan(ones: np.ndarray, square: np.ndarray) -> np.ndarray:
    """POT's network simplex on a small dense problem.

    ``ot.emd`` spends ~30 us of its ~35 us in backend dispatch and argument checks for a 10 x 10
    problem; the env calls this every control step, so call POT's C++ solver wrapper directly
    (same solver, same result) and fall back to ``ot.emd`` if a POT release moves it.
    """
    if _emd_c is not None:
        plan, _cost, _u, _v, code = _emd_c(ones, ones, square, _EMD_MAX_ITER, 1)
        if code == 1:  # OPTIMAL
            return np.asarray(plan)
    return np.asarray(ot.emd(ones, ones, square, check_marginals=False))


def _enumerate_small(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact minimum-cost assignment of K <= 2 keys to F >= K fingers (ties: lowest finger index)."""
    if cost.shape[1] == 1:
        return np.array([int(np.argmin(cost[:, 0]))]), np.array([0])
    pair = cost[:, 0][:, None] + cost[:, 1][None, :]
    np.fill_diagonal(pair, np.inf)
    i, j = np.unravel_index(int(np.argmin(pair)), pair.shape)
    return np.array([i, j]), np.array([0, 1])


def _solve_pot(masked_cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Optimal permutation of the square zero-padded problem via ``ot.emd``; real pairs only."""
    n_f, n_k = masked_cost.shape
    n = max(n_f, n_k)
    square = np.zeros((n, n), dtype=np.float64)
    square[:n_f, :n_k] = masked_cost
    ones = np.ones(n, dtype=np.float64)
    plan = _emd_plan(ones, square)
    cols = plan.argmax(axis=1)
    rows = np.arange(n)
    if not (plan[rows, cols] > 0.5).all():  # pragma: no cover - vertices of the Birkhoff polytope
        # The network simplex returns a vertex, i.e. a permutation; never seen otherwise. Keep the
        # control loop alive with the reference engine rather than returning a fractional plan.
        return linear_sum_assignment(masked_cost)
    real = (rows < n_f) & (cols < n_k)
    return rows[real], cols[real]


def assign_fingers(
    fingertip_xyz: np.ndarray,
    key_xyz: np.ndarray,
    key_ids: np.ndarray,
    *,
    solver: Literal["pot", "scipy"] = "pot",
    allowed: np.ndarray | None = None,
    previous: Assignment | None = None,
    switch_penalty_m: float = 0.0,
    check: bool = True,
    exponent: float = 1.0,
    finger_penalty: np.ndarray | None = None,
) -> Assignment:
    """Assign fingertips to the keys due now by minimum-cost bipartite matching (OT).

    Args:
        fingertip_xyz: ``(F, 3)`` fingertip positions, metres (F = 10 Shadow, 8 LEAP; both hands).
        key_xyz: ``(K, 3)`` target point of each due key, metres (same frame).
        key_ids: ``(K,)`` unique int key numbers 0..87, row order of ``key_xyz``.
        solver: ``"pot"`` (``ot.emd`` on the square padded problem) or ``"scipy"``
            (``linear_sum_assignment``); both reach the same optimal cost.
        allowed: optional ``(F, K)`` bool; pairs marked ``False`` are never used (e.g. the
            hand-side constraint of :func:`hand_side_mask`).
        previous: the previous step's assignment; with ``switch_penalty_m > 0``, a due key that
            finger ``j`` held in ``previous`` costs ``switch_penalty_m`` extra for every finger
            ``i != j``.
        switch_penalty_m: temporal switch penalty in metres (>= 0).
        exponent: the cost is ``distance ** exponent`` (1: the OT reward's cost; 2 on a line
            gives non-crossing assignments, used by the prior's planner).
        finger_penalty: optional ``(F,)`` cost added to every key a finger takes (in cost units),
            e.g. to use a weak finger only when no other can take the key.
        check: validate the inputs (default). Callers that build the arrays themselves every
            control step (the env) pass ``False`` to skip ~15 us of checks.

    Returns:
        An :class:`Assignment` sorted by key number. It assigns as many keys as the fingers and
        ``allowed`` permit and, among such assignments, has minimum total cost; the remaining
        keys are in ``dropped_keys``. ``K = 0`` gives an empty assignment with cost 0.

    Raises:
        ValueError: wrong shapes, non-finite positions, key numbers outside 0..87 or repeated,
            an unknown ``solver``, or a negative/non-finite ``switch_penalty_m``.
    """
    if solver not in ("pot", "scipy"):
        raise ValueError(f"assign_fingers: solver must be 'pot' or 'scipy', got {solver!r}")
    if check:
        if not (np.isfinite(switch_penalty_m) and switch_penalty_m >= 0.0):
            raise ValueError(
                f"assign_fingers: switch_penalty_m must be finite and >= 0, got {switch_penalty_m}"
            )
        tips, targets, keys = _validate(fingertip_xyz, key_xyz, key_ids)
    else:
        tips, targets, keys = fingertip_xyz, key_xyz, key_ids
    n_f, n_k = tips.shape[0], keys.shape[0]

    ok: np.ndarray | None = None
    if allowed is not None:
        ok = np.asarray(allowed, dtype=bool)
        if ok.shape != (n_f, n_k):
            raise ValueError(
                f"assign_fingers: allowed must be (F, K) = ({n_f}, {n_k}), got {ok.shape}"
            )
    if n_k == 0:
        return Assignment.empty()
    if n_f == 0 or (ok is not None and not ok.any()):
        return Assignment.empty(keys)

    diff = tips[:, None, :] - targets[None, :, :]
    dist = np.sqrt((diff * diff).sum(axis=2))  # (F, K) metres

    cost = dist if exponent == 1.0 else dist**exponent
    if finger_penalty is not None:
        cost = cost + np.asarray(finger_penalty, dtype=np.float64)[:, None]
    if previous is not None and switch_penalty_m > 0.0 and previous.key_idx.size:
        match = previous.key_idx[None, :] == keys[:, None]  # (K, A_prev)
        held = match.any(axis=1)
        if held.any():
            holder = previous.finger_idx[match.argmax(axis=1)]  # (K,), valid where held
            pays = (np.arange(n_f)[:, None] != holder[None, :]) & held[None, :]
            cost = cost + switch_penalty_m * pays

    if ok is None:
        masked = cost
    else:
        # Any pair that is not allowed costs more than every allowed assignment together, so the
        # optimum first minimises the number of forbidden pairs used (i.e. maximises the number of
        # allowed keys assigned) and then the allowed cost. Forbidden pairs are removed afterwards.
        big = float(cost[ok].max()) * min(n_f, n_k) + 1.0
        masked = np.where(ok, cost, big)

    if n_k <= 2 and n_f >= n_k:
        # One or two keys (most control steps of most pieces): the optimum by enumeration is exact
        # and ~10x cheaper than a solver call; both engines give this same optimum.
        rows, cols = _enumerate_small(masked)
    elif solver == "pot":
        rows, cols = _solve_pot(masked)
    else:
        rows, cols = linear_sum_assignment(masked)

    if ok is not None:
        keep = ok[rows, cols]
        rows, cols = rows[keep], cols[keep]

    assigned_keys = keys[cols]
    order = np.argsort(assigned_keys, kind="stable")
    rows, cols = rows[order], cols[order]

    if cols.size == n_k:
        dropped = _EMPTY_INT.copy()
    else:
        used = np.zeros(n_k, dtype=bool)
        used[cols] = True
        dropped = np.sort(keys[~used])

    return Assignment(
        finger_idx=rows.astype(np.int64, copy=False),
        key_idx=assigned_keys[order],
        distance_m=dist[rows, cols],
        dropped_keys=dropped,
        cost=float(cost[rows, cols].sum()),
    )
