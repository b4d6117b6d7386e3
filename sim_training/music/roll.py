"""Piano roll: a score sampled at the control period, and the goal observations built from it.

Step ``t`` covers time ``[t*dt, (t+1)*dt)``. Two timing conventions (``timing=``):

``"robopianist"`` (the default; RoboPianist 1.0.10's ``NoteTrajectory``, so our F1 compares with
the papers'):
  * a note occupies steps ``floor(start/dt)`` up to ``ceil(end/dt)`` (exclusive, at least one step;
    a time within 1e-6 steps of a boundary counts as on it, where RoboPianist's float arithmetic
    can land one step off);
  * the roll has ``floor(last_release/dt) + 1`` steps, ``last_release`` the latest note end;
  * a key struck again while it is still down in the previous step (a re-strike) is up in the
    new note's first step: the *new* note loses that step;
  * sustain-pedal presses and releases take effect at ``floor(time/dt)``; of several pedal events
    in one step the last wins; a pedal not lifted before the last release stays down to the end.
  With ``trim_silence`` the times are shifted (in seconds) so that the first onset is at 0, as
  RoboPianist's trimmed MIDI files are. One RoboPianist quirk is *not* copied: its
  ``MidiFile.trim_silence`` ends the piece at the end of the note listed last, not at the latest
  release (RoboPianist's trimmed Nocturne: 35.420 s vs 35.501 s); ours ends at the latest release.

``"rounded"`` (this project's first convention, kept to compare with earlier results): a note
occupies ``round(start/dt)`` up to ``round(end/dt)`` (half-up, at least one step); a key struck
again right after it was released gets ``repeat_gap_steps`` steps of release first, taken from the
end of the earlier note; the roll ends at the last release step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from omnipianist.errors import ScoreError
from sim_training.constants import (
    CONTROL_DT_S,
    GOAL_WIDTH,
    LOOKAHEAD_STEPS,
    LOWEST_MIDI_PITCH,
    NUM_KEYS,
)
from sim_training.music.score import Score

_ROUND_EPS = 1e-9
_BOUNDARY_EPS = 1e-6
"""Steps: a time within this of a step boundary counts as on it (times read from MIDI ticks carry
float noise, 0.15 s * 20 = 3.0000000000000004; floor and ceil must not turn that into a step)."""

Timing = Literal["robopianist", "rounded"]
TIMINGS: tuple[str, ...] = ("robopianist", "rounded")
"""The piano-roll timing conventions (see the module docstring); the first is the default."""
DEFAULT_TIMING: Timing = "robopianist"


@dataclass(frozen=True, eq=False)
class PianoRoll:
    """Keys (T, 88) bool and sustain (T,) bool per control step of ``dt_s`` seconds.

    ``onsets`` lists (step, key index 0..87) of every note onset, sorted; with the
    RoboPianist timing (and the rounded one with ``repeat_gap_steps >= 1``) these are exactly
    the rising edges of ``keys``.
    The arrays are stored read-only. Raises ValueError on inconsistent shapes.
    """

    keys: np.ndarray
    sustain: np.ndarray
    dt_s: float
    onsets: tuple[tuple[int, int], ...]
    _goal_cache: dict[int, np.ndarray] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        keys = np.array(self.keys, dtype=bool)
        sustain = np.array(self.sustain, dtype=bool)
        if keys.ndim != 2 or keys.shape[1] != NUM_KEYS:
            raise ValueError(f"keys must be (T, {NUM_KEYS}), got {keys.shape}")
        if sustain.shape != (keys.shape[0],):
            raise ValueError(f"sustain must be ({keys.shape[0]},), got {sustain.shape}")
        if not self.dt_s > 0:
            raise ValueError(f"dt_s must be positive, got {self.dt_s}")
        keys.setflags(write=False)
        sustain.setflags(write=False)
        object.__setattr__(self, "keys", keys)
        object.__setattr__(self, "sustain", sustain)
        object.__setattr__(self, "onsets", tuple(sorted((int(s), int(k)) for s, k in self.onsets)))

    @property
    def n_steps(self) -> int:
        """Number of control steps T."""
        return int(self.keys.shape[0])

    @property
    def duration_s(self) -> float:
        """T * dt_s, seconds."""
        return self.n_steps * self.dt_s

    def frames(self) -> np.ndarray:
        """(T, 89) float32: the 88 keys then the sustain pedal, 1.0 = down (read-only)."""
        cached = self._goal_cache.get(-1)
        if cached is None:
            cached = np.concatenate(
                [self.keys.astype(np.float32), self.sustain.astype(np.float32)[:, None]], axis=1
            )
            cached.setflags(write=False)
            self._goal_cache[-1] = cached
        return cached

    def goal(self, t: int, lookahead: int = LOOKAHEAD_STEPS) -> np.ndarray:
        """(lookahead+1, 89) float32 goal rows for steps t..t+lookahead; rows past the end are 0.

        Raises IndexError if t < 0, ValueError if lookahead < 0.
        """
        if lookahead < 0:
            raise ValueError(f"lookahead must be >= 0, got {lookahead}")
        if t < 0:
            raise IndexError(f"step {t} is negative")
        out = np.zeros((lookahead + 1, GOAL_WIDTH), dtype=np.float32)
        rows = self.frames()[t : t + lookahead + 1]
        out[: rows.shape[0]] = rows
        return out

    def goals(self, lookahead: int = LOOKAHEAD_STEPS) -> np.ndarray:
        """(T, lookahead+1, 89) float32, ``goals(L)[t] == goal(t, L)``; computed once, read-only.

        Raises ValueError if lookahead < 0.
        """
        if lookahead < 0:
            raise ValueError(f"lookahead must be >= 0, got {lookahead}")
        cached = self._goal_cache.get(lookahead)
        if cached is None:
            t = self.n_steps
            padded = np.zeros((t + lookahead, GOAL_WIDTH), dtype=np.float32)
            padded[:t] = self.frames()
            cached = np.empty((t, lookahead + 1, GOAL_WIDTH), dtype=np.float32)
            for j in range(lookahead + 1):  # row j of every window: one strided block copy
                cached[:, j] = padded[j : j + t]
            cached.setflags(write=False)
            self._goal_cache[lookahead] = cached
        return cached


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5 + _ROUND_EPS)


def _separate(spans: list[tuple[int, int]], gap: int) -> list[tuple[int, int]]:
    """Per-key step spans [start, end) made disjoint, with ``gap`` release steps before re-strikes.

    An earlier span is cut to ``next_start - gap``; when that would leave it no step, the two
    are merged into one span (a re-strike closer than gap + 1 steps cannot be shown at this dt).
    """
    out: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if not out:
            out.append((s, e))
            continue
        ps, pe = out[-1]
        if s - ps <= gap:  # no room for one step down plus the gap: one merged span
            out[-1] = (ps, max(pe, e))
        elif s < pe + gap:
            out[-1] = (ps, s - gap)
            out.append((s, e))
        else:
            out.append((s, e))
    return out


def score_to_roll(
    score: Score,
    dt_s: float = CONTROL_DT_S,
    stretch: float = 1.0,
    trim_silence: bool = True,
    repeat_gap_steps: int = 1,
    timing: Timing = DEFAULT_TIMING,
) -> PianoRoll:
    """Sample ``score`` at ``dt_s`` seconds per step into a :class:`PianoRoll`.

    ``timing`` picks the convention (module docstring; ``repeat_gap_steps`` is used by
    ``"rounded"`` only). ``stretch`` multiplies all times (1.25 = 25 % slower). With
    ``trim_silence`` the first onset lands at step 0 and pedal before it is clipped; without it
    the roll starts at time 0.
    Raises ScoreError if the score has no notes, ValueError on non-positive dt_s/stretch, a
    negative repeat_gap_steps or an unknown timing.
    """
    if not dt_s > 0:
        raise ValueError(f"dt_s must be positive, got {dt_s}")
    if not stretch > 0:
        raise ValueError(f"stretch must be positive, got {stretch}")
    if repeat_gap_steps < 0:
        raise ValueError(f"repeat_gap_steps must be >= 0, got {repeat_gap_steps}")
    if timing not in TIMINGS:
        raise ValueError(f"timing must be one of {TIMINGS}, got {timing!r}")
    if not score.notes:
        raise ScoreError(f"score {score.name!r} ({score.source}) has no notes")
    if timing == "robopianist":
        return _robopianist_roll(score, dt_s, stretch, trim_silence)
    return _rounded_roll(score, dt_s, stretch, trim_silence, repeat_gap_steps)


def _robopianist_roll(score: Score, dt_s: float, stretch: float, trim_silence: bool) -> PianoRoll:
    fps = 1.0 / dt_s  # RoboPianist's arithmetic: frames = time * (1/dt), floored or ceiled

    def floor(x: float) -> int:  # a time on a step boundary stays on it despite float noise
        return math.floor(x + _BOUNDARY_EPS)

    def ceil(x: float) -> int:
        return math.ceil(x - _BOUNDARY_EPS)
    shift = min(n.start_s for n in score.notes) * stretch if trim_silence else 0.0

    def t(seconds: float) -> float:
        return max(seconds * stretch - shift, 0.0)

    last_release = max(t(n.end_s) for n in score.notes)
    n_steps = floor(last_release * fps) + 1
    active = np.zeros((n_steps, NUM_KEYS), dtype=bool)
    struck = np.zeros((n_steps, NUM_KEYS), dtype=bool)
    for n in score.notes:
        k = n.pitch - LOWEST_MIDI_PITCH
        start = floor(t(n.start_s) * fps)
        end = max(start + 1, ceil(t(n.end_s) * fps))
        if start < n_steps:
            active[start:end, k] = True
            struck[start, k] = True
    keys = active.copy()
    keys[1:] &= ~(active[:-1] & struck[1:])  # a re-strike: the new note's first step is up
    padded = np.vstack([np.zeros((1, NUM_KEYS), dtype=bool), keys])
    rising = np.argwhere(padded[1:] & ~padded[:-1])
    onsets = tuple((int(s), int(k)) for s, k in rising)

    # Pedal events at floor(time/dt), in the order a MIDI file has them (by time; at one time a
    # release before the next press); within a step the last one wins. Events before the trimmed
    # start set the state at step 0; a pedal still down at the last note's release (a file that
    # never lifts it) stays down to the end.
    events: list[tuple[float, int, int, bool]] = []
    for i, (a, b) in enumerate(score.sustain_s):
        events.append((a, i, 0, True))
        if t(b) < last_release:
            events.append((b, i, 1, False))
    sustain = np.zeros(n_steps, dtype=bool)
    state_at: dict[int, bool] = {}
    for when, _, _, down in sorted(events):
        state_at[min(floor(t(when) * fps), n_steps)] = down
    down = False
    for step in range(n_steps):
        down = state_at.get(step, down)
        sustain[step] = down
    return PianoRoll(keys=keys, sustain=sustain, dt_s=float(dt_s), onsets=onsets)


def _rounded_roll(
    score: Score, dt_s: float, stretch: float, trim_silence: bool, repeat_gap_steps: int
) -> PianoRoll:
    def step(seconds: float) -> int:
        return _round_half_up(seconds * stretch / dt_s)

    note_spans: list[tuple[int, int, int]] = []  # (key, start, end)
    for n in score.notes:
        s = step(n.start_s)
        note_spans.append((n.pitch - LOWEST_MIDI_PITCH, s, max(step(n.end_s), s + 1)))
    pedal_spans = []
    for a, b in score.sustain_s:
        s = step(a)
        pedal_spans.append((s, max(step(b), s + 1)))

    offset = min(s for _, s, _ in note_spans) if trim_silence else 0
    per_key: dict[int, list[tuple[int, int]]] = {}
    for k, s, e in note_spans:
        per_key.setdefault(k, []).append((s - offset, e - offset))
    key_spans = {k: _separate(v, repeat_gap_steps) for k, v in per_key.items()}
    pedal = _separate([(s - offset, e - offset) for s, e in pedal_spans], repeat_gap_steps)

    n_steps = max(e for spans in key_spans.values() for _, e in spans)
    if not trim_silence:
        n_steps = max([n_steps] + [e for _, e in pedal])
    keys = np.zeros((n_steps, NUM_KEYS), dtype=bool)
    onsets: list[tuple[int, int]] = []
    for k, spans in key_spans.items():
        for s, e in spans:
            keys[s:e, k] = True
            onsets.append((s, k))
    sustain = np.zeros(n_steps, dtype=bool)
    for s, e in pedal:
        sustain[max(s, 0) : max(min(e, n_steps), 0)] = True
    return PianoRoll(keys=keys, sustain=sustain, dt_s=float(dt_s), onsets=tuple(onsets))
