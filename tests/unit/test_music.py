"""Scores, MIDI reading/writing, piano roll and goals, built-in pieces."""

from __future__ import annotations

from pathlib import Path

import mido
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnipianist.errors import ScoreError
from sim_training.constants import GOAL_WIDTH, LOOKAHEAD_STEPS, NUM_KEYS
from sim_training.music import (
    BUILTIN_PIECES,
    Note,
    PianoRoll,
    Score,
    get_score,
    load_midi,
    save_midi,
    score_to_roll,
)

TPB = 480


def _track(
    events: list[tuple[int, mido.Message | mido.MetaMessage]], name: str = ""
) -> mido.MidiTrack:
    """A track from (absolute tick, message) pairs."""
    track = mido.MidiTrack()
    if name:
        track.append(mido.MetaMessage("track_name", name=name, time=0))
    last = 0
    for tick, msg in sorted(events, key=lambda e: e[0]):
        track.append(msg.copy(time=tick - last))
        last = tick
    return track


def _on(pitch: int, vel: int = 80, ch: int = 0) -> mido.Message:
    return mido.Message("note_on", note=pitch, velocity=vel, channel=ch)


def _off(pitch: int, ch: int = 0) -> mido.Message:
    return mido.Message("note_off", note=pitch, velocity=0, channel=ch)


def _tempo(us_per_beat: int) -> mido.MetaMessage:
    return mido.MetaMessage("set_tempo", tempo=us_per_beat)


def _cc64(value: int, ch: int = 0) -> mido.Message:
    return mido.Message("control_change", control=64, value=value, channel=ch)


def _write(path: Path, tracks: list[mido.MidiTrack], type_: int = 1) -> Path:
    mid = mido.MidiFile(type=type_, ticks_per_beat=TPB)
    mid.tracks.extend(tracks)
    mid.save(str(path))
    return path


def _spans(score: Score) -> np.ndarray:
    return np.array([(n.pitch, n.start_s, n.end_s) for n in score.notes])


def _close(actual: np.ndarray | tuple, expected: list | tuple) -> bool:
    a, e = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    return a.shape == e.shape and bool(np.allclose(a, e, rtol=0, atol=1e-9))


# ------------------------------------------------------------------------------------------------
# MIDI reading


def test_tempo_change_mid_piece_type0(tmp_path: Path) -> None:
    events = [
        (0, _tempo(500_000)),  # 120 bpm: 480 ticks = 0.5 s
        (0, _on(60)),
        (480, _off(60)),
        (960, _tempo(1_000_000)),  # 60 bpm from 1.0 s: 480 ticks = 1.0 s
        (960, _on(62)),
        (1440, _off(62)),
        (1920, _on(64)),
        (2160, _off(64)),
    ]
    score = load_midi(_write(tmp_path / "t0.mid", [_track(events)], type_=0))
    assert _close(_spans(score), [(60, 0.0, 0.5), (62, 1.0, 2.0), (64, 3.0, 3.5)])
    assert score.n_notes == 3
    assert score.duration_s == pytest.approx(3.5)
    assert all(n.hand is None for n in score.notes)
    assert score.source == str(tmp_path / "t0.mid")
    assert score.name == "t0"


def test_tempo_changes_in_different_tracks(tmp_path: Path) -> None:
    conductor = _track([(0, _tempo(500_000)), (960, _tempo(250_000))], name="conductor")
    upper = _track([(0, _on(72)), (480, _off(72)), (1440, _on(74)), (1920, _off(74))], "upper")
    # a second tempo change that lives in another (note) track
    lower = _track([(1920, _tempo(1_000_000)), (2400, _on(48)), (2880, _off(48))], "lower")
    score = load_midi(_write(tmp_path / "t1.mid", [conductor, upper, lower]))
    # 0..960 ticks at 0.5 s/beat -> 1.0 s; 960..1920 at 0.25 s/beat -> 1.5 s; then 1.0 s/beat
    assert _close(_spans(score), [(72, 0.0, 0.5), (74, 1.25, 1.5), (48, 2.5, 3.5)])
    hands = {n.pitch: n.hand for n in score.notes}
    assert hands == {72: "right", 74: "right", 48: "left"}  # two parts, no hand names: by pitch


def test_velocity_zero_is_note_off(tmp_path: Path) -> None:
    events = [(0, _on(60, 90)), (240, _on(60, 0)), (480, _on(64, 70)), (960, _on(64, 0))]
    score = load_midi(_write(tmp_path / "v0.mid", [_track(events)]))
    assert _close(_spans(score), [(60, 0.0, 0.25), (64, 0.5, 1.0)])
    assert [n.velocity for n in score.notes] == [90, 70]


def test_overlapping_same_pitch_notes(tmp_path: Path) -> None:
    # on, on (re-strike while sounding), off, off: the re-strike ends the first note
    events = [(0, _on(60)), (480, _on(60)), (720, _off(60)), (960, _off(60))]
    score = load_midi(_write(tmp_path / "ov.mid", [_track(events)]))
    assert _close(_spans(score), [(60, 0.0, 0.5), (60, 0.5, 0.75)])


def test_restrike_written_on_before_off_at_one_tick(tmp_path: Path) -> None:
    # some writers put the new note_on before the old note_off at the same tick
    events = [(0, _on(60)), (480, _on(60)), (480, _off(60)), (960, _off(60))]
    score = load_midi(_write(tmp_path / "onoff.mid", [_track(events)]))
    assert _close(_spans(score), [(60, 0.0, 0.5), (60, 0.5, 1.0)])


def test_unclosed_notes_end_at_last_event(tmp_path: Path) -> None:
    events = [(0, _on(60)), (480, _on(67)), (960, _off(67)), (1920, _cc64(0))]
    score = load_midi(_write(tmp_path / "open.mid", [_track(events)]))
    assert _close(_spans(score), [(60, 0.0, 2.0), (67, 0.5, 1.0)])


def test_sustain_cc64_intervals(tmp_path: Path) -> None:
    events = [
        (0, _on(60)),
        (480, _cc64(64)),  # >= 64: down at 0.5 s
        (960, _off(60)),
        (1200, _cc64(100)),  # still down
        (1440, _cc64(63)),  # up at 1.5 s
        (1920, _cc64(127)),  # down at 2.0 s, never released
        (2400, _on(62)),
        (2880, _off(62)),  # last event at 3.0 s
    ]
    score = load_midi(_write(tmp_path / "ped.mid", [_track(events)]))
    assert _close(score.sustain_s, ((0.5, 1.5), (2.0, 3.0)))
    roll = score_to_roll(score, trim_silence=False)
    assert not roll.sustain[9] and roll.sustain[10] and roll.sustain[29] and not roll.sustain[30]


def test_out_of_range_pitches_dropped_and_counted(tmp_path: Path) -> None:
    events = [(0, _on(20)), (0, _on(60)), (0, _on(109)), (480, _off(20)), (480, _off(60))]
    events += [(480, _off(109)), (480, _on(21)), (480, _on(108)), (960, _off(21)), (960, _off(108))]
    score = load_midi(_write(tmp_path / "range.mid", [_track(events)]))
    assert sorted(n.pitch for n in score.notes) == [21, 60, 108]
    assert score.dropped_out_of_range == 2


def test_hands_from_track_names_beat_pitch(tmp_path: Path) -> None:
    # the track called RH plays lower than the LH track: the names decide
    rh = _track([(0, _on(40)), (480, _off(40))], name="Piano RH")
    lh = _track([(0, _on(80)), (480, _off(80))], name="Piano LH")
    score = load_midi(_write(tmp_path / "names.mid", [rh, lh]))
    assert {n.pitch: n.hand for n in score.notes} == {40: "right", 80: "left"}
    # one name is enough
    a = _track([(0, _on(40)), (480, _off(40))], name="Right Hand")
    b = _track([(0, _on(80)), (480, _off(80))], name="Piano")
    score = load_midi(_write(tmp_path / "one_name.mid", [a, b]))
    assert {n.pitch: n.hand for n in score.notes} == {40: "right", 80: "left"}


def test_hands_from_two_channels_and_none_for_one_or_three_parts(tmp_path: Path) -> None:
    two_ch = [(0, _on(72, ch=0)), (0, _on(48, ch=1)), (480, _off(72, ch=0)), (480, _off(48, ch=1))]
    score = load_midi(_write(tmp_path / "ch.mid", [_track(two_ch)]))
    assert {n.pitch: n.hand for n in score.notes} == {72: "right", 48: "left"}
    one = [(0, _on(72)), (0, _on(48)), (480, _off(72)), (480, _off(48))]
    assert load_midi(_write(tmp_path / "one.mid", [_track(one)])).hands == frozenset()
    named = load_midi(_write(tmp_path / "named.mid", [_track(one, name="LH")]))
    assert named.hands == {"left"}
    three = [_track([(0, _on(p)), (480, _off(p))], name=f"part{p}") for p in (48, 60, 72)]
    assert load_midi(_write(tmp_path / "three.mid", three)).hands == frozenset()


def _valid_bytes(tmp_path: Path) -> bytes:
    conductor = _track([(0, _tempo(400_000))])
    notes = _track(
        [(i * 240, _on(60 + i)) for i in range(8)]
        + [(i * 240 + 200, _off(60 + i)) for i in range(8)]
    )
    return _write(tmp_path / "valid.mid", [conductor, notes]).read_bytes()


def _assert_score_error(path: Path, cause: str | None = None) -> None:
    with pytest.raises(ScoreError) as info:
        load_midi(path)
    assert str(path) in str(info.value)
    if cause is not None:
        assert cause in str(info.value)


def test_malformed_files_raise_score_error_naming_path(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    random_bytes = tmp_path / "random.mid"
    random_bytes.write_bytes(rng.integers(0, 256, 2000, dtype=np.uint8).tobytes())
    _assert_score_error(random_bytes)

    valid = _valid_bytes(tmp_path)
    truncated = tmp_path / "truncated.mid"
    truncated.write_bytes(valid[: len(valid) - 10])
    _assert_score_error(truncated)

    empty = tmp_path / "empty.mid"
    empty.write_bytes(b"")
    _assert_score_error(empty)

    text = tmp_path / "text.midi"
    text.write_text("not a midi file\n")
    _assert_score_error(text)

    no_notes = _write(
        tmp_path / "no_notes.mid", [_track([(0, _tempo(500_000)), (480, _cc64(127))])]
    )
    _assert_score_error(no_notes, "no playable notes")

    only_out_of_range = _write(tmp_path / "oor.mid", [_track([(0, _on(10)), (480, _off(10))])])
    _assert_score_error(only_out_of_range, "outside")

    _assert_score_error(tmp_path / "missing.mid", "no such")
    _assert_score_error(tmp_path)  # a directory


def test_every_truncation_and_byte_flip_is_a_score_or_a_score_error(tmp_path: Path) -> None:
    valid = _valid_bytes(tmp_path)
    path = tmp_path / "fuzz.mid"
    rng = np.random.default_rng(1)
    variants = [valid[:cut] for cut in range(len(valid))]
    for _ in range(200):
        data = bytearray(valid)
        for i in rng.integers(0, len(data), 3):
            data[i] = int(rng.integers(0, 256))
        variants.append(bytes(data))
    for data in variants:
        path.write_bytes(data)
        try:
            score = load_midi(path)
        except ScoreError as exc:
            assert str(path) in str(exc)
        else:
            assert score.n_notes > 0


def test_save_load_round_trip(tmp_path: Path) -> None:
    notes = (
        Note(60, 0.0, 0.4, 90, "right"),
        Note(64, 0.5, 1.1234, 70, "right"),
        Note(60, 0.4, 0.8, 80, "right"),  # re-strike right after the first C
        Note(48, 0.0, 2.0, 50, "left"),
        Note(43, 1.0, 1.5, 127, "left"),
    )
    score = Score("rt", notes, sustain_s=((0.25, 1.0), (1.2, 2.0)), source="test")
    path = tmp_path / "rt.mid"
    save_midi(score, path)
    back = load_midi(path)
    tick = 0.5 / TPB
    assert back.n_notes == score.n_notes
    for a, b in zip(score.notes, back.notes, strict=True):
        assert (a.pitch, a.velocity, a.hand) == (b.pitch, b.velocity, b.hand)
        assert abs(a.start_s - b.start_s) <= tick and abs(a.end_s - b.end_s) <= tick
    assert np.allclose(np.array(back.sustain_s), np.array(score.sustain_s), atol=tick)
    assert mido.MidiFile(str(path)).type == 1
    with pytest.raises(ScoreError, match="cannot write"):
        save_midi(score, tmp_path / "no_dir" / "x.mid")


def test_round_trip_builtin_pieces(tmp_path: Path) -> None:
    for name, build in BUILTIN_PIECES.items():
        score = build()
        save_midi(score, tmp_path / f"{name}.mid")
        back = get_score(str(tmp_path / f"{name}.mid"))
        assert [(n.pitch, n.hand) for n in back.notes] == [(n.pitch, n.hand) for n in score.notes]
        roll_a, roll_b = score_to_roll(score), score_to_roll(back)
        assert np.array_equal(roll_a.keys, roll_b.keys)


def test_note_and_score_validation() -> None:
    with pytest.raises(ScoreError):
        Note(60, 1.0, 0.5)
    with pytest.raises(ScoreError):
        Note(128, 0.0, 0.5)
    with pytest.raises(ScoreError):
        Note(60, 0.0, 0.5, hand="middle")
    with pytest.raises(ScoreError):
        Score("bad", (), sustain_s=((2.0, 1.0),))
    s = Score("order", (Note(64, 1.0, 2.0), Note(60, 1.0, 2.0), Note(67, 0.0, 1.0)))
    assert [n.pitch for n in s.notes] == [67, 60, 64]


# ------------------------------------------------------------------------------------------------
# Piano roll


def _score(*spans: tuple[int, float, float]) -> Score:
    return Score("t", tuple(Note(p, a, b) for p, a, b in spans))


def test_rounded_roll_basic_rounding_and_minimum_length() -> None:
    roll = score_to_roll(_score((60, 0.0, 0.5), (64, 0.5, 0.51), (67, 0.124, 0.126)), timing="rounded")
    k60, k64, k67 = 60 - 21, 64 - 21, 67 - 21
    assert roll.keys.shape == (11, NUM_KEYS) and roll.keys.dtype == bool
    assert roll.keys[:10, k60].all() and not roll.keys[10, k60]
    assert roll.keys[10, k64] and roll.keys[:, k64].sum() == 1  # 10 ms note: still one step
    assert roll.keys[2, k67] and roll.keys[:, k67].sum() == 1  # round half up: 2.48 -> 2
    assert roll.onsets == ((0, k60), (2, k67), (10, k64))
    assert roll.dt_s == 0.05 and roll.n_steps == 11


def test_rounded_roll_repeated_notes_get_release_gap() -> None:
    k = 60 - 21
    roll = score_to_roll(_score((60, 0.0, 0.5), (60, 0.5, 1.0)), timing="rounded")
    assert roll.keys[:9, k].all() and not roll.keys[9, k] and roll.keys[10:20, k].all()
    assert roll.onsets == ((0, k), (10, k))
    roll2 = score_to_roll(_score((60, 0.0, 0.5), (60, 0.5, 1.0)), repeat_gap_steps=2, timing="rounded")
    assert roll2.keys[:8, k].all() and not roll2.keys[8:10, k].any() and roll2.keys[10, k]
    # a re-strike inside a held note cuts it
    roll3 = score_to_roll(_score((60, 0.0, 2.0), (60, 1.0, 1.5)), timing="rounded")
    assert roll3.keys[:19, k].all() and not roll3.keys[19, k] and roll3.keys[20:30, k].all()
    assert roll3.n_steps == 30
    # a gap that is already there is left alone
    roll4 = score_to_roll(_score((60, 0.0, 0.4), (60, 0.5, 1.0)), timing="rounded")
    assert roll4.keys[:8, k].all() and not roll4.keys[8:10, k].any()
    # gap 0: keys stay down, both onsets listed
    roll5 = score_to_roll(_score((60, 0.0, 0.5), (60, 0.5, 1.0)), repeat_gap_steps=0, timing="rounded")
    assert roll5.keys[:20, k].all() and roll5.onsets == ((0, k), (10, k))


def test_rounded_roll_repeat_closer_than_gap_plus_one_merges() -> None:
    k = 60 - 21
    roll = score_to_roll(_score((60, 0.0, 0.05), (60, 0.05, 0.3)), timing="rounded")  # steps 0 and 1
    assert roll.keys[:6, k].all() and roll.onsets == ((0, k),)


def test_rounded_roll_trim_silence_puts_first_onset_at_step_zero() -> None:
    score = _score((60, 3.0, 3.5), (62, 3.5, 4.0))
    trimmed = score_to_roll(score, timing="rounded")
    assert trimmed.onsets[0][0] == 0 and trimmed.keys[0].any() and trimmed.n_steps == 20
    untrimmed = score_to_roll(score, trim_silence=False, timing="rounded")
    assert untrimmed.onsets[0][0] == 60 and untrimmed.n_steps == 80
    assert not untrimmed.keys[:60].any()
    # pedal before the first note is clipped away by the trim
    pedal = Score("p", score.notes, sustain_s=((0.0, 3.25),))
    roll = score_to_roll(pedal, timing="rounded")
    assert roll.sustain[:5].all() and not roll.sustain[5:].any()


def test_rounded_roll_stretch_lengthens() -> None:
    score = _score((60, 0.0, 1.0), (62, 1.0, 2.0))
    base, slow = score_to_roll(score, timing="rounded"), score_to_roll(score, stretch=1.25, timing="rounded")
    assert base.n_steps == 40 and slow.n_steps == 50
    assert [s for s, _ in slow.onsets] == [0, 25]
    fast = score_to_roll(score, stretch=0.5, timing="rounded")
    assert fast.n_steps == 20


# RoboPianist's timing (the default). Each case is a hand-made MIDI file (120 bpm, 480 ticks per
# beat: 1 tick = 1/960 s, 48 ticks = one 50 ms step) with the roll RoboPianist 1.0.10's
# NoteTrajectory gives it, worked out by hand from its rules and recorded here.


_RAW_NOTES = st.lists(st.tuples(st.integers(21, 108), st.floats(0, 5), st.floats(0.0, 1.5)), min_size=1, max_size=30)
"""Random notes: (pitch, start s, duration s)."""


def _steps(roll_column: np.ndarray) -> list[int]:
    return [int(i) for i in np.flatnonzero(roll_column)]


def test_robopianist_roll_floor_start_ceil_end_and_length(tmp_path: Path) -> None:
    # 60: 67..317 ticks = 0.0698..0.3302 s = steps 1.40..6.60 -> floor 1 .. ceil 7 (exclusive)
    # 64: 480..490 ticks, 10 ms inside step 10 -> one step; 67: exactly 0.5..1.0 s -> 10..19
    events = [(67, _on(60)), (317, _off(60)), (480, _on(64)), (490, _off(64)), (480, _on(67)), (960, _off(67))]
    score = load_midi(_write(tmp_path / "spans.mid", [_track(events)]))
    roll = score_to_roll(score, trim_silence=False)
    assert roll.n_steps == 21  # floor(1.0 s / 50 ms) + 1: the step after the last release is in
    assert _steps(roll.keys[:, 60 - 21]) == [1, 2, 3, 4, 5, 6]
    assert _steps(roll.keys[:, 64 - 21]) == [10]
    assert _steps(roll.keys[:, 67 - 21]) == list(range(10, 20))
    assert not roll.keys[20].any()
    assert roll.onsets == ((1, 60 - 21), (10, 64 - 21), (10, 67 - 21))
    # trimmed: times shift by the first onset (0.0698 s), in seconds, then the same rules
    trimmed = score_to_roll(score)
    assert trimmed.n_steps == 19  # floor((1.0 - 0.0698) / 0.05) + 1
    assert _steps(trimmed.keys[:, 60 - 21]) == [0, 1, 2, 3, 4, 5]  # 0 .. ceil(5.21)
    assert _steps(trimmed.keys[:, 64 - 21]) == [8]  # 0.4302 s -> floor(8.60)
    assert _steps(trimmed.keys[:, 67 - 21]) == list(range(8, 19))  # floor(8.60) .. ceil(18.60)


def test_robopianist_roll_restrike_drops_the_new_notes_first_step(tmp_path: Path) -> None:
    k = 60 - 21
    # back to back at 0.5 s: old note 0..9 kept whole, the new one starts a step late (10 is up)
    back_to_back = [(0, _on(60)), (480, _off(60)), (480, _on(60)), (960, _off(60))]
    roll = score_to_roll(load_midi(_write(tmp_path / "b2b.mid", [_track(back_to_back)])))
    assert _steps(roll.keys[:, k]) == list(range(0, 10)) + list(range(11, 20))
    assert roll.onsets == ((0, k), (11, k))
    # a 30 ms gap (403..432 ticks) falls inside one step: still a re-strike
    short_gap = [(0, _on(60)), (403, _off(60)), (432, _on(60)), (960, _off(60))]
    roll = score_to_roll(load_midi(_write(tmp_path / "gap.mid", [_track(short_gap)])))
    assert _steps(roll.keys[:, k]) == list(range(0, 9)) + list(range(10, 20))
    # a gap of a whole step (0.4..0.5 s) needs nothing dropped
    long_gap = [(0, _on(60)), (384, _off(60)), (480, _on(60)), (960, _off(60))]
    roll = score_to_roll(load_midi(_write(tmp_path / "long.mid", [_track(long_gap)])))
    assert _steps(roll.keys[:, k]) == list(range(0, 8)) + list(range(10, 20))
    # a one-step note re-struck right after a held one disappears (RoboPianist does the same)
    vanishing = [(0, _on(60)), (480, _off(60)), (480, _on(60)), (500, _off(60)), (0, _on(72)), (960, _off(72))]
    roll = score_to_roll(load_midi(_write(tmp_path / "vanish.mid", [_track(vanishing)])))
    assert _steps(roll.keys[:, k]) == list(range(0, 10)) and roll.onsets == ((0, k), (0, 72 - 21))


def test_robopianist_roll_sustain_floors_events_last_wins(tmp_path: Path) -> None:
    # down at 0.1198 s (step 2.40 -> 2), up at 0.5802 s (11.60 -> 11); a pedal change (up then
    # down in one tick) at 0.75 s keeps it down; down and up inside step 26 leaves it up there;
    # down at 1.6 s and never lifted: down to the end
    events = [(0, _on(60)), (1728, _off(60)), (115, _cc64(127)), (557, _cc64(0)), (624, _cc64(127)),
              (720, _cc64(0)), (720, _cc64(127)), (864, _cc64(0)), (1250, _cc64(127)), (1260, _cc64(0)),
              (1536, _cc64(127))]
    score = load_midi(_write(tmp_path / "pedal.mid", [_track(events)]))
    roll = score_to_roll(score)
    assert roll.n_steps == 37  # floor(1.8 s / 50 ms) + 1
    assert _steps(roll.sustain) == list(range(2, 11)) + list(range(13, 18)) + list(range(32, 37))
    rounded = score_to_roll(score, timing="rounded")  # the old convention differs on the same file
    assert _steps(rounded.sustain) != _steps(roll.sustain)


@settings(max_examples=60, deadline=None)
@given(_RAW_NOTES)
def test_robopianist_roll_properties(raw: list[tuple[int, float, float]]) -> None:
    score = _score(*[(p, s, s + d) for p, s, d in raw])
    roll = score_to_roll(score, trim_silence=False)
    fps = 20.0
    assert roll.n_steps == int(max(n.end_s for n in score.notes) * fps + 1e-6) + 1
    padded = np.vstack([np.zeros((1, NUM_KEYS), bool), roll.keys])
    rising = np.argwhere(padded[1:] & ~padded[:-1])
    assert roll.onsets == tuple((int(s), int(k)) for s, k in rising[np.lexsort(rising.T[::-1])])
    for n in score.notes:  # every step of the roll lies inside some note's [floor, ceil) span
        k = n.pitch - 21
        start = int(n.start_s * fps + 1e-6)
        end = max(start + 1, int(np.ceil(n.end_s * fps - 1e-6)))
        assert roll.keys[start + 1 : end, k].all() or any(  # down after its first step ...
            m.pitch == n.pitch and start < int(m.start_s * fps + 1e-6) < end for m in score.notes
        )  # ... unless re-struck inside it


def test_roll_argument_errors() -> None:
    with pytest.raises(ScoreError):
        score_to_roll(Score("empty", ()))
    for kwargs in ({"dt_s": 0.0}, {"stretch": -1.0}, {"repeat_gap_steps": -1}, {"timing": "midi"}):
        with pytest.raises(ValueError):
            score_to_roll(_score((60, 0.0, 1.0)), **kwargs)


def test_goal_and_goals_agree() -> None:
    score = Score("g", tuple(get_score("c_major_chords").notes), sustain_s=((0.0, 1.0), (2.0, 3.0)))
    roll = score_to_roll(score)
    for lookahead in (LOOKAHEAD_STEPS, 0, 3):
        goals = roll.goals(lookahead)
        assert goals.shape == (roll.n_steps, lookahead + 1, GOAL_WIDTH)
        assert goals.dtype == np.float32
        for t in range(roll.n_steps):
            g = roll.goal(t, lookahead)
            assert g.shape == (lookahead + 1, GOAL_WIDTH) and g.dtype == np.float32
            assert np.array_equal(goals[t], g)
    g = roll.goal(roll.n_steps - 3)
    assert np.array_equal(g[:3, :NUM_KEYS], roll.keys[-3:].astype(np.float32))
    assert np.array_equal(g[:3, NUM_KEYS], roll.sustain[-3:].astype(np.float32))
    assert not g[3:].any()
    assert roll.goal(roll.n_steps + 5).sum() == 0
    assert roll.goals() is roll.goals()  # computed once
    assert not roll.goals().flags.writeable and not roll.keys.flags.writeable
    with pytest.raises(IndexError):
        roll.goal(-1)


def test_pianoroll_validates_shapes() -> None:
    with pytest.raises(ValueError):
        PianoRoll(np.zeros((5, 87), bool), np.zeros(5, bool), 0.05, ())
    with pytest.raises(ValueError):
        PianoRoll(np.zeros((5, 88), bool), np.zeros(4, bool), 0.05, ())


@settings(max_examples=60, deadline=None)
@given(
    _RAW_NOTES,
    st.integers(1, 3),
)
def test_rounded_roll_onsets_are_rising_edges_with_release_before(
    raw: list[tuple[int, float, float]], gap: int
) -> None:
    score = _score(*[(p, s, s + d) for p, s, d in raw])
    roll = score_to_roll(score, repeat_gap_steps=gap, timing="rounded")
    padded = np.vstack([np.zeros((1, NUM_KEYS), bool), roll.keys])
    rising = np.argwhere(padded[1:] & ~padded[:-1])
    assert roll.onsets == tuple((int(s), int(k)) for s, k in rising[np.lexsort(rising.T[::-1])])
    assert roll.onsets[0][0] == 0
    for s, k in roll.onsets:
        if s > 0:  # every strike after the start follows >= gap steps of release
            assert not roll.keys[max(0, s - gap) : s, k].any()
    assert roll.keys.any(axis=1)[-1]  # ends at the last release


# ------------------------------------------------------------------------------------------------
# Built-in pieces


def test_builtin_pieces() -> None:
    assert set(BUILTIN_PIECES) >= {
        "twinkle",
        "c_major_scale",
        "c_major_chords",
        "arpeggios",
        "single_note",
    }
    for name in BUILTIN_PIECES:
        score = get_score(name)
        assert score.name == name and score.n_notes > 0
        assert all(21 <= n.pitch <= 108 for n in score.notes)
        assert all(n.hand in ("left", "right") for n in score.notes)
        if name != "single_note":
            assert score.hands == {"left", "right"}
            left = max(n.pitch for n in score.notes if n.hand == "left")
            right = min(n.pitch for n in score.notes if n.hand == "right")
            assert left <= right  # hands do not cross
        roll = score_to_roll(score)
        assert roll.keys.shape[1] == NUM_KEYS and roll.keys[0].any()


def test_twinkle_is_the_full_tune() -> None:
    score = get_score("twinkle")
    melody = [n.pitch for n in score.notes if n.hand == "right"]
    assert len(melody) == 42  # 6 lines of 7 notes
    assert melody[:7] == [60, 60, 67, 67, 69, 69, 67]
    assert melody[35:] == [65, 65, 64, 64, 62, 62, 60]
    starts = sorted({n.start_s for n in score.notes if n.hand == "right"})
    assert starts[1] - starts[0] == pytest.approx(0.6)  # 100 bpm quarter notes
    assert score.duration_s == pytest.approx(48 * 0.6, abs=0.2)


def test_robopianist_style_scales() -> None:
    for name, tonic in (("d_major_scale", 62), ("b_major_scale", 71)):
        score = get_score(name)
        right = [n.pitch for n in score.notes if n.hand == "right"]
        left = [n.pitch for n in score.notes if n.hand == "left"]
        steps = [0, 2, 4, 5, 7, 9, 11, 12, 11, 9, 7, 5, 4, 2, 0]
        assert right == [tonic + 12 + s for s in steps] and left == [tonic - 12 + s for s in steps]
        assert all(n.end_s - n.start_s == pytest.approx(0.5) for n in score.notes)
    black = {1, 3, 6, 8, 10}
    assert sum((n.pitch % 12) in black for n in get_score("b_major_scale").notes) == 2 * 10


def test_single_note_and_get_score_errors(tmp_path: Path) -> None:
    score = get_score("single_note")
    assert [(n.pitch, n.hand) for n in score.notes] == [(60, "right")]
    with pytest.raises(ScoreError) as info:
        get_score("no_such_piece")
    for name in BUILTIN_PIECES:
        assert name in str(info.value)
    with pytest.raises(ScoreError, match=r"missing\.mid"):
        get_score(str(tmp_path / "missing.mid"))


def test_a_corpus_clip_id_names_a_piece_and_an_unknown_name_says_what_is_accepted() -> None:
    from sim_training.music.builtin import get_score
    from sim_training.music.corpus.manifest import load_manifest

    clip = load_manifest().entries[0]
    score = get_score(clip.id)
    assert score.name == clip.id and len(score.notes) > 0
    with pytest.raises(ScoreError, match="corpus clip id"):
        get_score("no_such_piece")
