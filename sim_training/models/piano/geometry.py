"""Piano key geometry: the one home of every piano dimension.

Frame: x along the keyboard (A0 at -x, C8 at +x), y from the player into the piano (white-key
front edges at y = 0, key backs at y = WHITE_KEY_LENGTH_M), z up (keybed at z = 0).
Figures follow the Kawai upright regulation manual as used by RoboPianist (key 22.5 mm wide,
150 mm long, 10 mm dip on white keys, black keys 12.5 mm above the white tops).
Each key is a body hinged at its back end about +x; a positive angle moves the key front down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sim_training.constants import LOWEST_MIDI_PITCH, NUM_KEYS

NUM_WHITE_KEYS = 52
WHITE_KEY_WIDTH_M = 0.0225
WHITE_KEY_LENGTH_M = 0.15
WHITE_KEY_HEIGHT_M = 0.0225
WHITE_KEY_GAP_M = 0.001
BLACK_KEY_WIDTH_M = 0.01
BLACK_KEY_LENGTH_M = 0.09
BLACK_KEY_HEIGHT_M = 0.018
BLACK_ABOVE_WHITE_M = 0.0125
"""Black key tops stand this far above the white key tops."""
WHITE_KEY_TRAVEL_M = 0.010
"""Key dip at the key front: 3/8 inch."""
BLACK_KEY_TRAVEL_M = 0.008
WHITE_KEY_MASS_KG = 0.04
BLACK_KEY_MASS_KG = 0.02
KEY_STIFFNESS_NM_PER_RAD = 2.0
"""Return spring; with the spring reference below it holds the key up against its rest stop."""
KEY_SPRINGREF_RAD = math.radians(-1.0)
KEY_DAMPING_NMS_PER_RAD = 0.05
KEY_ARMATURE_KGM2 = 0.001
TARGET_FRACTION_TOWARD_FRONT = 0.35
"""Fingering target: on the key top, 35 % of the key length from the key centre toward its front."""

_BLACK_PITCH_CLASSES = frozenset({1, 3, 6, 8, 10})  # C#, D#, F#, G#, A# (pitch class 0 = C)


@dataclass(frozen=True)
class KeyGeometry:
    """Per-key arrays, indexed by key number 0..87 (MIDI pitch - 21)."""

    is_black: np.ndarray = field(repr=False)
    """(88,) bool."""
    center_xyz_m: np.ndarray = field(repr=False)
    """(88, 3) key box centre at rest."""
    half_size_m: np.ndarray = field(repr=False)
    """(88, 3) key box half extents."""
    max_angle_rad: np.ndarray = field(repr=False)
    """(88,) hinge angle at the bottom of the key travel."""
    hinge_y_m: float = WHITE_KEY_LENGTH_M
    target_xyz_m: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 3)))
    """(88, 3) fingering target point on the key top, at rest."""

    @property
    def keyboard_length_m(self) -> float:
        return NUM_WHITE_KEYS * WHITE_KEY_WIDTH_M + (NUM_WHITE_KEYS - 1) * WHITE_KEY_GAP_M

    def key_x_m(self, key: int) -> float:
        return float(self.center_xyz_m[key, 0])


def is_black_pitch(midi_pitch: int) -> bool:
    return (midi_pitch % 12) in _BLACK_PITCH_CLASSES


def _build() -> KeyGeometry:
    pitches = np.arange(LOWEST_MIDI_PITCH, LOWEST_MIDI_PITCH + NUM_KEYS)
    is_black = np.array([is_black_pitch(int(p)) for p in pitches])
    pitch_step = WHITE_KEY_WIDTH_M + WHITE_KEY_GAP_M
    length = NUM_WHITE_KEYS * WHITE_KEY_WIDTH_M + (NUM_WHITE_KEYS - 1) * WHITE_KEY_GAP_M
    center = np.zeros((NUM_KEYS, 3))
    half = np.zeros((NUM_KEYS, 3))
    max_angle = np.zeros(NUM_KEYS)
    target = np.zeros((NUM_KEYS, 3))
    white_index = -1
    for k in range(NUM_KEYS):
        if not is_black[k]:
            white_index += 1
            x = -length / 2 + WHITE_KEY_WIDTH_M / 2 + white_index * pitch_step
            center[k] = (x, WHITE_KEY_LENGTH_M / 2, WHITE_KEY_HEIGHT_M / 2)
            half[k] = (WHITE_KEY_WIDTH_M / 2, WHITE_KEY_LENGTH_M / 2, WHITE_KEY_HEIGHT_M / 2)
            max_angle[k] = math.atan(WHITE_KEY_TRAVEL_M / WHITE_KEY_LENGTH_M)
            top_z, key_len = WHITE_KEY_HEIGHT_M, WHITE_KEY_LENGTH_M
        else:
            # A black key sits over the gap between the white key below it and the next one.
            x = -length / 2 + WHITE_KEY_WIDTH_M / 2 + white_index * pitch_step + pitch_step / 2
            top_z = WHITE_KEY_HEIGHT_M + BLACK_ABOVE_WHITE_M
            center[k] = (x, WHITE_KEY_LENGTH_M - BLACK_KEY_LENGTH_M / 2, top_z - BLACK_KEY_HEIGHT_M / 2)
            half[k] = (BLACK_KEY_WIDTH_M / 2, BLACK_KEY_LENGTH_M / 2, BLACK_KEY_HEIGHT_M / 2)
            max_angle[k] = math.atan(BLACK_KEY_TRAVEL_M / BLACK_KEY_LENGTH_M)
            key_len = BLACK_KEY_LENGTH_M
        target[k] = (center[k, 0], center[k, 1] - TARGET_FRACTION_TOWARD_FRONT * key_len, top_z)
    if white_index + 1 != NUM_WHITE_KEYS:  # pragma: no cover - guards the layout arithmetic
        raise AssertionError(f"expected {NUM_WHITE_KEYS} white keys, laid out {white_index + 1}")
    for arr in (is_black, center, half, max_angle, target):
        arr.setflags(write=False)
    return KeyGeometry(is_black=is_black, center_xyz_m=center, half_size_m=half, max_angle_rad=max_angle,
                       target_xyz_m=target)


KEY_GEOMETRY: KeyGeometry = _build()
"""The piano's key geometry (immutable arrays)."""
