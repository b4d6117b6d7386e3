"""Scores: notes in seconds, read from and written to MIDI files (mido).

A :class:`Score` is the project's one in-memory form of a piece: notes with absolute times in
seconds (tempo map already applied), the sustain-pedal intervals, and the hand of each note when
the source says so. :func:`load_midi` turns any failure to read a file into a :class:`ScoreError`
that names the file and the cause.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mido

from omnipianist.errors import ScoreError
from sim_training.constants import HAND_SIDES, HIGHEST_MIDI_PITCH, LOWEST_MIDI_PITCH

SUSTAIN_CC: int = 64
"""MIDI controller number of the sustain (damper) pedal."""

SUSTAIN_DOWN_VALUE: int = 64
"""A CC64 value >= this means the pedal is down."""

DEFAULT_TEMPO_US: int = 500_000
"""MIDI default tempo, microseconds per beat (120 bpm)."""

SAVE_TICKS_PER_BEAT: int = 480
"""Resolution used by :func:`save_midi` (with 120 bpm: one tick = 1/960 s)."""


@dataclass(frozen=True)
class Note:
    """One note: MIDI pitch, onset/release in seconds, MIDI velocity, hand ('left'/'right'/None).

    Raises ScoreError if pitch is outside 0..127, times are negative or end_s < start_s,
    velocity is outside 1..127, or hand is not 'left', 'right' or None.
    """

    pitch: int
    start_s: float
    end_s: float
    velocity: int = 64
    hand: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.pitch <= 127:
            raise ScoreError(f"note pitch {self.pitch} is not a MIDI pitch (0..127)")
        if not 0.0 <= self.start_s <= self.end_s:
            raise ScoreError(
                f"note {self.pitch}: need 0 <= start_s <= end_s, got {self.start_s}, {self.end_s}"
            )
        if not 1 <= self.velocity <= 127:
            raise ScoreError(f"note {self.pitch}: velocity {self.velocity} outside 1..127")
        if self.hand is not None and self.hand not in HAND_SIDES:
            raise ScoreError(f"note {self.pitch}: hand {self.hand!r} is not one of {HAND_SIDES}")

    @property
    def duration_s(self) -> float:
        """Sounding time in seconds."""
        return self.end_s - self.start_s


@dataclass(frozen=True)
class Score:
    """A piece: notes sorted by (start_s, pitch), sustain-pedal-down intervals in seconds.

    ``source`` says where it came from (a file path or ``builtin:<name>``);
    ``dropped_out_of_range`` counts source notes outside the piano's 21..108 that were left out.
    Raises ScoreError on a malformed sustain interval.
    """

    name: str
    notes: tuple[Note, ...]
    sustain_s: tuple[tuple[float, float], ...] = ()
    source: str = ""
    dropped_out_of_range: int = 0

    def __post_init__(self) -> None:
        notes = tuple(sorted(self.notes, key=lambda n: (n.start_s, n.pitch, n.end_s)))
        sustain = tuple(sorted((float(a), float(b)) for a, b in self.sustain_s))
        for a, b in sustain:
            if not 0.0 <= a <= b:
                raise ScoreError(f"score {self.name!r}: bad sustain interval ({a}, {b})")
        object.__setattr__(self, "notes", notes)
        object.__setattr__(self, "sustain_s", sustain)

    @property
    def duration_s(self) -> float:
        """Time of the last release (note or pedal), seconds; 0.0 for an empty score."""
        ends = [n.end_s for n in self.notes] + [b for _, b in self.sustain_s]
        return max(ends, default=0.0)

    @property
    def n_notes(self) -> int:
        """Number of notes."""
        return len(self.notes)

    @property
    def hands(self) -> frozenset[str]:
        """The hands named by the notes ('left', 'right'); empty when none is set."""
        return frozenset(n.hand for n in self.notes if n.hand is not None)


# ----------------------------------------------------------------------------------------------
# Reading


class _TempoMap:
    """Tick -> seconds conversion from every set_tempo event of a file (any track)."""

    def __init__(self, changes: list[tuple[int, int]], ticks_per_beat: int) -> None:
        if ticks_per_beat <= 0:
            raise ValueError(f"ticks per beat must be positive, got {ticks_per_beat}")
        # Stable sort: of several changes at one tick, the last one read wins.
        points: dict[int, int] = {0: DEFAULT_TEMPO_US}
        for tick, tempo in sorted(changes, key=lambda c: c[0]):
            points[tick] = tempo
        self._ticks = sorted(points)
        self._tempi = [points[t] for t in self._ticks]
        self._tpb = ticks_per_beat
        self._secs = [0.0]
        for i in range(1, len(self._ticks)):
            span = self._ticks[i] - self._ticks[i - 1]
            self._secs.append(self._secs[-1] + span * self._tempi[i - 1] / (self._tpb * 1e6))

    def seconds(self, tick: int) -> float:
        """Absolute time in seconds of an absolute tick."""
        lo, hi = 0, len(self._ticks) - 1
        while lo < hi:  # last change at or before tick
            mid = (lo + hi + 1) // 2
            if self._ticks[mid] <= tick:
                lo = mid
            else:
                hi = mid - 1
        return self._secs[lo] + (tick - self._ticks[lo]) * self._tempi[lo] / (self._tpb * 1e6)


_LEFT_NAME = re.compile(r"left|(?<![a-z])l\.?\s?h\.?(?![a-z])")
_RIGHT_NAME = re.compile(r"right|(?<![a-z])r\.?\s?h\.?(?![a-z])")


def _side_from_name(name: str) -> str | None:
    low = name.lower()
    is_left, is_right = bool(_LEFT_NAME.search(low)), bool(_RIGHT_NAME.search(low))
    if is_left == is_right:
        return None
    return "left" if is_left else "right"


def _assign_hands(
    part_pitches: dict[int, list[int]], part_names: dict[int, str]
) -> dict[int, str | None]:
    """Hand of each part.

    Two parts: names first ('left'/'lh', 'right'/'rh'), else the lower mean pitch is the left.
    One part: the hand its name says, else None. More parts: None.
    """
    parts = sorted(part_pitches)
    if len(parts) == 1:
        return {parts[0]: _side_from_name(part_names.get(parts[0], ""))}
    if len(parts) != 2:
        return {p: None for p in parts}
    a, b = parts
    side_a = _side_from_name(part_names.get(a, ""))
    side_b = _side_from_name(part_names.get(b, ""))
    if side_a is not None and side_b is None:
        side_b = "right" if side_a == "left" else "left"
    elif side_b is not None and side_a is None:
        side_a = "right" if side_b == "left" else "left"
    if side_a is None or side_a == side_b:  # no usable names: lower part is the left hand
        mean_a = sum(part_pitches[a]) / len(part_pitches[a])
        mean_b = sum(part_pitches[b]) / len(part_pitches[b])
        side_a, side_b = ("left", "right") if mean_a <= mean_b else ("right", "left")
    return {a: side_a, b: side_b}


def _merge_intervals(intervals: list[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    """Union of intervals (touching ones merge); zero-length ones are dropped."""
    out: list[list[float]] = []
    for a, b in sorted(i for i in intervals if i[1] > i[0]):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return tuple((a, b) for a, b in out)


def _parse(mid: mido.MidiFile, path: Path) -> Score:
    """Notes and pedal of an opened MIDI file (see :func:`load_midi`)."""
    tracks = list(mid.tracks)
    tempo_changes: list[tuple[int, int]] = []
    timed: list[list[tuple[int, mido.Message]]] = []
    last_tick = 0
    for track in tracks:
        tick, events = 0, []
        for msg in track:
            tick += msg.time
            events.append((tick, msg))
            if msg.type == "set_tempo":
                tempo_changes.append((tick, msg.tempo))
        timed.append(events)
        last_tick = max(last_tick, tick)
    tmap = _TempoMap(tempo_changes, mid.ticks_per_beat)
    end_of_piece = tmap.seconds(last_tick)

    # raw notes: (track, channel, pitch, start_s, end_s, velocity)
    raw: list[tuple[int, int, int, float, float, int]] = []
    pedal: list[tuple[float, float]] = []
    for ti, events in enumerate(timed):
        sounding: dict[tuple[int, int], tuple[float, int]] = {}
        pedal_down: dict[int, float] = {}
        restruck: dict[tuple[int, int], int] = {}  # key -> tick of a re-strike of a sounding note
        for tick, msg in events:
            if msg.type not in ("note_on", "note_off", "control_change"):
                continue
            t = tmap.seconds(tick)
            if msg.type == "control_change":
                if msg.control != SUSTAIN_CC:
                    continue
                if msg.value >= SUSTAIN_DOWN_VALUE:
                    pedal_down.setdefault(msg.channel, t)
                elif msg.channel in pedal_down:
                    pedal.append((pedal_down.pop(msg.channel), t))
                continue
            key = (msg.channel, msg.note)
            is_on = msg.type == "note_on" and msg.velocity > 0
            if not is_on and restruck.pop(key, None) == tick:
                continue  # on-before-off at one tick: this off closed the note the on just ended
            if key in sounding:  # note_off, or a re-strike that ends the sounding note here
                start, vel = sounding.pop(key)
                if not (is_on and t == start):  # the same pitch struck twice at once is one note
                    raw.append((ti, msg.channel, msg.note, start, t, vel))
                if is_on:
                    restruck[key] = tick
            if is_on:
                sounding[key] = (t, msg.velocity)
        for (channel, pitch), (start, vel) in sounding.items():  # never closed
            raw.append((ti, channel, pitch, start, max(start, end_of_piece), vel))
        for start in pedal_down.values():
            pedal.append((start, max(start, end_of_piece)))

    in_range = [r for r in raw if LOWEST_MIDI_PITCH <= r[2] <= HIGHEST_MIDI_PITCH]
    dropped = len(raw) - len(in_range)
    if not in_range:
        extra = (
            f" ({dropped} outside MIDI {LOWEST_MIDI_PITCH}..{HIGHEST_MIDI_PITCH})"
            if dropped
            else ""
        )
        raise ScoreError(f"{path}: no playable notes in the file{extra}")

    # Parts: tracks when notes come from several tracks, else channels.
    tracks_used = {r[0] for r in in_range}
    by_track = len(tracks_used) > 1
    part_of = (lambda r: r[0]) if by_track else (lambda r: r[1])
    part_pitches: dict[int, list[int]] = {}
    for r in in_range:
        part_pitches.setdefault(part_of(r), []).append(r[2])
    if by_track:
        names = {i: tr.name for i, tr in enumerate(tracks)}
    else:  # channels of one track; the track's name can still name a single part's hand
        track_name = tracks[next(iter(tracks_used))].name
        names = {ch: track_name for ch in part_pitches} if len(part_pitches) == 1 else {}
    hands = _assign_hands(part_pitches, names)
    notes = tuple(
        Note(pitch=r[2], start_s=r[3], end_s=r[4], velocity=r[5], hand=hands[part_of(r)])
        for r in in_range
    )
    return Score(
        name=path.stem,
        notes=notes,
        sustain_s=_merge_intervals(pedal),
        source=str(path),
        dropped_out_of_range=dropped,
    )


def load_midi(path: str | Path) -> Score:
    """Read a type 0/1 MIDI file into a :class:`Score` (times in seconds, full tempo map).

    note_on with velocity 0 is a note_off; a note_on on a sounding pitch ends that note there;
    notes or pedals never released end at the file's last event; CC64 >= 64 is pedal down.
    Pitches outside 21..108 are dropped and counted in ``Score.dropped_out_of_range``.
    Hands are set when the notes come in exactly two parts (tracks, or channels of one track),
    or in one part whose track name says its hand.
    Raises ScoreError (naming the path and the cause) on any failure to read, or if no notes
    remain.
    """
    p = Path(path)
    if not p.is_file():
        raise ScoreError(f"{p}: no such MIDI file")
    try:
        mid = mido.MidiFile(str(p))
    except Exception as exc:  # mido raises OSError, EOFError, ValueError, KeyError, ...
        raise ScoreError(f"{p}: not a readable MIDI file ({type(exc).__name__}: {exc})") from exc
    try:
        return _parse(mid, p)
    except ScoreError:
        raise
    except Exception as exc:
        raise ScoreError(f"{p}: unreadable MIDI data ({type(exc).__name__}: {exc})") from exc


# ----------------------------------------------------------------------------------------------
# Writing


def _track_events(
    notes: list[Note],
    sustain: tuple[tuple[float, float], ...],
    channel: int,
    to_tick: Callable[[float], int],
) -> list[tuple[int, int, mido.Message]]:
    """(tick, order, message) for one track, sorted; at one tick offs come before ons."""
    events: list[tuple[int, int, mido.Message]] = []
    by_pitch: dict[int, list[Note]] = {}
    for n in notes:
        by_pitch.setdefault(n.pitch, []).append(n)
    for pitch, group in by_pitch.items():
        group.sort(key=lambda n: n.start_s)
        for i, n in enumerate(group):
            on, off = to_tick(n.start_s), to_tick(n.end_s)
            if i + 1 < len(group):  # a re-strike ends the note (what load_midi does too)
                next_on = to_tick(group[i + 1].start_s)
                if next_on == on:
                    continue  # same pitch struck twice at once: one note
                off = min(off, next_on)
            note_on = mido.Message("note_on", channel=channel, note=pitch, velocity=n.velocity)
            note_off = mido.Message("note_off", channel=channel, note=pitch, velocity=0)
            events.append((on, 2, note_on))
            # offs precede ons at one tick, except the off of a zero-length note (stable sort)
            events.append((off, 2 if off <= on else 1, note_off))
    for a, b in sustain:
        down = mido.Message("control_change", channel=channel, control=SUSTAIN_CC, value=127)
        up = mido.Message("control_change", channel=channel, control=SUSTAIN_CC, value=0)
        events.append((to_tick(a), 3, down))
        events.append((to_tick(b), 0, up))
    events.sort(key=lambda e: (e[0], e[1]))
    return events


def save_midi(score: Score, path: str | Path) -> None:
    """Write ``score`` as a type-1 MIDI file: a tempo track, then one track per hand.

    Tracks are named 'left hand' / 'right hand' (notes without a hand go to a 'piano' track);
    120 bpm, 480 ticks per beat, so times round-trip through :func:`load_midi` within 1/960 s.
    The sustain pedal is written on the first note track. Raises ScoreError if the file cannot
    be written.
    """
    p = Path(path)
    sec_per_tick = DEFAULT_TEMPO_US / 1e6 / SAVE_TICKS_PER_BEAT

    def to_tick(seconds: float) -> int:
        return round(seconds / sec_per_tick)

    mid = mido.MidiFile(type=1, ticks_per_beat=SAVE_TICKS_PER_BEAT)
    conductor = mido.MidiTrack()
    conductor.append(mido.MetaMessage("track_name", name=score.name, time=0))
    conductor.append(mido.MetaMessage("set_tempo", tempo=DEFAULT_TEMPO_US, time=0))
    mid.tracks.append(conductor)
    groups = [
        (label, [n for n in score.notes if n.hand == hand])
        for label, hand in (("left hand", "left"), ("right hand", "right"), ("piano", None))
    ]
    groups = [(label, notes) for label, notes in groups if notes]
    if not groups:
        groups = [("piano", [])]
    for channel, (label, notes) in enumerate(groups):
        track = mido.MidiTrack()
        track.append(mido.MetaMessage("track_name", name=label, time=0))
        sustain = score.sustain_s if channel == 0 else ()
        last = 0
        for tick, _, msg in _track_events(notes, sustain, channel, to_tick):
            track.append(msg.copy(time=tick - last))
            last = tick
        track.append(mido.MetaMessage("end_of_track", time=0))
        mid.tracks.append(track)
    try:
        mid.save(str(p))
    except Exception as exc:
        raise ScoreError(f"{p}: cannot write MIDI file ({type(exc).__name__}: {exc})") from exc
