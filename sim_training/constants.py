"""Task constants shared by the simulator, the exported policy contract and the ROS nodes.

One home for each fact (RoboPianist / RP1M task semantics). Nothing else re-types these numbers.
"""

from __future__ import annotations

import math

CONTROL_DT_S: float = 0.05
"""Control period (20 Hz)."""

CONTROL_RATE_HZ: float = 1.0 / CONTROL_DT_S
"""Control rate [Hz] (the policy's, the hand drivers' default)."""

PHYSICS_DT_S: float = 0.005
"""Physics time step (200 Hz)."""

N_SUBSTEPS: int = round(CONTROL_DT_S / PHYSICS_DT_S)
"""Physics steps per control step (10)."""

NUM_KEYS: int = 88
"""Keys on the piano, A0 (MIDI 21) .. C8 (MIDI 108)."""

LOWEST_MIDI_PITCH: int = 21
HIGHEST_MIDI_PITCH: int = LOWEST_MIDI_PITCH + NUM_KEYS - 1

GOAL_WIDTH: int = NUM_KEYS + 1
"""One goal row: 88 keys then the sustain pedal."""

LOOKAHEAD_STEPS: int = 10
"""Future control steps in the goal observation (current step + 10)."""

KEY_ACTIVE_TOLERANCE_RAD: float = math.radians(0.5)
"""A key is active when within this angle of its maximum angle (0.00872665 rad)."""

SUSTAIN_ACTIVE_THRESHOLD: float = 0.5
"""The sustain pedal is pressed when its action is >= this."""

CLIP_STEPS: int = 550
"""Default episode (clip) length in control steps (RP1M)."""

HAND_SIDES: tuple[str, str] = ("left", "right")
"""Hand order everywhere: left first, then right."""
