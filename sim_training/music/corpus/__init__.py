"""A corpus of real pieces for two piano hands, built offline from music21's bundled corpus.

:func:`build_corpus` parses works shipped inside the ``music21`` wheel (Bach chorales, string
quartets by Haydn, Mozart and Beethoven, Renaissance and Trecento polyphony, piano music,
songs, folk tunes), reduces each to two playable hands, cuts it into clips of at most
``clip_s`` seconds at bar lines and writes every clip as a two-track MIDI file (track per hand,
:func:`~sim_training.music.score.save_midi`) plus a ``manifest.json``.

Reduction to two hands
    * Works with a keyboard part (grand-staff ``PartStaff`` objects in music21) keep only the
      keyboard staves: upper staff -> right hand, lower staff -> left hand; voice/violin/... parts
      of songs and chamber works are left out.
    * Other works (chorales, quartets, madrigals, masses, ...): parts are ranked by mean pitch,
      the upper half (rounded up) goes to the right hand, the lower half to the left hand.
      A single melody (folk tunes) is a right-hand-only piece.
    * Playability, enforced at every onset on the notes then sounding in a hand (held ones
      included): at most :data:`MAX_NOTES_PER_HAND` notes spanning at most
      :data:`MAX_SPAN_SEMITONES` semitones (a major tenth). New notes win over held ones (a held
      note that no longer fits is released at the onset); of the new notes the outer ones are kept
      first (the top one for the right hand, the bottom one for the left hand, then the other
      extreme, then inner notes), so inner and doubled notes are dropped first. A note that does
      not fit its hand moves to the other hand when it fits there without crossing the hands;
      otherwise it is dropped. A key struck again releases the note sounding on it (in either hand).
    * Grace notes, unpitched notes and chord symbols are dropped, tied notes merged, repeats are
      not expanded, pitches outside 21..108 are moved by octaves into the range.
    * Timing follows the score's tempo marks (quarter = 100 bpm, 0.6 s, where a score has none).

The split (train/validation/test, 80/10/10) is a fixed function of the source path, so every
clip of one work lands in the same split.

The shipped corpus lives in ``sim_training/music/corpus_data/``; :func:`load_manifest` reads it
without music21. Building needs the optional extra: ``pip install omnipianist[corpus]``
(``music21==10.5.1``).
"""


from __future__ import annotations

from sim_training.music.corpus.build import CorpusDependencyError, build_corpus, list_sources
from sim_training.music.corpus.cli import build_parser, main
from sim_training.music.corpus.constants import (
    COLLECTIONS,
    CORPUS_DIR,
    DEFAULT_BPM,
    DEFAULT_MANIFEST,
    DEFAULT_VELOCITY,
    MANIFEST_NAME,
    MAX_CLIPS_PER_WORK,
    MAX_NOTES_PER_HAND,
    MAX_SPAN_SEMITONES,
    MIN_NOTE_S,
    MIN_NOTES_PER_CLIP,
    MUSIC21_REQUIREMENT,
    SPLITS,
)
from sim_training.music.corpus.manifest import CorpusPiece, Manifest, corpus_path, hand_stats, load_manifest, slug, split_of
from sim_training.music.corpus.playable import cut_clips, make_playable

__all__ = [
    "COLLECTIONS", "CORPUS_DIR", "DEFAULT_BPM", "DEFAULT_MANIFEST", "DEFAULT_VELOCITY", "MANIFEST_NAME",
    "MAX_CLIPS_PER_WORK", "MAX_NOTES_PER_HAND", "MAX_SPAN_SEMITONES", "MIN_NOTES_PER_CLIP", "MIN_NOTE_S",
    "MUSIC21_REQUIREMENT", "SPLITS", "CorpusDependencyError", "CorpusPiece", "Manifest", "build_corpus",
    "build_parser", "corpus_path", "cut_clips", "hand_stats", "list_sources", "load_manifest", "main",
    "make_playable", "slug", "split_of",
]
