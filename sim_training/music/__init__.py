"""Scores: MIDI files and built-in pieces -> notes -> piano roll -> goal observations."""

from sim_training.music.builtin import BUILTIN_PIECES, get_score
from sim_training.music.roll import PianoRoll, score_to_roll
from sim_training.music.score import Note, Score, load_midi, save_midi

__all__ = [
    "BUILTIN_PIECES",
    "Note",
    "PianoRoll",
    "Score",
    "get_score",
    "load_midi",
    "save_midi",
    "score_to_roll",
]
