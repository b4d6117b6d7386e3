"""Built-in pieces, generated in code (no files needed), and :func:`get_score`.

Every piece sets the hand of each note. Notes sound for ``ARTICULATION`` of their written
length, so repeated notes are released before they are struck again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from omnipianist.errors import ScoreError
from sim_training.music.score import Note, Score, load_midi

ARTICULATION: float = 0.9
"""Fraction of a written note's length that it sounds."""

# MIDI pitches used below.
C2, F2, G2 = 36, 41, 43
C3, D3, E3, F3, G3, A3, B3 = 48, 50, 52, 53, 55, 57, 59
C4, D4, E4, F4, G4, A4, B4 = 60, 62, 64, 65, 67, 69, 71
C5, D5 = 72, 74

_MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11, 12)


def _line(
    pitches: Iterable[int | tuple[int, ...]],
    beats: Iterable[float],
    beat_s: float,
    hand: str,
    start_beat: float = 0.0,
    velocity: int = 72,
) -> list[Note]:
    """Notes played one after another; each item a pitch or a chord, lasting ``beats`` beats."""
    notes: list[Note] = []
    at = start_beat
    for item, length in zip(pitches, beats, strict=True):
        chord = item if isinstance(item, tuple) else (item,)
        for p in chord:
            notes.append(
                Note(
                    pitch=p,
                    start_s=at * beat_s,
                    end_s=(at + length * ARTICULATION) * beat_s,
                    velocity=velocity,
                    hand=hand,
                )
            )
        at += length
    return notes


def twinkle() -> Score:
    """Twinkle Twinkle Little Star in C major, 100 bpm, all six lines (12 bars of 4/4).

    Right hand: the melody in quarter notes (C4..A4), a half note ending each line.
    Left hand: half-note bass on the chord roots (C3, F3, G2).
    """
    beat_s = 60.0 / 100.0
    a1 = [C4, C4, G4, G4, A4, A4, G4]
    a2 = [F4, F4, E4, E4, D4, D4, C4]
    b = [G4, G4, F4, F4, E4, E4, D4]
    rhythm = [1, 1, 1, 1, 1, 1, 2]
    melody = a1 + a2 + b + b + a1 + a2
    rh = _line(melody, rhythm * 6, beat_s, "right")
    # Bass per half bar: line A1 = C C | F C, A2 = F C | G C, B = C F | C G.
    bass_a1 = [C3, C3, F3, C3]
    bass_a2 = [F3, C3, G2, C3]
    bass_b = [C3, F3, C3, G2]
    bass = bass_a1 + bass_a2 + bass_b + bass_b + bass_a1 + bass_a2
    lh = _line(bass, [2] * len(bass), beat_s, "left", velocity=56)
    return Score(name="twinkle", notes=tuple(rh + lh), source="builtin:twinkle")


def c_major_scale() -> Score:
    """C major scale up and down one octave, both hands an octave apart (RH C4, LH C3), 120 bpm."""
    beat_s = 0.5
    up = list(_MAJOR_SCALE)
    steps = up + up[-2::-1]  # up 8 notes, down 7
    rh = _line([C4 + s for s in steps], [1] * len(steps), beat_s, "right")
    lh = _line([C3 + s for s in steps], [1] * len(steps), beat_s, "left")
    return Score(name="c_major_scale", notes=tuple(rh + lh), source="builtin:c_major_scale")


def _two_hand_scale(name: str, tonic_pc: int) -> Score:
    """A major scale built as RoboPianist's library builds its two-hand scales: up one octave (8
    notes) and back down (7), both hands together two octaves apart (left from octave 4, right from
    octave 6 in RoboPianist's numbering: MIDI 48 + tonic and 72 + tonic), 0.5 s per note, each note
    sounding its whole length (legato)."""
    steps = list(_MAJOR_SCALE) + list(_MAJOR_SCALE)[-2::-1]
    notes = []
    for i, step in enumerate(steps):
        for base, hand in ((48, "left"), (72, "right")):
            notes.append(Note(pitch=base + tonic_pc + step, start_s=0.5 * i, end_s=0.5 * (i + 1),
                              velocity=80, hand=hand))
    return Score(name=name, notes=tuple(notes), source=f"builtin:{name}")


def d_major_scale() -> Score:
    """D major scale, two hands, RoboPianist's construction (F# and C# are black keys)."""
    return _two_hand_scale("d_major_scale", 2)


def b_major_scale() -> Score:
    """B major scale, two hands, RoboPianist's construction (five black keys per octave)."""
    return _two_hand_scale("b_major_scale", 11)


def c_major_chords() -> Score:
    """I-IV-V-I in C: right-hand triads (root position), left-hand bass roots, one chord per 2 s."""
    beat_s = 0.5
    triads = [(C4, E4, G4), (F4, A4, C5), (G4, B4, D5), (C4, E4, G4)]
    bass = [C3, F3, G3, C3]
    rh = _line(triads, [4] * 4, beat_s, "right")
    lh = _line(bass, [4] * 4, beat_s, "left", velocity=60)
    return Score(name="c_major_chords", notes=tuple(rh + lh), source="builtin:c_major_chords")


def arpeggios() -> Score:
    """Broken chords over C-F-G-C at 100 bpm.

    Right hand: eighth notes root-3rd-5th-octave-10th-octave-5th-3rd from C4/F4/G4/C4.
    Left hand: quarter notes root-5th-octave-5th from C2/F2/G2/C2.
    """
    beat_s = 60.0 / 100.0
    rh_shape = (0, 4, 7, 12, 16, 12, 7, 4)
    lh_shape = (0, 7, 12, 7)
    rh_pitches: list[int] = []
    lh_pitches: list[int] = []
    for rh_root, lh_root in ((C4, C2), (F4, F2), (G4, G2), (C4, C2)):
        rh_pitches += [rh_root + i for i in rh_shape]
        lh_pitches += [lh_root + i for i in lh_shape]
    rh = _line(rh_pitches, [0.5] * len(rh_pitches), beat_s, "right")
    lh = _line(lh_pitches, [1] * len(lh_pitches), beat_s, "left", velocity=60)
    return Score(name="arpeggios", notes=tuple(rh + lh), source="builtin:arpeggios")


def single_note() -> Score:
    """One middle C (MIDI 60), right hand, 0.5 s long (for tests)."""
    note = Note(pitch=C4, start_s=0.0, end_s=0.5, velocity=72, hand="right")
    return Score(name="single_note", notes=(note,), source="builtin:single_note")


BUILTIN_PIECES: dict[str, Callable[[], Score]] = {
    "twinkle": twinkle,
    "c_major_scale": c_major_scale,
    "c_major_chords": c_major_chords,
    "d_major_scale": d_major_scale,
    "b_major_scale": b_major_scale,
    "arpeggios": arpeggios,
    "single_note": single_note,
}
"""Name -> function that builds the piece."""

MIDI_SUFFIXES: tuple[str, ...] = (".mid", ".midi")


def get_score(name_or_path: str | Path) -> Score:
    """A built-in piece by name, a MIDI file (.mid/.midi, or any existing file) by path, or a clip of the
    shipped corpus by its id (``omnipianist corpus list``).

    Raises ScoreError for an unknown name (listing the built-ins) or an unreadable file.
    """
    text = str(name_or_path)
    if text in BUILTIN_PIECES:
        return BUILTIN_PIECES[text]()
    path = Path(text)
    if path.suffix.lower() in MIDI_SUFFIXES or path.is_file():
        return load_midi(path)
    from sim_training.music.corpus.manifest import corpus_path

    try:
        clip = corpus_path(text)
    except (ScoreError, OSError, ValueError):
        clip = None
    if clip is not None and clip.is_file():
        return load_midi(clip)
    raise ScoreError(
        f"unknown piece {text!r}: not a built-in ({', '.join(sorted(BUILTIN_PIECES))}), "
        "not a corpus clip id (omnipianist corpus list) and not a .mid/.midi file"
    )
