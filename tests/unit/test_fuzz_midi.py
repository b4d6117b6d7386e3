"""Property-based fuzzing of the MIDI reader: any bytes give a Score or a ScoreError, never another error.

Inputs are random bytes, and a valid MIDI file (the built-in Twinkle, written by ``save_midi``) with
bytes flipped, inserted or cut off. Fast tier: 150 cases per property; slow tier (``-m slow``): 10k.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnipianist.errors import ScoreError
from sim_training.music import get_score
from sim_training.music.score import Score, load_midi, save_midi

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def valid_midi() -> bytes:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "twinkle.mid"
        save_midi(get_score("twinkle"), path)
        return path.read_bytes()


@functools.cache
def _scratch() -> Path:
    fd, name = tempfile.mkstemp(suffix=".mid", prefix="omnipianist-fuzz-")
    os.close(fd)
    return Path(name)


def _read(data: bytes) -> None:
    path = _scratch()
    path.write_bytes(data)
    try:
        score = load_midi(path)
    except ScoreError as exc:
        assert str(path) in str(exc)  # the error names the file
        return
    assert isinstance(score, Score) and score.notes


mutations = st.lists(
    st.tuples(st.sampled_from(["flip", "insert", "delete"]), st.integers(0, 10_000), st.integers(0, 255)),
    min_size=1, max_size=6,
)


def _mutate(ops: list[tuple[str, int, int]], cut: int | None) -> bytes:
    data = bytearray(valid_midi())
    for op, where, value in ops:
        i = where % max(len(data), 1)
        if op == "flip" and data:
            data[i] ^= value or 1
        elif op == "insert":
            data.insert(i, value)
        elif data:
            del data[i]
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    return bytes(data)


@FAST
@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    _read(data)
    _read(b"MThd" + data)


@FAST
@given(mutations, st.none() | st.integers(0, 10_000))
def test_mutated_valid_file(ops: list[tuple[str, int, int]], cut: int | None) -> None:
    _read(_mutate(ops, cut))


@pytest.mark.slow
@SLOW
@given(st.binary(max_size=400))
def test_random_bytes_10k(data: bytes) -> None:
    _read(data)
    _read(b"MThd" + data)


@pytest.mark.slow
@SLOW
@given(mutations, st.none() | st.integers(0, 10_000))
def test_mutated_valid_file_10k(ops: list[tuple[str, int, int]], cut: int | None) -> None:
    _read(_mutate(ops, cut))
