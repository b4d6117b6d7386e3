"""Reward terms of the piano task as pure numpy functions (RoboPianist / RP1M semantics).

Reward per control step = OT fingering + key press + sustain + forearm collision + energy, each
term scaled by :class:`RewardWeights` (all 1 by default, which is the papers' sum):

- OT fingering: mean over assigned keys of ``tolerance(d, bounds=(0, 0.01 m), margin=0.1 m)``,
  1.0 when no key is due (:func:`ot_fingering_reward`);
- key press: ``0.5 * mean tolerance(goal - key state, bounds=(0, 0.05), margin=0.5)`` over the goal
  keys ``+ 0.5 * [no active key outside the goal]`` (:func:`key_press_reward`);
- sustain: ``tolerance(goal - state, bounds=(0, 0.05), margin=0.5)`` (:func:`sustain_reward`);
- forearm collision: ``0.5 * [no collision]`` (:func:`collision_reward`);
- energy: ``-0.005 * sum |force| * |velocity|`` (:func:`energy_penalty`).

``tolerance`` follows dm_control's ``rewards.tolerance`` semantics (written here from its
definition, not copied).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from sim_training.constants import NUM_KEYS

__all__ = [
    "ENERGY_PENALTY_COEF",
    "FINGER_CLOSE_ENOUGH_TO_KEY_M",
    "KEY_CLOSE_ENOUGH_TO_PRESSED",
    "RewardTerms",
    "RewardWeights",
    "Sigmoid",
    "collision_reward",
    "energy_penalty",
    "key_press_reward",
    "ot_fingering_reward",
    "sustain_reward",
    "tolerance",
    "total_reward",
]

FINGER_CLOSE_ENOUGH_TO_KEY_M: float = 0.01
"""Fingertip within this distance (m) of its key target earns the full OT fingering reward."""

KEY_CLOSE_ENOUGH_TO_PRESSED: float = 0.05
"""Normalised key/sustain depression error that still earns the full press reward."""

ENERGY_PENALTY_COEF: float = 0.005
"""Coefficient of the energy penalty, per (N or N·m) x (m/s or rad/s)."""

Sigmoid = Literal[
    "gaussian",
    "linear",
    "quadratic",
    "hyperbolic",
    "long_tail",
    "reciprocal",
    "cosine",
    "tanh_squared",
]

_BOUNDED_SIGMOIDS = ("linear", "quadratic", "cosine")
_ALL_SIGMOIDS = (
    *_BOUNDED_SIGMOIDS,
    "gaussian",
    "hyperbolic",
    "long_tail",
    "reciprocal",
    "tanh_squared",
)


def _sigmoid(x: np.ndarray, value_at_1: float, kind: str) -> np.ndarray:
    """Falloff ``s(x)`` with ``s(0) = 1`` and ``s(±1) = value_at_1``; ``x`` is distance / margin."""
    if kind == "gaussian":
        return np.exp(math.log(value_at_1) * x * x)
    if kind == "linear":
        scaled = np.abs(x) * (1.0 - value_at_1)
        return np.where(scaled < 1.0, 1.0 - scaled, 0.0)
    if kind == "quadratic":
        scaled = np.abs(x) * math.sqrt(1.0 - value_at_1)
        return np.where(scaled < 1.0, 1.0 - scaled * scaled, 0.0)
    if kind == "cosine":
        scaled = np.abs(x) * (math.acos(2.0 * value_at_1 - 1.0) / math.pi)
        return np.where(scaled < 1.0, 0.5 * (1.0 + np.cos(math.pi * scaled)), 0.0)
    if kind == "hyperbolic":
        return 1.0 / np.cosh(x * math.acosh(1.0 / value_at_1))
    if kind == "long_tail":
        scaled = x * math.sqrt(1.0 / value_at_1 - 1.0)
        return 1.0 / (scaled * scaled + 1.0)
    if kind == "reciprocal":
        return 1.0 / (np.abs(x) * (1.0 / value_at_1 - 1.0) + 1.0)
    if kind == "tanh_squared":
        t = np.tanh(x * math.atanh(math.sqrt(1.0 - value_at_1)))
        return 1.0 - t * t
    raise ValueError(f"tolerance: unknown sigmoid {kind!r}")


def tolerance(
    x: float | np.ndarray,
    bounds: tuple[float, float] = (0.0, 0.0),
    margin: float = 0.0,
    sigmoid: Sigmoid = "gaussian",
    value_at_margin: float = 0.1,
) -> float | np.ndarray:
    """1 inside ``bounds``, falling off outside them (dm_control ``rewards.tolerance`` semantics).

    With ``d`` the distance from ``x`` to the nearest bound, the value outside the bounds is
    ``sigmoid(d / margin)``, scaled so that it equals ``value_at_margin`` at ``d = margin``;
    for ``"gaussian"`` that is ``exp(ln(value_at_margin) * (d / margin)**2)``. ``margin = 0``
    gives a step function (1 inside, 0 outside).

    Args:
        x: scalar or array, any shape (vectorised elementwise).
        bounds: ``(lower, upper)`` with ``lower <= upper``; may be infinite.
        margin: falloff length (same units as ``x``), ``>= 0``.
        sigmoid: ``"gaussian"``, ``"linear"``, ``"quadratic"``, ``"cosine"``, ``"hyperbolic"``,
            ``"long_tail"``, ``"reciprocal"`` or ``"tanh_squared"``.
        value_at_margin: value at distance ``margin`` from the bounds; in ``(0, 1)``, or
            ``[0, 1)`` for ``"linear"``, ``"quadratic"`` and ``"cosine"``.

    Returns:
        A float in ``[0, 1]`` for scalar ``x``, else a float64 array of ``x``'s shape.

    Raises:
        ValueError: ``lower > upper``, ``margin < 0``, ``value_at_margin`` out of range, or an
            unknown ``sigmoid``.
    """
    if sigmoid not in _ALL_SIGMOIDS:
        raise ValueError(f"tolerance: unknown sigmoid {sigmoid!r}; expected one of {_ALL_SIGMOIDS}")
    lower, upper = bounds
    if lower > upper:
        raise ValueError(f"tolerance: lower bound {lower} > upper bound {upper}")
    if not margin >= 0.0:
        raise ValueError(f"tolerance: margin must be >= 0, got {margin}")
    if sigmoid in _BOUNDED_SIGMOIDS:
        if not 0.0 <= value_at_margin < 1.0:
            raise ValueError(
                f"tolerance: value_at_margin must be in [0, 1) for {sigmoid!r}, "
                f"got {value_at_margin}"
            )
    elif not 0.0 < value_at_margin < 1.0:
        raise ValueError(
            f"tolerance: value_at_margin must be in (0, 1) for {sigmoid!r}, got {value_at_margin}"
        )

    arr = np.asarray(x, dtype=np.float64)
    in_bounds = (lower <= arr) & (arr <= upper)
    if margin == 0.0:
        value = np.where(in_bounds, 1.0, 0.0)
    else:
        dist = np.where(arr < lower, lower - arr, arr - upper) / margin
        value = np.where(in_bounds, 1.0, _sigmoid(dist, value_at_margin, sigmoid))
    return float(value) if value.ndim == 0 else value


_LN_VALUE_AT_MARGIN = math.log(0.1)


def _gaussian_tolerance(x: np.ndarray, lower: float, upper: float, margin: float) -> np.ndarray:
    """``tolerance(x, (lower, upper), margin, "gaussian", 0.1)`` without argument checks.

    The env calls the reward terms every control step with constant, valid parameters; this is
    the same formula with the validation hoisted out (equality with :func:`tolerance` is tested).
    """
    d = np.maximum(lower - x, 0.0) + np.maximum(x - upper, 0.0)
    return np.exp(_LN_VALUE_AT_MARGIN * (d / margin) ** 2)


def ot_fingering_reward(distance_m: np.ndarray, *, empty_value: float = 1.0) -> float:
    """OT fingering reward: mean of ``tolerance(d, (0, 0.01), margin=0.1, "gaussian")``.

    Args:
        distance_m: ``(A,)`` fingertip → key-target distances (m) of the assigned keys, e.g.
            :attr:`sim_training.fingering.assignment.Assignment.distance_m`.
        empty_value: reward when no key is assigned (1.0: nothing to press is no failure).

    Returns:
        A float in ``[0, 1]``.
    """
    d = np.asarray(distance_m, dtype=np.float64).reshape(-1)
    if d.size == 0:
        return float(empty_value)
    values = _gaussian_tolerance(d, 0.0, FINGER_CLOSE_ENOUGH_TO_KEY_M, 10.0 * FINGER_CLOSE_ENOUGH_TO_KEY_M)
    return float(values.mean())


def _key_vector(name: str, value: np.ndarray, dtype: type) -> np.ndarray:
    arr: np.ndarray = np.asarray(value, dtype=dtype)
    if arr.shape != (NUM_KEYS,):
        raise ValueError(f"key_press_reward: {name} must have shape ({NUM_KEYS},), got {arr.shape}")
    return arr


def key_press_reward(
    key_state: np.ndarray,
    goal_keys: np.ndarray,
    active: np.ndarray,
    *,
    empty_goal_press_score: float = 1.0,
) -> float:
    """Key-press reward: ``0.5 * press + 0.5 * [no false positive]``.

    ``press`` is the mean over goal keys of ``tolerance(1 - key_state, (0, 0.05), margin=0.5,
    "gaussian")``. The second half is lost when any active key is outside the goal.

    Args:
        key_state: ``(88,)`` normalised key depression, 0 = up, 1 = fully down.
        goal_keys: ``(88,)`` bool (or 0/1), the keys that should be pressed now.
        active: ``(88,)`` bool, keys currently active (sounding).
        empty_goal_press_score: the ``press`` value when no key is in the goal. 1.0 (default)
            gives the full 0.5 for "nothing to press"; RoboPianist's code adds 0 there (pass 0.0
            to reproduce it).

    Returns:
        A float in ``[0, 1]``.

    Raises:
        ValueError: an input does not have shape ``(88,)``.
    """
    state = _key_vector("key_state", key_state, np.float64)
    goal = _key_vector("goal_keys", goal_keys, bool)
    act = _key_vector("active", active, bool)
    on = np.flatnonzero(goal)
    if on.size:
        press = float(
            _gaussian_tolerance(
                1.0 - state[on], 0.0, KEY_CLOSE_ENOUGH_TO_PRESSED, 10.0 * KEY_CLOSE_ENOUGH_TO_PRESSED
            ).mean()
        )
    else:
        press = float(empty_goal_press_score)
    no_false_positive = not bool((act & ~goal).any())
    return 0.5 * press + 0.5 * float(no_false_positive)


def sustain_reward(sustain_active: bool | float, goal_sustain: bool | float) -> float:
    """Sustain reward: ``tolerance(goal - state, (0, 0.05), margin=0.5, "gaussian")``.

    Args:
        sustain_active: pedal state (bool, or a normalised 0..1 value).
        goal_sustain: whether the pedal should be down (bool or 0/1).

    Returns:
        1.0 when the state matches the goal, ≈2.4e-4 when the pedal should be down but is up,
        1e-4 when it is down but should be up.
    """
    err = float(goal_sustain) - float(sustain_active)
    d = max(0.0 - err, 0.0) + max(err - KEY_CLOSE_ENOUGH_TO_PRESSED, 0.0)
    return math.exp(_LN_VALUE_AT_MARGIN * (d / (10.0 * KEY_CLOSE_ENOUGH_TO_PRESSED)) ** 2)


def energy_penalty(
    actuator_force: np.ndarray, joint_velocity: np.ndarray, coef: float = ENERGY_PENALTY_COEF
) -> float:
    """Energy penalty ``-coef * sum(|force| * |velocity|)`` (always <= 0 for ``coef >= 0``).

    Args:
        actuator_force: ``(n,)`` actuator forces/torques (N or N·m).
        joint_velocity: ``(n,)`` velocities of the actuated joints (m/s or rad/s), same order.
        coef: penalty coefficient.

    Raises:
        ValueError: the two arrays have different shapes.
    """
    force = np.asarray(actuator_force, dtype=np.float64)
    vel = np.asarray(joint_velocity, dtype=np.float64)
    if force.shape != vel.shape:
        raise ValueError(
            f"energy_penalty: actuator_force {force.shape} and joint_velocity {vel.shape} differ"
        )
    return -coef * float(np.abs(force).ravel() @ np.abs(vel).ravel())


def collision_reward(forearm_collision: bool) -> float:
    """``0.5`` when the forearms do not collide, else ``0.0``."""
    return 0.0 if forearm_collision else 0.5


@dataclass(frozen=True)
class RewardWeights:
    """Per-term weights of the total reward; the defaults (all 1) give the papers' sum.

    The term scales (0.5 inside key press and collision, 0.005 inside energy) live in the term
    functions, not here.
    """

    ot_fingering: float = 1.0
    key_press: float = 1.0
    sustain: float = 1.0
    collision: float = 1.0
    energy: float = 1.0


@dataclass(frozen=True)
class RewardTerms:
    """Unweighted reward terms of one step plus their weighted sum ``total``."""

    ot_fingering: float
    key_press: float
    sustain: float
    collision: float
    energy: float
    total: float

    def as_dict(self) -> dict[str, float]:
        """The terms and total as a plain dict, for logging."""
        return asdict(self)


def total_reward(
    *,
    distance_m: np.ndarray,
    key_state: np.ndarray,
    goal_keys: np.ndarray,
    active: np.ndarray,
    sustain_active: bool | float,
    goal_sustain: bool | float,
    forearm_collision: bool,
    actuator_force: np.ndarray,
    joint_velocity: np.ndarray,
    weights: RewardWeights | None = None,
    energy_coef: float = ENERGY_PENALTY_COEF,
) -> RewardTerms:
    """Compute every reward term and their weighted sum.

    Args: as the term functions (:func:`ot_fingering_reward`, :func:`key_press_reward`,
    :func:`sustain_reward`, :func:`collision_reward`, :func:`energy_penalty`); ``weights``
    defaults to :class:`RewardWeights` ().

    Returns:
        :class:`RewardTerms` with the unweighted terms and ``total = sum(weight * term)``.

    Raises:
        ValueError: as the term functions.
    """
    w = RewardWeights() if weights is None else weights
    ot_term = ot_fingering_reward(distance_m)
    press = key_press_reward(key_state, goal_keys, active)
    sus = sustain_reward(sustain_active, goal_sustain)
    coll = collision_reward(forearm_collision)
    energy = energy_penalty(actuator_force, joint_velocity, coef=energy_coef)
    total = (
        w.ot_fingering * ot_term
        + w.key_press * press
        + w.sustain * sus
        + w.collision * coll
        + w.energy * energy
    )
    return RewardTerms(
        ot_fingering=ot_term,
        key_press=press,
        sustain=sus,
        collision=coll,
        energy=energy,
        total=float(total),
    )


def step_reward_terms(
    distance_m: np.ndarray,
    key_state: np.ndarray,
    goal_keys: np.ndarray,
    active: np.ndarray,
    sustain_active: bool,
    goal_sustain: bool,
    forearm_collision: bool,
    actuator_force: np.ndarray,
    joint_velocity: np.ndarray,
    weights: RewardWeights,
) -> RewardTerms:
    """:func:`total_reward` for the env's per-step call: same terms, no argument checks.

    Inputs are trusted (the env builds them: ``goal_keys``/``active`` bool (88,), ``key_state``
    float (88,)); equality with :func:`total_reward` is tested. Fewer temporaries matter here:
    this runs after every physics step, when MuJoCo's working set is what the cache holds.
    """
    margin_ot = 10.0 * FINGER_CLOSE_ENOUGH_TO_KEY_M
    if distance_m.size:
        d = np.maximum(distance_m - FINGER_CLOSE_ENOUGH_TO_KEY_M, 0.0)
        ot_term = float(np.exp(_LN_VALUE_AT_MARGIN * (d / margin_ot) ** 2).mean())
    else:
        ot_term = 1.0
    on = np.flatnonzero(goal_keys)
    if on.size:
        gap = np.maximum(1.0 - key_state[on] - KEY_CLOSE_ENOUGH_TO_PRESSED, 0.0)  # 1 - state >= 0 always
        press = float(np.exp(_LN_VALUE_AT_MARGIN * (gap / (10.0 * KEY_CLOSE_ENOUGH_TO_PRESSED)) ** 2).mean())
    else:
        press = 1.0
    false_positive = bool(np.any(active > goal_keys))
    key_term = 0.5 * press + (0.0 if false_positive else 0.5)
    sus = sustain_reward(sustain_active, goal_sustain)
    coll = 0.0 if forearm_collision else 0.5
    energy = -ENERGY_PENALTY_COEF * float(np.abs(actuator_force) @ np.abs(joint_velocity))
    w = weights
    total = (w.ot_fingering * ot_term + w.key_press * key_term + w.sustain * sus + w.collision * coll
             + w.energy * energy)
    return RewardTerms(ot_fingering=ot_term, key_press=key_term, sustain=sus, collision=coll, energy=energy,
                       total=total)
