"""The shipped corpus's manifest: its clips, their splits and files (read without music21)."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omnipianist.errors import ScoreError
from sim_training.music.corpus.constants import (
    CORPUS_DIR,
    DEFAULT_MANIFEST,
    MANIFEST_NAME,
    SPLITS,
)
from sim_training.music.score import Note, Score

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


def portable_piece(piece: str) -> str:
    """``piece`` as a summary should record it: the clip id when it is the shipped corpus's MIDI file of
    that id (no checkout's absolute path in a committed file), else unchanged."""
    p = Path(piece)
    if p.suffix.lower() not in (".mid", ".midi") or not p.is_file():
        return piece
    try:
        if corpus_path(p.stem).resolve() == p.resolve():
            return p.stem
    except Exception:  # noqa: BLE001 - not a shipped clip: keep what the caller gave
        pass
    return piece


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


