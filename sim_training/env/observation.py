"""The observation: its layout and the ONE function that builds it.

The simulator (training, evaluation) and the ROS policy node both call :func:`build_observation`;
the layout travels with an exported policy as metadata (:meth:`ObservationLayout.to_dict`) and is
checked against :meth:`ObservationLayout.for_embodiment` at start-up. RP1M's layout (1144 for
Shadow) generalised to any embodiment:

====================  =========================  ======================================
field                 size                       content
====================  =========================  ======================================
goal                  (lookahead + 1) × 89       keys + sustain to press, now and next steps
key_state             88                         key depression, 0 (rest) .. 1 (bottom)
sustain_state         1                          sustain pedal, 0 | 1
fingertip_xyz         n_fingertips × 3           fingertip sites, world frame, metres
hand_joints           n_hand_joints              slides (m) + hand joints (rad), left then right
====================  =========================  ======================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from omnipianist.errors import ContractError
from sim_training.constants import GOAL_WIDTH, LOOKAHEAD_STEPS, NUM_KEYS
from sim_training.models.embodiment import Embodiment

LAYOUT_VERSION = 1


@dataclass(frozen=True)
class ObsField:
    name: str
    offset: int
    shape: tuple[int, ...]
    unit: str
    size: int = field(init=False)
    slice: slice = field(init=False)

    def __post_init__(self) -> None:
        size = math.prod(self.shape)
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "slice", slice(self.offset, self.offset + size))


@dataclass(frozen=True)
class ObservationLayout:
    """Field offsets of the flat float32 observation vector."""

    fields: tuple[ObsField, ...]
    lookahead: int
    embodiment: str
    hand_joint_names: tuple[str, ...]
    fingertip_names: tuple[str, ...]

    @property
    def size(self) -> int:
        return self.fields[-1].offset + self.fields[-1].size

    def field(self, name: str) -> ObsField:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"observation has no field {name!r}; fields: {[f.name for f in self.fields]}")

    @classmethod
    def for_embodiment(cls, embodiment: Embodiment, lookahead: int = LOOKAHEAD_STEPS) -> ObservationLayout:
        specs = [
            ("goal", (lookahead + 1, GOAL_WIDTH), "bool 0|1"),
            ("key_state", (NUM_KEYS,), "fraction of key travel"),
            ("sustain_state", (1,), "bool 0|1"),
            ("fingertip_xyz", (embodiment.n_fingertips, 3), "m, world frame"),
            ("hand_joints", (len(embodiment.all_joint_names),), "m (slides) | rad (hinges)"),
        ]
        fields, offset = [], 0
        for name, shape, unit in specs:
            f = ObsField(name, offset, shape, unit)
            fields.append(f)
            offset += f.size
        return cls(tuple(fields), lookahead, embodiment.key, embodiment.all_joint_names,
                   embodiment.fingertip_names)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (embedded in exported policies)."""
        return {
            "version": LAYOUT_VERSION, "size": self.size, "lookahead": self.lookahead,
            "embodiment": self.embodiment,
            "fields": [{"name": f.name, "offset": f.offset, "shape": list(f.shape), "unit": f.unit}
                       for f in self.fields],
            "hand_joint_names": list(self.hand_joint_names),
            "fingertip_names": list(self.fingertip_names),
        }

    def check_matches(self, described: dict[str, Any], where: str = "policy metadata") -> None:
        """Raise ContractError naming the first field that differs between ``described`` and this layout."""
        mine = self.to_dict()
        for key in ("version", "embodiment", "lookahead", "size"):
            if described.get(key) != mine[key]:
                raise ContractError(f"{where}: observation {key} is {described.get(key)!r}, "
                                    f"this embodiment expects {mine[key]!r}")
        theirs = {f["name"]: f for f in described.get("fields", [])}
        for f in mine["fields"]:
            other = theirs.get(f["name"])
            if other is None:
                raise ContractError(f"{where}: observation field {f['name']!r} is missing")
            for key in ("offset", "shape"):
                if list(np.atleast_1d(other[key])) != list(np.atleast_1d(f[key])):
                    raise ContractError(f"{where}: observation field {f['name']!r} has {key} {other[key]!r}, "
                                        f"expected {f[key]!r}")
        for key in ("hand_joint_names", "fingertip_names"):
            if list(described.get(key, [])) != mine[key]:
                raise ContractError(f"{where}: {key} differ: {described.get(key)!r} vs {mine[key]!r}")


def build_observation(
    layout: ObservationLayout,
    goal: np.ndarray,
    key_state: np.ndarray,
    sustain_state: float,
    fingertip_xyz: np.ndarray,
    hand_joints: np.ndarray,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Assemble the flat float32 observation (shapes as in the layout; ``out`` is filled if given).

    Raises ValueError naming the field whose size does not match the layout.
    """
    obs = np.empty(layout.size, dtype=np.float32) if out is None else out
    parts: tuple[Any, ...] = (goal, key_state, sustain_state, fingertip_xyz, hand_joints)
    for f, value in zip(layout.fields, parts, strict=True):
        arr = np.ravel(value)
        if arr.size != f.size:
            raise ValueError(f"observation field {f.name!r}: got {arr.size} values, layout expects {f.size}")
        obs[f.slice] = arr  # float32 cast on assignment (same rounding as np.float32(value))
    return obs
