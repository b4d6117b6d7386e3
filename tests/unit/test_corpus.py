"""The shipped corpus (sim_training/music/corpus_data): manifest, splits, playable MIDI clips.

These tests read the shipped files only and need no music21; the one that rebuilds a tiny
corpus is marked slow and skipped without music21.
"""

from __future__ import annotations

import importlib.util
import json
from collections import defaultdict
from pathlib import Path

import pytest

from omnipianist.errors import ScoreError
from sim_training.constants import HIGHEST_MIDI_PITCH, LOWEST_MIDI_PITCH
from sim_training.music import Score, load_midi, score_to_roll
from sim_training.music.corpus import (
    DEFAULT_MANIFEST,
    MAX_NOTES_PER_HAND,
    MAX_SPAN_SEMITONES,
    SPLITS,
    Manifest,
    corpus_path,
    cut_clips,
    load_manifest,
    main,
    make_playable,
    split_of,
)

TOLERANCE_S = 0.01  # MIDI ticks are 1/960 s


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return load_manifest()


@pytest.fixture(scope="module")
def scores(manifest: Manifest) -> dict[str, Score]:
    """Every shipped clip, read back with load_midi (about a second for ~800 files)."""
    return {p.id: load_midi(manifest.corpus_path(p.id)) for p in manifest.entries}


def _hand_check(score: Score) -> dict[str, int]:
    """Most notes held per hand at its onsets; asserts the size and span limits on the way."""
    by_hand: dict[str, list] = defaultdict(list)
    for n in score.notes:
        assert n.hand in ("left", "right"), f"{score.name}: note without a hand"
        by_hand[n.hand].append(n)
    most: dict[str, int] = {}
    for hand, notes in by_hand.items():
        most[hand] = 0
        for t in sorted({n.start_s for n in notes}):
            held = [n.pitch for n in notes if n.start_s <= t + 1e-9 < n.end_s]
            assert len(held) <= MAX_NOTES_PER_HAND, f"{score.name} {hand} at {t:.3f}s: {held}"
            assert max(held) - min(held) <= MAX_SPAN_SEMITONES, f"{score.name} {hand} at {t:.3f}s: {held}"
            most[hand] = max(most[hand], len(held))
    return most


def test_manifest_loads_with_enough_pieces(manifest: Manifest) -> None:
    assert manifest.root == DEFAULT_MANIFEST.parent
    assert len(manifest.entries) >= 300
    assert manifest.music21_version
    assert manifest.generated_by.startswith("python -m sim_training.music.corpus build")
    raw = json.loads(DEFAULT_MANIFEST.read_text())
    assert raw["counts_per_split"] == manifest.counts_per_split
    assert raw["counts_per_composer"] == manifest.counts_per_composer
    assert sum(manifest.counts_per_split.values()) == len(manifest.entries)
    assert isinstance(raw["failures"], list)


def test_ids_unique_and_files_present(manifest: Manifest) -> None:
    ids = [p.id for p in manifest.entries]
    assert len(set(ids)) == len(ids)
    files = {p.file for p in manifest.entries}
    assert len(files) == len(ids)
    on_disk = {f.name for f in manifest.root.glob("*.mid")}
    assert on_disk == files, "MIDI files and manifest disagree"
    for p in manifest.entries:
        assert p.file == f"{p.id}.mid"
        assert p.id.endswith(f"__{p.clip_index:02d}")


def test_splits_disjoint_by_source_and_non_empty(manifest: Manifest) -> None:
    sources: dict[str, set[str]] = {s: set() for s in SPLITS}
    for p in manifest.entries:
        assert p.split in SPLITS
        assert p.split == split_of(p.source)
        sources[p.split].add(p.source)
    for s in SPLITS:
        assert manifest.pieces(s), f"split {s} is empty"
    assert not sources["train"] & sources["validation"]
    assert not sources["train"] & sources["test"]
    assert not sources["validation"] & sources["test"]


def test_pieces_filters_and_paths(manifest: Manifest) -> None:
    test = manifest.pieces("test")
    assert all(p.split == "test" for p in test)
    assert len(manifest.pieces(max_pieces=7)) == 7
    assert manifest.pieces("train", max_pieces=3) == manifest.pieces("train")[:3]
    first = manifest.entries[0]
    assert corpus_path(first.id) == manifest.root / first.file
    assert corpus_path(first.id).is_file()
    with pytest.raises(ScoreError):
        corpus_path("no-such-piece__00")
    with pytest.raises(ValueError):
        manifest.pieces("dev")


def test_portable_piece_names_a_shipped_clip_by_its_id(tmp_path: Path) -> None:
    from sim_training.music.corpus.manifest import portable_piece

    first = load_manifest().entries[0]
    assert portable_piece(str(corpus_path(first.id).resolve())) == first.id
    copy = tmp_path / f"{first.id}.mid"  # same name, not the shipped file: a path it stays
    copy.write_bytes(corpus_path(first.id).read_bytes())
    assert portable_piece(str(copy)) == str(copy)
    assert portable_piece("c_major_scale") == "c_major_scale"


def test_every_clip_is_playable_and_matches_manifest(manifest: Manifest, scores: dict[str, Score]) -> None:
    for p in manifest.entries:
        score = scores[p.id]
        assert score.notes, p.id
        assert score.hands and score.hands <= {"left", "right"}, p.id
        assert all(LOWEST_MIDI_PITCH <= n.pitch <= HIGHEST_MIDI_PITCH for n in score.notes), p.id
        assert score.dropped_out_of_range == 0
        assert score.duration_s <= manifest.clip_s + TOLERANCE_S, p.id
        assert score.n_notes == p.n_notes >= 8, p.id
        assert score.duration_s == pytest.approx(p.duration_s, abs=2e-3), p.id
        most = _hand_check(score)
        assert most.get("left", 0) == p.max_polyphony_left, p.id
        assert most.get("right", 0) == p.max_polyphony_right, p.id


def test_sample_gives_non_empty_rolls(manifest: Manifest, scores: dict[str, Score]) -> None:
    for p in manifest.entries[:: max(1, len(manifest.entries) // 40)]:
        roll = score_to_roll(scores[p.id])
        assert roll.n_steps > 0 and roll.keys.any() and roll.onsets, p.id


def test_make_playable_limits_a_hand() -> None:
    # Seven right-hand notes at once over two octaves, plus a held left-hand bass.
    chord = [(0.0, 1.0, p, 64, "right") for p in (60, 64, 67, 72, 76, 79, 84)]
    kept, dropped = make_playable([(0.0, 4.0, 36, 64, "left"), *chord])
    right = [r[2] for r in kept if r[4] == "right"]
    left = [r[2] for r in kept if r[4] == "left"]
    assert 84 in right and max(right) - min(right) <= MAX_SPAN_SEMITONES
    assert 36 in left and max(left) - min(left) <= MAX_SPAN_SEMITONES
    assert len(kept) + dropped == 8
    # A key struck again releases the note sounding on it.
    kept, _ = make_playable([(0.0, 4.0, 60, 64, "right"), (1.0, 2.0, 60, 64, "left")])
    assert [(r[0], r[1]) for r in kept] == [(0.0, 1.0), (1.0, 2.0)]


def test_cut_clips_respects_the_limit() -> None:
    notes = [(i * 0.5, i * 0.5 + 0.5, 60 + i % 12, 64, "right") for i in range(200)]  # 100 s
    bars = [k * 2.0 for k in range(51)]
    clips = cut_clips(notes, bars, 30.0)
    assert sum(len(c) for c in clips) == len(notes)
    for c in clips:
        assert c[0][0] == 0.0
        assert max(n[1] for n in c) <= 30.0 + 1e-9


def test_cli_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--split", "validation", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pieces"] and all(p["split"] == "validation" for p in out["pieces"])


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("music21") is None, reason="music21 (corpus extra) not installed")
def test_build_tiny_corpus(tmp_path: Path) -> None:
    from sim_training.music.corpus import build_corpus

    m = build_corpus(tmp_path, max_pieces=5, composers=("bach",), workers=1, progress=False)
    assert len(m.entries) == 5
    again = load_manifest(tmp_path / "manifest.json")
    assert [p.id for p in again.entries] == [p.id for p in m.entries]
    for p in again.entries:
        score = load_midi(again.corpus_path(p.id))
        assert score.n_notes == p.n_notes
        _hand_check(score)
        assert score_to_roll(score).keys.any()
