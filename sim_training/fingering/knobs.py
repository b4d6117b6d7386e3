"""The OT/IK prior's knobs as a search space, and PriorConfig to and from JSON.

One table (:data:`SEARCH_SPACE`): each searched :class:`~sim_training.fingering.prior.PriorConfig`
field with its bounds and type. Searches (the per-piece CEM, the receding-horizon planner) work in
unit coordinates, each knob's range mapped to [0, 1]; integer knobs are rounded when decoded.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from sim_training.fingering.ik import IKConfig
from sim_training.fingering.prior import ABSENT_FIELD_VALUES, OTIKPrior, PriorConfig


@dataclass(frozen=True)
class Knob:
    """One searched :class:`PriorConfig` field: its name, bounds (inclusive) and type."""

    name: str
    low: float
    high: float
    kind: Literal["float", "int"] = "float"
    doc: str = ""

    def clip(self, value: float) -> float | int:
        """``value`` clipped to the bounds and typed (integer knobs rounded)."""
        x = min(max(float(value), self.low), self.high)
        return int(round(x)) if self.kind == "int" else x

    def to_unit(self, value: float) -> float:
        """Value -> [0, 1] (clipped)."""
        return float(np.clip((value - self.low) / (self.high - self.low), 0.0, 1.0))

    def from_unit(self, u: float) -> float | int:
        """[0, 1] (clipped) -> value; integer knobs are rounded."""
        return self.clip(self.low + float(np.clip(u, 0.0, 1.0)) * (self.high - self.low))


SEARCH_SPACE: tuple[Knob, ...] = (
    Knob("press_depth_m", 0.006, 0.026, doc="fingertip target below the key top when pressing"),
    Knob("black_press_extra_m", 0.0, 0.012, doc="extra depth on black keys"),
    Knob("black_forward_m", -0.02, 0.026, doc="black keys pressed this much further into the piano"),
    Knob("hover_m", 0.0, 0.010, doc="height above the key top of a finger whose key is due next"),
    Knob("lift_m", 0.008, 0.040, doc="height above the white key tops of free fingers"),
    Knob("descend_gate_m", 0.004, 0.040, doc="a finger presses only when laterally this close to its key"),
    Knob("reach_margin_m", 0.0, 0.030, doc="lateral reach of the outer fingers beyond their slot"),
    Knob("carriage_lead", 0.0, 1.0, doc="fraction of the carriage move the IK anticipates"),
    Knob("thumb_penalty_m2", 0.0, 0.002, doc="assignment cost of giving a key to the thumb"),
    Knob("free_weight", 0.02, 0.5, doc="IK weight of free fingers"),
    Knob("plan_steps", 1, 8, "int", doc="future steps the carriage planner looks at"),
)
"""The searched knobs: name, bounds, type. Every default of :class:`PriorConfig` lies inside."""


def knob_values(config: PriorConfig, space: Sequence[Knob] = SEARCH_SPACE) -> dict[str, float | int]:
    """The searched knobs' values in ``config``."""
    return {k.name: getattr(config, k.name) for k in space}


def config_from_knobs(values: dict[str, float], base: PriorConfig | None = None,
                      space: Sequence[Knob] = SEARCH_SPACE) -> PriorConfig:
    """``base`` (default PriorConfig()) with the knobs set to ``values``, clipped to their bounds and typed."""
    base = base if base is not None else PriorConfig()
    by_name = {k.name: k for k in space}
    changes: dict[str, Any] = {}
    for name, value in values.items():
        if name not in by_name:
            raise KeyError(f"{name!r} is not a searched knob ({', '.join(by_name)})")
        k = by_name[name]
        changes[name] = k.clip(value)
    return dataclasses.replace(base, **changes)


def encode(config: PriorConfig, space: Sequence[Knob] = SEARCH_SPACE) -> np.ndarray:
    """Unit coordinates (K,) of ``config``'s knobs."""
    return np.array([k.to_unit(float(getattr(config, k.name))) for k in space])


def decode(u: np.ndarray, base: PriorConfig | None = None, space: Sequence[Knob] = SEARCH_SPACE) -> PriorConfig:
    """The PriorConfig at unit coordinates ``u`` (other fields from ``base``)."""
    return config_from_knobs({k.name: k.from_unit(float(x)) for k, x in zip(space, u, strict=True)}, base, space)


def prior_config_to_json(config: PriorConfig) -> dict[str, Any]:
    """All PriorConfig fields (nested IKConfig as a dict): the ``--prior-config`` file format."""
    return json.loads(json.dumps(asdict(config)))


def prior_config_from_dict(d: dict[str, Any] | None) -> PriorConfig:
    """Inverse of ``dataclasses.asdict`` for :class:`PriorConfig` (nested IKConfig included); None or
    {} gives the defaults. A field missing from a non-empty ``d`` (a config stored before the field
    existed, e.g. in an exported policy) takes the value that reproduces the behaviour of that time
    (:data:`~sim_training.fingering.prior.ABSENT_FIELD_VALUES`), not today's default.
    Raises TypeError naming an unknown field."""
    if not d:
        return PriorConfig()
    d = dict(d)
    ik = IKConfig(**(d.pop("ik", None) or {}))
    for name, value in ABSENT_FIELD_VALUES.items():
        d.setdefault(name, value)
    return PriorConfig(**d, ik=ik)


# ----------------------------------------------------------------------------------- knob tables
def knob_table(space: Sequence[Knob]) -> list[dict[str, Any]]:
    """The knob table as it travels in checkpoints and ONNX metadata (name, low, high, kind, in order)."""
    return [{"name": k.name, "low": float(k.low), "high": float(k.high), "kind": k.kind} for k in space]


def space_from_table(table: Sequence[dict[str, Any]]) -> tuple[Knob, ...]:
    return tuple(Knob(str(d["name"]), float(d["low"]), float(d["high"]), d.get("kind", "float")) for d in table)


def table_mismatch(table: Sequence[dict[str, Any]], space: Sequence[Knob]) -> str:
    """'' when ``table`` is ``space``'s table; else what differs first, in words."""
    ours = knob_table(space)
    if [d.get("name") for d in table] != [d["name"] for d in ours]:
        return (f"knob names/order {[d.get('name') for d in table]} differ from this code's "
                f"{[d['name'] for d in ours]}")
    for theirs, mine in zip(table, ours, strict=True):
        for key in ("low", "high"):
            if abs(float(theirs.get(key, np.nan)) - mine[key]) > 1e-12:
                return f"knob {mine['name']!r}: {key} {theirs.get(key)} in the model, {mine[key]} in this code"
        if theirs.get("kind", "float") != mine["kind"]:
            return f"knob {mine['name']!r}: kind {theirs.get('kind')!r} in the model, {mine['kind']!r} in this code"
    return ""


# ----------------------------------------------------------------------------------- knobs set per window
class KnobPrior:
    """The OT/IK prior whose knobs ``choose(obs) -> unit coordinates`` sets every ``window`` steps.

    The one composition of a knob head and the prior: the torch student and the ONNX runtime both
    use it (with their own ``choose``)."""

    def __init__(self, prior: OTIKPrior, base: PriorConfig, space: Sequence[Knob], window: int,
                 choose: Callable[[np.ndarray], np.ndarray]) -> None:
        if window < 1:
            raise ValueError(f"knob window must be >= 1 step, got {window}")
        self.prior, self.base, self.space, self.window, self.choose = prior, base, tuple(space), int(window), choose
        self.last_u: np.ndarray | None = None
        self._t = 0

    def reset(self) -> None:
        self.prior.reset()
        self.prior.configure(self.base)
        self.last_u = None
        self._t = 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        if self._t % self.window == 0:
            u = np.asarray(self.choose(obs), dtype=np.float64).reshape(-1)
            if u.shape != (len(self.space),):
                raise ValueError(f"knob head returned {u.shape[0]} values, the knob table has {len(self.space)}")
            self.last_u = u
            self.prior.configure(decode(u, self.base, self.space))
        self._t += 1
        return self.prior.act(obs)
