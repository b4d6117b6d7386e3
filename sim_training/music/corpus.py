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

import argparse
import hashlib
import json
import math
import random
import re
import sys
import time
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omnipianist.errors import OmnipianistError, ScoreError
from sim_training.constants import HIGHEST_MIDI_PITCH, LOWEST_MIDI_PITCH
from sim_training.music.score import Note, Score, load_midi, save_midi

CORPUS_DIR: Path = Path(__file__).resolve().parent / "corpus_data"
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


class CorpusDependencyError(OmnipianistError, ImportError):
    """music21, needed to build the corpus, is not installed."""


def _import_music21() -> Any:
    """The music21 module, or CorpusDependencyError naming the extra to install."""
    try:
        import music21
    except ImportError as exc:
        raise CorpusDependencyError(
            "building the corpus needs music21, an optional extra: "
            f"pip install omnipianist[corpus]  (or: pip install {MUSIC21_REQUIREMENT})"
        ) from exc
    return music21


# ----------------------------------------------------------------------------------------------
# Manifest


@dataclass(frozen=True)
class CorpusPiece:
    """One clip of the corpus, as listed in the manifest (``file`` is relative to it)."""

    id: str
    file: str
    source: str
    composer: str
    clip_index: int
    duration_s: float
    n_notes: int
    max_polyphony_left: int
    max_polyphony_right: int
    split: str


@dataclass
class Manifest:
    """The list of corpus clips and how they were made; ``root`` is the folder of the files."""

    entries: list[CorpusPiece]
    generated_by: str = ""
    music21_version: str = ""
    clip_s: float = 30.0
    seed: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    root: Path = CORPUS_DIR

    @property
    def counts_per_split(self) -> dict[str, int]:
        """Number of clips in each split (every split named, zero included)."""
        counts = Counter(p.split for p in self.entries)
        return {s: counts.get(s, 0) for s in SPLITS}

    @property
    def counts_per_composer(self) -> dict[str, int]:
        """Number of clips per composer, most first."""
        return dict(Counter(p.composer for p in self.entries).most_common())

    def pieces(self, split: str | None = None, max_pieces: int | None = None) -> list[CorpusPiece]:
        """Clips of ``split`` (all when None), in manifest (id) order, at most ``max_pieces``.

        Raises ValueError on an unknown split or a negative max_pieces.
        """
        if split is not None and split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        if max_pieces is not None and max_pieces < 0:
            raise ValueError(f"max_pieces must be >= 0, got {max_pieces}")
        out = [p for p in self.entries if split is None or p.split == split]
        return out if max_pieces is None else out[:max_pieces]

    def get(self, piece_id: str) -> CorpusPiece:
        """The clip with this id; ScoreError if there is none."""
        for p in self.entries:
            if p.id == piece_id:
                return p
        raise ScoreError(f"corpus: no piece {piece_id!r} in {self.root / MANIFEST_NAME}")

    def corpus_path(self, piece_id: str) -> Path:
        """Path of the MIDI file of clip ``piece_id``; ScoreError if the id is unknown."""
        return self.root / self.get(piece_id).file

    def to_json(self) -> dict[str, Any]:
        """The manifest as a JSON-ready dict."""
        return {
            "generated_by": self.generated_by,
            "music21_version": self.music21_version,
            "clip_s": self.clip_s,
            "seed": self.seed,
            "n_pieces": len(self.entries),
            "counts_per_split": self.counts_per_split,
            "counts_per_composer": self.counts_per_composer,
            "n_failures": len(self.failures),
            "failures": self.failures,
            "stats": self.stats,
            "pieces": [asdict(p) for p in self.entries],
        }

    def save(self, path: str | Path | None = None) -> Path:
        """Write ``manifest.json`` (to ``path``, default ``root/manifest.json``); return its path."""
        p = Path(path) if path is not None else self.root / MANIFEST_NAME
        p.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")
        return p

    @classmethod
    def load(cls, path: str | Path) -> Manifest:
        """Read a manifest file; ScoreError (naming the file) if it is missing or malformed."""
        p = Path(path)
        if not p.is_file():
            raise ScoreError(
                f"{p}: no corpus manifest (build one: python -m sim_training.music.corpus build --out DIR)"
            )
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
            entries = [CorpusPiece(**e) for e in data["pieces"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ScoreError(f"{p}: malformed corpus manifest ({type(exc).__name__}: {exc})") from exc
        return cls(
            entries=entries,
            generated_by=str(data.get("generated_by", "")),
            music21_version=str(data.get("music21_version", "")),
            clip_s=float(data.get("clip_s", 30.0)),
            seed=int(data.get("seed", 0)),
            failures=list(data.get("failures", [])),
            stats=dict(data.get("stats", {})),
            root=p.resolve().parent,
        )


def load_manifest(path: str | Path | None = None) -> Manifest:
    """Read a corpus manifest (default: the shipped ``corpus_data/manifest.json``)."""
    return Manifest.load(DEFAULT_MANIFEST if path is None else path)


def corpus_path(piece_id: str) -> Path:
    """Path of the shipped MIDI file of clip ``piece_id``; ScoreError if the id is unknown."""
    return load_manifest().corpus_path(piece_id)


def split_of(source: str) -> str:
    """The split of every clip of work ``source``: a fixed hash of the path -> 80/10/10."""
    bucket = int(hashlib.sha256(source.encode("utf-8")).hexdigest(), 16) % 10
    return "train" if bucket < 8 else ("validation" if bucket == 8 else "test")


def slug(source: str) -> str:
    """File-name stem of a corpus path: 'bach/bwv1.6.mxl' -> 'bach-bwv1-6'."""
    stem = source.rsplit(".", 1)[0] if "." in source.rsplit("/", 1)[-1] else source
    return re.sub(r"[^A-Za-z0-9]+", "-", stem).strip("-").lower()


def hand_stats(score: Score) -> dict[str, tuple[int, int]]:
    """Per hand ('left'/'right'/None), (most notes held at once, widest span in semitones).

    Measured at every onset of the hand over the notes sounding then (start <= t < end).
    """
    by_hand: dict[Any, list[Note]] = {}
    for n in score.notes:
        by_hand.setdefault(n.hand, []).append(n)
    out: dict[Any, tuple[int, int]] = {}
    for hand, notes in by_hand.items():
        most, widest = 0, 0
        for t in sorted({n.start_s for n in notes}):
            held = [n.pitch for n in notes if n.start_s <= t + 1e-9 and n.end_s > t + 1e-9]
            if held:
                most, widest = max(most, len(held)), max(widest, max(held) - min(held))
        out[hand] = (most, widest)
    return out


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


# ----------------------------------------------------------------------------------------------
# music21 side (runs in worker processes)


@dataclass
class _WorkResult:
    """What one work gave: clips (index, score), counts, or the error that stopped it."""

    source: str
    clips: list[tuple[int, Score]] = field(default_factory=list)
    n_source_notes: int = 0
    n_dropped: int = 0
    mode: str = ""
    error: str | None = None


def _tempo_changes(m21: Any, score: Any) -> list[tuple[float, float]]:
    """(offset, quarter bpm) of the score's tempo marks (first found at an offset wins)."""
    found: dict[float, float] = {}
    for el in score.recurse().getElementsByClass(m21.tempo.TempoIndication):
        try:
            off = round(float(el.getOffsetInHierarchy(score)), 6)
            if isinstance(el, m21.tempo.MetronomeMark):
                mm = el
            elif isinstance(el, m21.tempo.MetricModulation):
                mm = el.newMetronome
            else:
                mm = el.getMetronomeMark()
            bpm = mm.getQuarterBPM() if mm is not None else None
        except Exception:  # a tempo mark music21 cannot read: keep the previous tempo
            continue
        if bpm and 20.0 <= float(bpm) <= 400.0 and off not in found:
            found[off] = min(max(float(bpm), 30.0), 240.0)
    return sorted(found.items())


def _part_notes(m21: Any, part: Any) -> list[tuple[float, float, int, int]]:
    """(start_q, end_q, pitch, velocity) of a part: ties merged, grace/unpitched/symbols left out."""
    flat = part.stripTies(inPlace=False).flatten()
    out: list[tuple[float, float, int, int]] = []
    for el in flat.notes:
        if el.duration.isGrace or el.quarterLength <= 0:
            continue
        if isinstance(el, m21.harmony.Harmony | m21.note.Unpitched | m21.percussion.PercussionChord):
            continue
        start = float(el.offset)
        end = start + float(el.quarterLength)
        vel = el.volume.velocity if el.volume is not None and el.volume.velocity else DEFAULT_VELOCITY
        for p in el.pitches:
            midi = int(round(p.ps))
            while midi < LOWEST_MIDI_PITCH:
                midi += 12
            while midi > HIGHEST_MIDI_PITCH:
                midi -= 12
            out.append((start, end, midi, int(min(max(vel, 1), 127))))
    return out


def _parse_work(m21: Any, abs_path: str) -> Any:
    """Parse a corpus file into one score.

    An opus whose scores all have one title (the voices of one piece, as in the Josquin ABC
    files) becomes one score with a part per voice; of any other opus the first score is used.
    """
    parsed = m21.converter.parse(abs_path)
    if not isinstance(parsed, m21.stream.Opus):
        return parsed
    scores = list(parsed.scores)
    titles = {sc.metadata.title if sc.metadata is not None else None for sc in scores}
    if len(scores) < 2 or len(titles) != 1:
        return scores[0]
    merged = m21.stream.Score()
    for sc in scores:
        for part in sc.parts if sc.hasPartLikeStreams() else [sc]:
            merged.insert(0, part)
    return merged


def _process_work(job: tuple[str, str, float, str]) -> _WorkResult:
    """Parse one corpus work and turn it into clips (worker-process entry point)."""
    source, abs_path, clip_s, piece_prefix = job
    res = _WorkResult(source=source)
    try:
        m21 = _import_music21()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # music21's notes on overfull measures and the like
            parsed = _parse_work(m21, abs_path)
        parts = list(parsed.parts) if parsed.hasPartLikeStreams() else [parsed]
        staves = [p for p in parts if isinstance(p, m21.stream.PartStaff)]
        raw: list[tuple[float, float, int, int, str]] = []
        if len(staves) >= 2:  # keyboard: upper staves right, lower staves left
            res.mode = "keyboard"
            n_right = math.ceil(len(staves) / 2)
            for i, staff in enumerate(staves):
                hand = "right" if i < n_right else "left"
                raw += [(*n[:2], n[2], n[3], hand) for n in _part_notes(m21, staff)]
        else:  # ensemble: upper half of the parts (by mean pitch) right, lower half left
            per_part = [ns for ns in (_part_notes(m21, p) for p in parts) if ns]
            res.mode = "ensemble" if len(per_part) > 1 else "melody"
            per_part.sort(key=lambda ns: -sum(n[2] for n in ns) / len(ns))
            n_right = math.ceil(len(per_part) / 2)
            for i, ns in enumerate(per_part):
                hand = "right" if i < n_right else "left"
                raw += [(*n[:2], n[2], n[3], hand) for n in ns]
        res.n_source_notes = len(raw)
        if not raw:
            return res
        kept, res.n_dropped = make_playable(raw)
        tmap = _TempoMap(_tempo_changes(m21, parsed))
        timed = [(tmap.seconds(s), tmap.seconds(e), p, v, h) for s, e, p, v, h in kept]
        bar_part = staves[0] if staves else parts[0]
        bars = [
            tmap.seconds(float(m.getOffsetInHierarchy(parsed)))
            for m in bar_part.getElementsByClass(m21.stream.Measure)
        ]
        clips = cut_clips(timed, bars, clip_s)
        good = [(i, c) for i, c in enumerate(clips) if len(c) >= MIN_NOTES_PER_CLIP]
        if len(good) > MAX_CLIPS_PER_WORK:  # evenly spread over the work
            picks = sorted({round(k * (len(good) - 1) / (MAX_CLIPS_PER_WORK - 1)) for k in range(MAX_CLIPS_PER_WORK)})
            good = [good[k] for k in picks]
        for idx, clip in good:
            pid = f"{piece_prefix}__{idx:02d}"
            notes = tuple(Note(pitch=p, start_s=s, end_s=e, velocity=v, hand=h) for s, e, p, v, h in clip)
            res.clips.append((idx, Score(name=pid, notes=notes, source=f"music21:{source}#{idx}")))
    except Exception as exc:  # never abort the build on one work
        res.error = f"{type(exc).__name__}: {exc}"[:300]
    return res


def list_sources(
    seed: int = 0, composers: Sequence[str] | None = None
) -> list[tuple[str, Path]]:
    """(corpus path, file) of the works the build uses, interleaved across collections.

    Takes the collections of :data:`COLLECTIONS` (only ``composers`` when given), one file per
    work (``.mxl`` preferred over ``.krn`` copies of the same work), samples capped collections
    with ``seed``, and interleaves collections round-robin so a small ``max_pieces`` is varied.
    """
    m21 = _import_music21()
    wanted = set(COLLECTIONS if composers is None else composers)
    unknown = wanted - set(COLLECTIONS)
    if unknown:
        raise ValueError(f"unknown corpus collections {sorted(unknown)}; known: {sorted(COLLECTIONS)}")
    by_work: dict[str, dict[str, tuple[str, Path]]] = {}
    for p in m21.corpus.getPaths():
        path = Path(str(p))
        if path.suffix not in _SUFFIXES or "corpus" not in path.parts:
            continue
        rel_parts = path.parts[len(path.parts) - path.parts[::-1].index("corpus") :]
        if rel_parts[0] not in wanted:
            continue
        rel = "/".join(rel_parts)
        work = rel.rsplit(".", 1)[0]
        by_work.setdefault(rel_parts[0], {}).setdefault(work, ("", path))
        cur = by_work[rel_parts[0]][work]
        if not cur[0] or _SUFFIX_PREFERENCE[path.suffix] < _SUFFIX_PREFERENCE[Path(cur[0]).suffix]:
            by_work[rel_parts[0]][work] = (rel, path)
    rng = random.Random(seed)
    columns: list[list[tuple[str, Path]]] = []
    for coll in COLLECTIONS:
        if coll not in by_work:
            continue
        works = sorted(by_work[coll].values())
        cap = COLLECTIONS[coll]
        if cap is not None and len(works) > cap:
            works = sorted(rng.sample(works, cap))
        columns.append(works)
    out: list[tuple[str, Path]] = []
    for k in range(max((len(c) for c in columns), default=0)):
        out += [c[k] for c in columns if k < len(c)]
    return out


def _composer(source: str) -> str:
    top = source.split("/", 1)[0]
    return _COMPOSER_NAMES.get(top, top)


def _iter_results(jobs: list[tuple[str, str, float, str]], workers: int) -> Iterator[_WorkResult]:
    if workers <= 1:
        yield from map(_process_work, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        it = pool.map(_process_work, jobs, chunksize=1)
        try:
            yield from it
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def build_corpus(
    out_dir: Path,
    *,
    max_pieces: int | None = None,
    clip_s: float = 30.0,
    seed: int = 0,
    composers: Sequence[str] | None = None,
    workers: int = 2,
    generated_by: str | None = None,
    progress: bool = True,
) -> Manifest:
    """Build a corpus of two-hand clips from music21's bundled corpus into ``out_dir``.

    Writes ``<source-slug>__<clip-index>.mid`` per clip and ``manifest.json``; old ``*__*.mid``
    files and the manifest in ``out_dir`` are removed first. ``max_pieces`` stops after that
    many clips; ``composers`` limits the collections (keys of :data:`COLLECTIONS`); ``workers``
    processes parse works (a work that fails to parse is counted in ``failures``, never fatal).
    Every written file is read back with :func:`load_midi`, and the manifest's statistics come
    from what was read. Raises CorpusDependencyError without music21, ValueError on bad arguments.
    """
    if not clip_s > 0:
        raise ValueError(f"clip_s must be positive, got {clip_s}")
    if max_pieces is not None and max_pieces < 1:
        raise ValueError(f"max_pieces must be >= 1, got {max_pieces}")
    m21 = _import_music21()
    t0 = time.monotonic()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*__*.mid"):
        old.unlink()
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)

    sources = list_sources(seed=seed, composers=composers)
    jobs = [(src, str(path), float(clip_s), slug(src)) for src, path in sources]
    if len({j[3] for j in jobs}) != len(jobs):
        raise ValueError("two corpus works map to one file-name slug")

    entries: list[CorpusPiece] = []
    failures: list[dict[str, str]] = []
    modes: Counter[str] = Counter()
    n_source = n_dropped = n_works = n_empty = 0
    from omnipianist.cliutil import progress as progress_bar

    bar = progress_bar(total=len(jobs), desc="corpus", disable=not progress)
    results = _iter_results(jobs, workers)
    try:
        for res in results:
            bar.update(1)
            n_works += 1
            if res.error is not None:
                failures.append({"source": res.source, "error": res.error})
                continue
            modes[res.mode] += 1
            n_source += res.n_source_notes
            n_dropped += res.n_dropped
            if not res.clips:
                n_empty += 1
            for idx, score in res.clips:
                if max_pieces is not None and len(entries) >= max_pieces:
                    break
                entries.append(_write_clip(score, res.source, idx, out_dir, clip_s))
            bar.set_postfix(pieces=len(entries), failed=len(failures))
            if max_pieces is not None and len(entries) >= max_pieces:
                break
    finally:
        results.close()  # stops the worker pool when max_pieces ended the build early
        bar.close()

    entries.sort(key=lambda e: e.id)
    manifest = Manifest(
        entries=entries,
        generated_by=generated_by
        or f"build_corpus({str(out_dir)!r}, max_pieces={max_pieces}, clip_s={clip_s}, seed={seed})",
        music21_version=str(m21.__version__),
        clip_s=float(clip_s),
        seed=seed,
        failures=failures,
        stats={
            "n_works_processed": n_works,
            "n_works_without_clips": n_empty,
            "works_by_mode": dict(modes),
            "n_source_notes": n_source,
            "n_notes_dropped": n_dropped,
            "build_wall_s": round(time.monotonic() - t0, 1),
        },
        root=out_dir.resolve(),
    )
    manifest.save(out_dir / MANIFEST_NAME)
    return manifest


def _write_clip(score: Score, source: str, idx: int, out_dir: Path, clip_s: float) -> CorpusPiece:
    """Save one clip, read it back, check it is playable, and describe it for the manifest."""
    path = out_dir / f"{score.name}.mid"
    save_midi(score, path)
    back = load_midi(path)
    stats = hand_stats(back)
    for hand, (most, widest) in stats.items():
        if hand is None or most > MAX_NOTES_PER_HAND or widest > MAX_SPAN_SEMITONES:
            raise AssertionError(f"{path}: hand {hand} not playable ({most} notes, span {widest})")
    if back.duration_s > clip_s + 0.01:
        raise AssertionError(f"{path}: {back.duration_s:.3f} s is longer than the clip limit {clip_s} s")
    return CorpusPiece(
        id=score.name,
        file=path.name,
        source=source,
        composer=_composer(source),
        clip_index=idx,
        duration_s=round(back.duration_s, 3),
        n_notes=back.n_notes,
        max_polyphony_left=stats.get("left", (0, 0))[0],
        max_polyphony_right=stats.get("right", (0, 0))[0],
        split=split_of(source),
    )


# ----------------------------------------------------------------------------------------------
# CLI


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The ``build`` / ``list`` argument parser (added to ``parser`` when given)."""
    parser = parser or argparse.ArgumentParser(
        prog="python -m sim_training.music.corpus", description="Corpus of two-hand piano clips."
    )
    sub = parser.add_subparsers(dest="corpus_cmd", required=True)
    b = sub.add_parser("build", help=f"build the corpus from music21's bundled corpus (needs {MUSIC21_REQUIREMENT})")
    b.add_argument("--out", required=True, type=Path, help="output folder")
    b.add_argument("--max-pieces", type=int, default=None, help="stop after this many clips")
    b.add_argument("--clip-s", type=float, default=30.0, help="longest clip, seconds (default: %(default)s)")
    b.add_argument("--seed", type=int, default=0, help="seed of the work sampling (default: %(default)s)")
    b.add_argument("--workers", type=int, default=2, help="parsing processes (default: %(default)s)")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    ls = sub.add_parser("list", help="list the clips of a corpus")
    ls.add_argument("--split", choices=SPLITS, default=None, help="only this split")
    ls.add_argument("--manifest", type=Path, default=None, help="manifest file (default: the shipped one)")
    ls.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _summary(m: Manifest) -> dict[str, Any]:
    return {
        "n_pieces": len(m.entries),
        "counts_per_split": m.counts_per_split,
        "counts_per_composer": m.counts_per_composer,
        "n_failures": len(m.failures),
        "failures": m.failures,
        "stats": m.stats,
        "manifest": str(m.root / MANIFEST_NAME),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``build --out DIR [--max-pieces N] [--clip-s S] [--json]`` or ``list [--split S] [--json]``."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    return run(build_parser().parse_args(args_list), args_list)


def run(args: argparse.Namespace, args_list: Sequence[str] = ()) -> int:
    """Carry out parsed ``build``/``list`` arguments (the ``omnipianist corpus`` command calls this)."""
    try:
        if args.corpus_cmd == "build":
            m = build_corpus(
                args.out,
                max_pieces=args.max_pieces,
                clip_s=args.clip_s,
                seed=args.seed,
                workers=args.workers,
                generated_by=" ".join(["python -m sim_training.music.corpus", *args_list]),
            )
            s = _summary(m)
            if args.json:
                print(json.dumps(s))
            else:
                print(f"{s['n_pieces']} pieces in {s['manifest']} ({s['stats']['build_wall_s']} s)")
                print("per split: " + ", ".join(f"{k} {v}" for k, v in s["counts_per_split"].items()))
                print("per composer: " + ", ".join(f"{k} {v}" for k, v in s["counts_per_composer"].items()))
                print(f"failures: {s['n_failures']}")
                for f in m.failures:
                    print(f"  {f['source']}: {f['error']}")
            return 0
        m = load_manifest(args.manifest)
        pieces = m.pieces(args.split)
        if args.json:
            print(json.dumps({"manifest": str(m.root / MANIFEST_NAME), "pieces": [asdict(p) for p in pieces]}))
        else:
            for p in pieces:
                print(f"{p.id:48s} {p.split:10s} {p.composer:16s} {p.duration_s:6.1f} s {p.n_notes:5d} notes")
            print(f"{len(pieces)} pieces")
        return 0
    except OmnipianistError as exc:
        print(f"corpus: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
