"""Hand models (Shadow E3M5, LEAP) built with `mujoco.MjSpec`, mounted at the wrist.

`get_hand(name).add_to(spec, mount, side, prefix)` adds one hand under an existing body; see
`base` for the mount frame, mirroring and collision classes.
"""

from __future__ import annotations

from omnipianist.errors import ModelError
from sim_training.models.hands.base import HandModelSpec
from sim_training.models.hands.leap import LEAP
from sim_training.models.hands.shadow import SHADOW

HANDS: dict[str, HandModelSpec] = {"shadow": SHADOW, "leap": LEAP}
"""Every embodiment's hand, by name."""


def get_hand(name: str) -> HandModelSpec:
    """The hand called `name`; `ModelError` naming the known hands if there is none."""
    try:
        return HANDS[name]
    except KeyError:
        raise ModelError(f"unknown hand {name!r}; known hands: {sorted(HANDS)}") from None


__all__ = ["HANDS", "HandModelSpec", "get_hand"]
