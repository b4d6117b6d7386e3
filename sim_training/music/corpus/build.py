"""Building the corpus from music21's bundled works (the optional ``corpus`` extra)."""

from __future__ import annotations

import math
import random
import time
import warnings
from collections import Counter
from collections.abc import Generator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omnipianist.cliutil import progress as progress_bar
from omnipianist.errors import OmnipianistError
from sim_training.constants import HIGHEST_MIDI_PITCH, LOWEST_MIDI_PITCH
from sim_training.music.corpus.constants import (
    _COMPOSER_NAMES,
    _SUFFIX_PREFERENCE,
    _SUFFIXES,
    COLLECTIONS,
    DEFAULT_VELOCITY,
    MANIFEST_NAME,
    MAX_CLIPS_PER_WORK,
    MAX_NOTES_PER_HAND,
    MAX_SPAN_SEMITONES,
    MIN_NOTES_PER_CLIP,
    MUSIC21_REQUIREMENT,
)
from sim_training.music.corpus.manifest import CorpusPiece, Manifest, hand_stats, slug, split_of
from sim_training.music.corpus.playable import _TempoMap, cut_clips, make_playable
from sim_training.music.score import Note, Score, load_midi, save_midi


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


def _iter_results(jobs: list[tuple[str, str, float, str]], workers: int) -> Generator[_WorkResult, None, None]:
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


