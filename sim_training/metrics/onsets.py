"""Note-onset F1 (what a listener judges): played notes vs the piano roll's notes, via mir_eval.

Onset tolerance: ``ONSET_TOLERANCE_S = 0.05`` s, mir_eval's (and MIREX's) default, which is
exactly one control step at 20 Hz. Onsets are only known to one step here, so a smaller
tolerance would demand step-exact presses, while a press one step late (the usual lag of a
position-controlled finger, measured in docs/experts.md) still counts and two steps late (100 ms, clearly
audible) does not. mir_eval rounds onset distances to 4 decimals, so "one step" matches
reliably despite float error. Offsets are ignored (``offset_ratio=None``); pitch must match
exactly (the pitches are keys).

Empty cases use the step-F1 convention: no reference and no played notes -> 1, 1, 1;
played notes but no reference -> precision 0, recall 1, F1 0; reference but nothing played ->
precision 1, recall 0, F1 0. mir_eval is not called in those cases (it warns on empty input).
"""

from __future__ import annotations

from dataclasses import dataclass

import mir_eval
import numpy as np

from sim_training.constants import LOWEST_MIDI_PITCH, NUM_KEYS
from sim_training.music.roll import PianoRoll

ONSET_TOLERANCE_S: float = 0.05
"""Onset matching window, seconds (= one control step at 20 Hz; mir_eval's default)."""


@dataclass(frozen=True)
class OnsetPRF:
    """Onset precision/recall/F1 and the note counts behind them."""

    precision: float
    recall: float
    f1: float
    n_reference: int
    n_played: int
    n_matched: int


def _midi_to_hz(pitches: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(pitches, dtype=float) - 69.0) / 12.0)


def played_notes(active: np.ndarray, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Notes from key rising/falling edges of active (T, 88) bool, steps of dt_s seconds.

    Returns (intervals (N, 2) float64 seconds [onset, release), pitches (N,) int MIDI), sorted by
    onset then pitch; a key still down at the end is released at T*dt_s.
    Raises ValueError if active is not (T, 88) or dt_s <= 0.
    """
    a = np.asarray(active).astype(bool, copy=False)
    if a.ndim != 2 or a.shape[1] != NUM_KEYS:
        raise ValueError(f"active must be (T, {NUM_KEYS}), got {a.shape}")
    if not dt_s > 0:
        raise ValueError(f"dt_s must be positive, got {dt_s}")
    padded = np.zeros((a.shape[0] + 2, NUM_KEYS), dtype=np.int8)
    padded[1:-1] = a
    edges = np.diff(padded, axis=0)  # (T+1, 88): +1 rising at step s, -1 falling at step e
    # nonzero on the key-major view gives (key, step) sorted by key then step, so the k-th
    # rising edge and the k-th falling edge belong to the same note.
    keys, starts = np.nonzero(edges.T == 1)
    _, ends = np.nonzero(edges.T == -1)
    order = np.lexsort((keys, starts))
    intervals = np.stack([starts[order], ends[order]], axis=1).astype(np.float64) * dt_s
    pitches = keys[order].astype(np.int64) + LOWEST_MIDI_PITCH
    return intervals.reshape(-1, 2), pitches


def _reference_notes(roll: PianoRoll) -> tuple[np.ndarray, np.ndarray]:
    """(intervals (N, 2) s, pitches (N,) MIDI) of every onset in the roll."""
    if not roll.onsets:
        return np.zeros((0, 2)), np.zeros(0, dtype=np.int64)
    onsets = np.asarray(roll.onsets, dtype=np.int64)
    t = roll.n_steps
    ends = np.empty(len(onsets), dtype=np.int64)
    for i, (s, k) in enumerate(onsets):
        released = np.flatnonzero(~roll.keys[s + 1 :, k])
        end = s + 1 + int(released[0]) if released.size else t
        later = onsets[(onsets[:, 1] == k) & (onsets[:, 0] > s), 0]
        ends[i] = min(end, int(later.min())) if later.size else end
    intervals = np.stack([onsets[:, 0], ends], axis=1).astype(np.float64) * roll.dt_s
    return intervals, onsets[:, 1] + LOWEST_MIDI_PITCH


def onset_prf(
    active: np.ndarray, roll: PianoRoll, onset_tolerance_s: float = ONSET_TOLERANCE_S
) -> OnsetPRF:
    """Onset-only note P/R/F1 of active keys (T', 88) against the notes of ``roll``.

    Both are on the roll's time base (step * roll.dt_s), so stretch and trim match; T' may
    differ from the roll's T. Raises ValueError on a malformed ``active``.
    """
    est_int, est_pitch = played_notes(active, roll.dt_s)
    ref_int, ref_pitch = _reference_notes(roll)
    n_ref, n_est = len(ref_pitch), len(est_pitch)
    if n_ref == 0 and n_est == 0:
        return OnsetPRF(1.0, 1.0, 1.0, 0, 0, 0)
    if n_ref == 0:
        return OnsetPRF(0.0, 1.0, 0.0, 0, n_est, 0)
    if n_est == 0:
        return OnsetPRF(1.0, 0.0, 0.0, n_ref, 0, 0)
    precision, recall, f1, _ = mir_eval.transcription.precision_recall_f1_overlap(
        ref_int,
        _midi_to_hz(ref_pitch),
        est_int,
        _midi_to_hz(est_pitch),
        onset_tolerance=onset_tolerance_s,
        offset_ratio=None,
    )
    n_matched = round(precision * n_est)
    return OnsetPRF(float(precision), float(recall), float(f1), n_ref, n_est, n_matched)
