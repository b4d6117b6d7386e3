"""Per-step key F1 (RoboPianist's metric), note-step / sustain F1, onset F1."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sim_training.constants import NUM_KEYS
from sim_training.metrics import (
    ONSET_TOLERANCE_S,
    do_nothing_f1,
    note_step_prf,
    onset_prf,
    played_notes,
    step_prf,
    sustain_prf,
)
from sim_training.music import Note, PianoRoll, Score, get_score, score_to_roll


def _rows(*sets: set[int], k: int = NUM_KEYS) -> np.ndarray:
    out = np.zeros((len(sets), k), dtype=bool)
    for t, keys in enumerate(sets):
        out[t, list(keys)] = True
    return out


def _loop_prf(active: np.ndarray, goal: np.ndarray) -> tuple[float, float, float]:
    """Reference: sklearn's binary P/R/F1 with zero_division=1, one step at a time."""
    ps, rs, fs = [], [], []
    for a_row, g_row in zip(active, goal, strict=True):
        tp = fp = fn = 0
        for a, g in zip(a_row, g_row, strict=True):
            tp += int(a and g)
            fp += int(a and not g)
            fn += int(g and not a)
        p = tp / (tp + fp) if tp + fp else 1.0
        r = tp / (tp + fn) if tp + fn else 1.0
        f = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 1.0
        ps.append(p)
        rs.append(r)
        fs.append(f)
    return float(np.mean(ps)), float(np.mean(rs)), float(np.mean(fs))


# ------------------------------------------------------------------------------------------------
# Step F1


def test_hand_computed_cases() -> None:
    # silent & silent -> 1; pressing in silence -> P0 R1 F0; missing everything -> P1 R0 F0;
    # {0,1} vs {1,2} -> .5/.5/.5; {0} vs {0,1,2,3} -> P1 R.25 F.4; exact -> 1
    goal = _rows(set(), set(), {5}, {0, 1}, {0, 1, 2, 3}, {7, 9})
    active = _rows(set(), {3}, set(), {1, 2}, {0}, {7, 9})
    prf = step_prf(active, goal)
    assert np.allclose(prf.step_precision, [1, 0, 1, 0.5, 1, 1])
    assert np.allclose(prf.step_recall, [1, 1, 0, 0.5, 0.25, 1])
    assert np.allclose(prf.step_f1, [1, 0, 0, 0.5, 0.4, 1])
    assert prf.f1 == pytest.approx((1 + 0 + 0 + 0.5 + 0.4 + 1) / 6)
    assert prf.precision == pytest.approx(4.5 / 6)
    assert prf.recall == pytest.approx(3.75 / 6)
    assert prf.n_steps == 6


def test_all_silent_and_pressing_in_silence() -> None:
    silent = np.zeros((50, NUM_KEYS), dtype=bool)
    assert step_prf(silent, silent).f1 == 1.0
    noisy = silent.copy()
    noisy[:, 40] = True
    prf = step_prf(noisy, silent)
    assert (prf.precision, prf.recall, prf.f1) == (0.0, 1.0, 0.0)


@settings(max_examples=80, deadline=None)
@given(
    hnp.arrays(bool, st.tuples(st.integers(1, 25), st.just(12))),
    st.data(),
)
def test_agrees_with_loop_reference(active: np.ndarray, data: st.DataObject) -> None:
    goal = data.draw(hnp.arrays(bool, active.shape))
    prf = step_prf(active, goal)
    p, r, f = _loop_prf(active, goal)
    assert prf.precision == pytest.approx(p) and prf.recall == pytest.approx(r)
    assert prf.f1 == pytest.approx(f)


def test_agrees_with_loop_reference_on_sparse_piano_arrays() -> None:
    rng = np.random.default_rng(3)
    for density in (0.0, 0.01, 0.05, 0.3):
        active = rng.random((120, NUM_KEYS)) < density
        goal = rng.random((120, NUM_KEYS)) < density
        prf = step_prf(active, goal)
        assert (prf.precision, prf.recall, prf.f1) == pytest.approx(_loop_prf(active, goal))


def test_do_nothing_baseline() -> None:
    goal = _rows(set(), {1}, {1, 2}, set())
    assert do_nothing_f1(goal) == 0.5
    assert do_nothing_f1(goal) == step_prf(np.zeros_like(goal), goal).f1
    # leading silence inflates it: the reason rolls are trimmed (141 steps, int(7.0 / dt) + 1; the
    # last one is silent too)
    score = Score("late", (Note(60, 5.0, 6.0), Note(62, 6.0, 7.0)))
    untrimmed = score_to_roll(score, trim_silence=False).keys
    trimmed = score_to_roll(score).keys
    assert do_nothing_f1(untrimmed) == pytest.approx(101 / 141) and do_nothing_f1(trimmed) == pytest.approx(1 / 41)
    twinkle = score_to_roll(get_score("twinkle")).keys
    assert do_nothing_f1(twinkle) < 0.1


def test_note_step_prf_restricts_to_note_steps() -> None:
    goal = _rows(set(), set(), {1}, {2})
    active = _rows({5}, set(), {1}, set())
    prf = note_step_prf(active, goal)
    assert prf.n_steps == 2 and np.allclose(prf.step_f1, [1, 0]) and prf.f1 == 0.5
    assert step_prf(active, goal).f1 == pytest.approx((0 + 1 + 1 + 0) / 4)
    empty = np.zeros((3, NUM_KEYS), dtype=bool)
    assert note_step_prf(empty, empty).f1 == 1.0  # no note steps: nothing to judge


def test_sustain_prf() -> None:
    goal = np.array([0, 1, 1, 0, 0], dtype=bool)
    active = np.array([0, 1, 0, 1, 0], dtype=bool)
    prf = sustain_prf(active, goal)
    assert np.allclose(prf.step_f1, [1, 1, 0, 0, 1]) and prf.f1 == pytest.approx(0.6)
    with pytest.raises(ValueError):
        sustain_prf(active, goal[:4])


def test_shape_errors() -> None:
    with pytest.raises(ValueError):
        step_prf(np.zeros((3, 88), bool), np.zeros((4, 88), bool))
    with pytest.raises(ValueError):
        step_prf(np.zeros(88, bool), np.zeros(88, bool))


# ------------------------------------------------------------------------------------------------
# Onsets


def _three_notes_roll() -> PianoRoll:
    score = Score("o", (Note(60, 0.0, 0.5), Note(64, 0.5, 1.0), Note(67, 1.0, 1.5)))
    return score_to_roll(score)


def test_played_notes_from_edges() -> None:
    active = _rows({0}, {0, 5}, {5}, set(), {0}, {0})
    intervals, pitches = played_notes(active, 0.05)
    assert pitches.tolist() == [21, 26, 21]
    assert np.allclose(intervals, [[0.0, 0.1], [0.05, 0.15], [0.2, 0.3]])
    empty_i, empty_p = played_notes(np.zeros((4, NUM_KEYS), bool), 0.05)
    assert empty_i.shape == (0, 2) and empty_p.shape == (0,)


def test_onset_exact_and_one_step_late() -> None:
    roll = _three_notes_roll()
    assert ONSET_TOLERANCE_S == 0.05
    exact = onset_prf(roll.keys, roll)
    assert (exact.precision, exact.recall, exact.f1) == (1.0, 1.0, 1.0)
    assert exact.n_reference == 3 and exact.n_played == 3 and exact.n_matched == 3
    late = np.vstack([np.zeros((1, NUM_KEYS), bool), roll.keys])  # every press one step late
    assert onset_prf(late, roll).f1 == 1.0
    very_late = np.vstack([np.zeros((2, NUM_KEYS), bool), roll.keys])  # 100 ms: a miss
    assert onset_prf(very_late, roll).f1 == 0.0


def test_onset_missing_and_extra_notes() -> None:
    roll = _three_notes_roll()
    missing = roll.keys.copy()
    missing[:, 67 - 21] = False
    m = onset_prf(missing, roll)
    assert (m.precision, m.recall, m.f1) == pytest.approx((1.0, 2 / 3, 0.8))
    extra = roll.keys.copy()
    extra[3:6, 50] = True
    e = onset_prf(extra, roll)
    assert (e.precision, e.recall, e.f1) == pytest.approx((0.75, 1.0, 6 / 7))
    assert e.n_played == 4 and e.n_matched == 3
    held = roll.keys.copy()
    held[:, 60 - 21] = True  # held through: one onset, still matched (offsets are ignored)
    assert onset_prf(held, roll).recall == 1.0


def test_onset_empty_cases() -> None:
    roll = _three_notes_roll()
    nothing = np.zeros_like(roll.keys)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        n = onset_prf(nothing, roll)
        assert (n.precision, n.recall, n.f1) == (1.0, 0.0, 0.0)
        empty_roll = PianoRoll(np.zeros((5, NUM_KEYS), bool), np.zeros(5, bool), 0.05, ())
        both = onset_prf(np.zeros((5, NUM_KEYS), bool), empty_roll)
        assert (both.precision, both.recall, both.f1) == (1.0, 1.0, 1.0)
        extra = onset_prf(roll.keys, empty_roll)
        assert (extra.precision, extra.recall, extra.f1) == (0.0, 1.0, 0.0)


def test_onset_reference_follows_stretch_and_repeats() -> None:
    score = Score("r", (Note(60, 0.0, 0.5), Note(60, 0.5, 1.0), Note(62, 1.0, 2.0)))
    roll = score_to_roll(score, stretch=1.25)
    assert onset_prf(roll.keys, roll).f1 == 1.0  # playing the roll exactly is perfect
    merged = roll.keys.copy()
    merged[:, 60 - 21] = merged[:, 60 - 21].any()  # no re-strike of the repeated C
    r = onset_prf(merged, roll)
    assert r.n_reference == 3 and r.recall == pytest.approx(2 / 3)
