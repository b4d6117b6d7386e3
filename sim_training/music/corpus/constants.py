"""The corpus's facts: where it lives, the playability limits, the build settings, the splits."""

from __future__ import annotations

from pathlib import Path

CORPUS_DIR: Path = Path(__file__).resolve().parents[1] / "corpus_data"
"""Folder of the shipped corpus (MIDI files and ``manifest.json``)."""

DEFAULT_MANIFEST: Path = CORPUS_DIR / "manifest.json"
"""The shipped manifest."""

MANIFEST_NAME: str = "manifest.json"
"""File name of the manifest inside a corpus folder."""

MUSIC21_REQUIREMENT: str = "music21==10.5.1"
"""The music21 release the shipped corpus was built with."""

MAX_NOTES_PER_HAND: int = 5
"""Most notes one hand may hold at once."""

MAX_SPAN_SEMITONES: int = 16
"""Widest span of the notes one hand holds at once: a major tenth."""

DEFAULT_BPM: float = 100.0
"""Quarter notes per minute where a score has no tempo mark (quarter = 0.6 s)."""

MIN_NOTES_PER_CLIP: int = 8
"""Clips with fewer notes are skipped."""

MAX_CLIPS_PER_WORK: int = 5
"""At most this many clips of one work are kept (evenly spread over the work)."""

DEFAULT_VELOCITY: int = 64
"""MIDI velocity of notes whose source sets none."""

SPLITS: tuple[str, str, str] = ("train", "validation", "test")
"""Split names, in order."""

MIN_NOTE_S: float = 0.01
"""Notes of a clip shortened below this many seconds (by a cut) are left out."""

_EPS_Q = 1e-6  # quarter lengths: tolerance of time comparisons
_EPS_S = 1e-4  # seconds: tolerance of time comparisons when cutting clips
_MIN_NOTE_Q = 1e-3  # a note shortened below this many quarter lengths is dropped

# Collections of the bundled corpus used by the build: top folder -> most works taken (None = all).
# Works of a capped collection are sampled with the build's seed.
COLLECTIONS: dict[str, int | None] = {
    "bach": 90,
    "beethoven": None,
    "mozart": None,
    "haydn": None,
    "schumann_robert": None,
    "schumann_clara": None,
    "chopin": None,
    "joplin": None,
    "handel": None,
    "schubert": None,
    "verdi": None,
    "beach": None,
    "cpebach": None,
    "corelli": None,
    "weber": None,
    "webern": None,
    "schoenberg": None,
    "liliuokalani": None,
    "johnson_j_r": None,
    "lusitano": None,
    "luca": None,
    "ciconia": None,
    "josquin": None,
    "palestrina": 20,
    "monteverdi": 16,
    "trecento": 16,
    "leadSheet": None,
    "ryansMammoth": 50,
}
"""Top folders of music21's corpus that are used, with the most works taken from each."""

_SUFFIXES: tuple[str, ...] = (".mxl", ".xml", ".musicxml", ".krn", ".abc")
_SUFFIX_PREFERENCE: dict[str, int] = {".mxl": 0, ".musicxml": 1, ".xml": 2, ".krn": 3, ".abc": 4}

_COMPOSER_NAMES: dict[str, str] = {"ryansMammoth": "traditional", "leadSheet": "various"}

