"""Embodiments: which hand rides each forearm, which joints the policy commands, in which order.

This module is the single source of the joint order, the action order and the fingertip order.
Everything downstream (observation layout, exported policy contract, ROS nodes, hardware mapping)
reads it; nothing re-types joint counts.

Order conventions: hands left then right; per hand the forearm slides first, then the hand joints in
the hand model's kinematic order. Action = per hand [hand actuators (action set), forearm slides],
left then right, then the sustain pedal last (RP1M layout generalised).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from omnipianist.errors import ModelError
from sim_training.constants import HAND_SIDES
from sim_training.models.hands import HANDS, HandModelSpec, get_hand

ActionSet = Literal["reduced", "full"]
ACTION_SETS: tuple[ActionSet, ...] = ("reduced", "full")
SIDE_PREFIX: dict[str, str] = {"left": "lh_", "right": "rh_"}
FOREARM_SLIDES_XY: tuple[str, ...] = ("forearm_tx", "forearm_ty")
"""Slides along the keyboard (x) and toward the keys (y)."""
FOREARM_SLIDE_Z = "forearm_tz"
"""Optional vertical slide (PianoMime)."""
SUSTAIN_ACTION_NAME = "sustain"


@dataclass(frozen=True)
class Embodiment:
    """A hand model on two forearm rails, with a chosen action set."""

    hand: HandModelSpec
    action_set: ActionSet = "reduced"
    forearm_z: bool = False

    @property
    def name(self) -> str:
        return self.hand.name

    @property
    def slide_names(self) -> tuple[str, ...]:
        return FOREARM_SLIDES_XY + ((FOREARM_SLIDE_Z,) if self.forearm_z else ())

    @property
    def hand_actuators(self) -> tuple[str, ...]:
        """Unprefixed hand actuators the policy commands (per hand)."""
        return self.hand.reduced_actuator_names if self.action_set == "reduced" else self.hand.actuator_names

    def joint_names(self, side: str) -> tuple[str, ...]:
        """Prefixed joints of one side: forearm slides, then hand joints."""
        p = SIDE_PREFIX[side]
        return tuple(p + n for n in self.slide_names + self.hand.joint_names)

    @property
    def all_joint_names(self) -> tuple[str, ...]:
        """Every hand-side joint, left then right (the observation's hand-joint block)."""
        return tuple(j for side in HAND_SIDES for j in self.joint_names(side))

    def actuator_names(self, side: str) -> tuple[str, ...]:
        """Prefixed actuators the policy commands for one side: hand actuators, then slides."""
        p = SIDE_PREFIX[side]
        return tuple(p + n for n in self.hand_actuators + self.slide_names)

    @property
    def action_names(self) -> tuple[str, ...]:
        """Names of the action vector's entries, in order (sustain last)."""
        return tuple(a for side in HAND_SIDES for a in self.actuator_names(side)) + (SUSTAIN_ACTION_NAME,)

    @property
    def action_dim(self) -> int:
        return len(self.action_names)

    @property
    def fingertip_names(self) -> tuple[str, ...]:
        """Prefixed fingertip sites, left hand (thumb first) then right hand."""
        return tuple(SIDE_PREFIX[s] + n for s in HAND_SIDES for n in self.hand.fingertip_site_names)

    @property
    def n_fingertips(self) -> int:
        return len(self.fingertip_names)

    @property
    def key(self) -> str:
        """Short id used in metadata and file names, e.g. ``shadow`` or ``shadow-full-z``."""
        parts = [self.name] + (["full"] if self.action_set == "full" else []) + (["z"] if self.forearm_z else [])
        return "-".join(parts)


def action_set_of(value: object) -> ActionSet:
    """``value`` (a name read from a file or a flag) as an :data:`ActionSet`; raises ModelError otherwise."""
    for a in ACTION_SETS:
        if value == a:
            return a
    raise ModelError(f"unknown action set {value!r}; expected 'reduced' or 'full'")


def get_embodiment(name: str, action_set: ActionSet = "reduced", forearm_z: bool = False) -> Embodiment:
    """The embodiment named ``name`` (``shadow`` | ``leap``); raises ModelError for unknown names."""
    return Embodiment(hand=get_hand(name), action_set=action_set_of(action_set), forearm_z=forearm_z)


def embodiment_names() -> tuple[str, ...]:
    return tuple(HANDS)


def embodiment_from_meta(value: Any) -> Embodiment:
    """The embodiment a store / checkpoint names: a key (``shadow``, ``shadow-full-z``, ``leap-z``) or a dict
    with ``name`` [, ``action_set``, ``forearm_z``] (or ``key``). Raises ModelError for anything else."""
    if isinstance(value, Embodiment):
        return value
    if isinstance(value, dict):
        if "name" in value:
            return get_embodiment(value["name"], value.get("action_set", "reduced"), bool(value.get("forearm_z", False)))
        if "key" in value:
            return embodiment_from_meta(value["key"])
    if isinstance(value, str) and value:
        name, *flags = value.split("-")
        unknown = set(flags) - {"full", "z"}
        if not unknown and name in embodiment_names():
            return get_embodiment(name, "full" if "full" in flags else "reduced", "z" in flags)
    raise ModelError(f"cannot tell the embodiment from {value!r} (expected e.g. 'shadow', 'leap-full-z' or "
                     f"{{'name': 'shadow', 'action_set': 'reduced', 'forearm_z': false}})")
