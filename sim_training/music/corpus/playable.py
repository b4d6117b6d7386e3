"""Reduction to two playable hands, and cutting a score into clips at bar lines."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sim_training.music.corpus.constants import (
    _EPS_Q,
    _EPS_S,
    _MIN_NOTE_Q,
    DEFAULT_BPM,
    MAX_NOTES_PER_HAND,
    MAX_SPAN_SEMITONES,
    MIN_NOTE_S,
)

# ----------------------------------------------------------------------------------------------
# Reduction to two playable hands (pure Python; times in quarter lengths)


@dataclass
class _Held:
    """A note being placed: pitch, start/end in quarter lengths, velocity, hand."""

    pitch: int
    start: float
    end: float
    velocity: int
    hand: str


def _fits(pitches: Iterable[int]) -> bool:
    ps = list(pitches)
    return len(ps) <= MAX_NOTES_PER_HAND and (not ps or max(ps) - min(ps) <= MAX_SPAN_SEMITONES)


def _outer_first(notes: list[_Held], hand: str) -> list[_Held]:
    """Right hand: top, bottom, then the rest top-down; left hand: bottom, top, then bottom-up."""
    ordered = sorted(notes, key=lambda n: n.pitch, reverse=hand == "right")
    if len(ordered) <= 2:
        return ordered
    return [ordered[0], ordered[-1], *ordered[1:-1]]


def make_playable(
    raw: Sequence[tuple[float, float, int, int, str]],
) -> tuple[list[tuple[float, float, int, int, str]], int]:
    """Place notes ``(start_q, end_q, pitch, velocity, preferred_hand)`` on two playable hands.

    Returns the kept notes (same form, hand final, possibly shortened) sorted by start, and the
    number of source notes dropped. See the module docstring for the rules.
    """
    by_onset: dict[float, list[tuple[float, float, int, int, str]]] = {}
    for r in raw:
        by_onset.setdefault(round(r[0] / _EPS_Q) * _EPS_Q, []).append(r)
    active: dict[str, list[_Held]] = {"left": [], "right": []}
    done: list[_Held] = []
    dropped = 0

    def release(n: _Held, t: float) -> None:
        n.end = min(n.end, t)
        if n.end - n.start >= _MIN_NOTE_Q:
            done.append(n)

    for t in sorted(by_onset):
        for hand in active:  # notes over by now
            done.extend(n for n in active[hand] if n.end <= t + _EPS_Q)
            active[hand] = [n for n in active[hand] if n.end > t + _EPS_Q]
        # One note per pitch at an onset (the longest); a struck key releases what sounds on it.
        new: dict[int, _Held] = {}
        for _, end, pitch, vel, hand in by_onset[t]:
            if end - t < _MIN_NOTE_Q:
                dropped += 1
                continue
            if pitch in new:
                dropped += 1
                if end > new[pitch].end:
                    new[pitch] = _Held(pitch, t, end, vel, hand)
            else:
                new[pitch] = _Held(pitch, t, end, vel, hand)
        if not new:
            continue
        for hand in active:
            for n in active[hand]:
                if n.pitch in new:
                    release(n, t)
            active[hand] = [n for n in active[hand] if n.pitch not in new]
        kept: dict[str, list[_Held]] = {}
        overflow: list[_Held] = []
        for hand in ("right", "left"):
            chosen: list[_Held] = []
            for n in _outer_first([n for n in new.values() if n.hand == hand], hand):
                if _fits([c.pitch for c in chosen] + [n.pitch]):
                    chosen.append(n)
                else:
                    overflow.append(n)
            for n in _outer_first(active[hand], hand):
                if _fits([c.pitch for c in chosen] + [n.pitch]):
                    chosen.append(n)
                else:
                    release(n, t)
            kept[hand] = chosen
        for n in overflow:
            other = "left" if n.hand == "right" else "right"
            other_ps = [c.pitch for c in kept[other]]
            own_ps = [c.pitch for c in kept[n.hand]]
            no_cross = (n.pitch < min(own_ps, default=128)) if other == "left" else (
                n.pitch > max(own_ps, default=-1)
            )
            if no_cross and _fits([*other_ps, n.pitch]):
                n.hand = other
                kept[other].append(n)
            else:
                dropped += 1
        active = kept
    for hand in active:
        done.extend(active[hand])
    out = sorted(((n.start, n.end, n.pitch, n.velocity, n.hand) for n in done), key=lambda r: (r[0], r[2]))
    return out, dropped


class _TempoMap:
    """Quarter-length offset -> seconds, from (offset, quarter bpm) changes."""

    def __init__(self, changes: Sequence[tuple[float, float]]) -> None:
        points: dict[float, float] = {0.0: DEFAULT_BPM}
        for off, bpm in sorted(changes):
            points[max(0.0, off)] = bpm
        self._offs = sorted(points)
        self._spq = [60.0 / points[o] for o in self._offs]
        self._secs = [0.0]
        for i in range(1, len(self._offs)):
            self._secs.append(self._secs[-1] + (self._offs[i] - self._offs[i - 1]) * self._spq[i - 1])

    def seconds(self, q: float) -> float:
        """Seconds from the start at quarter-length offset ``q``."""
        i = max(0, sum(1 for o in self._offs if o <= q) - 1)
        return self._secs[i] + (q - self._offs[i]) * self._spq[i]


def cut_clips(
    notes: Sequence[tuple[float, float, int, int, str]],
    bar_starts_s: Sequence[float],
    clip_s: float,
) -> list[list[tuple[float, float, int, int, str]]]:
    """Cut notes (times in seconds) into clips of at most ``clip_s`` seconds.

    Cuts fall on the latest bar line that keeps the clip within ``clip_s`` (on the latest note
    onset when no bar line does, else at ``clip_s``). Each clip starts at its first onset (times
    shifted to 0); notes sounding past a cut are shortened to it, and left out if that leaves
    less than :data:`MIN_NOTE_S` seconds.
    """
    if not notes:
        return []
    onsets = sorted({n[0] for n in notes})
    end_all = max(n[1] for n in notes)
    bars = sorted(set(bar_starts_s))
    clips: list[list[tuple[float, float, int, int, str]]] = []
    start = onsets[0]
    while True:
        limit = start + clip_s
        if end_all <= limit + 1e-9:
            cut = end_all + 1.0
        else:
            cands = [b for b in bars if start + MIN_NOTE_S < b <= limit + 1e-9]
            if not cands:
                cands = [o for o in onsets if start + MIN_NOTE_S < o <= limit + 1e-9]
            cut = max(cands) if cands else limit
        clip = [
            (s - start, min(e, cut) - start, p, v, h)
            for s, e, p, v, h in notes
            if start - _EPS_S <= s < cut - _EPS_S and min(e, cut) - s >= MIN_NOTE_S
        ]
        clips.append(clip)
        later = [o for o in onsets if o >= cut - _EPS_S]
        if not later:
            break
        start = later[0]
    return clips


