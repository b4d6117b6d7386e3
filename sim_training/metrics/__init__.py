"""Metrics: per-step key F1 (RoboPianist), note-step and sustain F1, onset F1 (mir_eval)."""

from sim_training.metrics.f1 import PRF, do_nothing_f1, note_step_prf, step_prf, sustain_prf
from sim_training.metrics.onsets import ONSET_TOLERANCE_S, OnsetPRF, onset_prf, played_notes

__all__ = [
    "ONSET_TOLERANCE_S",
    "PRF",
    "OnsetPRF",
    "do_nothing_f1",
    "note_step_prf",
    "onset_prf",
    "played_notes",
    "step_prf",
    "sustain_prf",
]
