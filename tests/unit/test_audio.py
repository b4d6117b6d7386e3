"""The WAV of what was played: notes from key activity, pitch, timing, file format, bad input."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from omnipianist.audio import Note, notes_from_activity, synthesize, write_activity_wav


def test_notes_from_activity_runs_and_edges() -> None:
    a = np.zeros((6, 88), bool)
    a[1:3, 48] = True  # C4 for two steps
    a[4:6, 48] = True  # again, held to the end
    a[0, 0] = True  # A0 at the very start
    notes = notes_from_activity(a, 0.05)
    assert [(n.key, round(n.on_s, 6), round(n.off_s, 6)) for n in notes] == [(0, 0.0, 0.05), (48, 0.05, 0.15),
                                                                             (48, 0.2, 0.3)]
    assert Note(48, 0, 1).midi == 69 and Note(48, 0, 1).hz == pytest.approx(440.0)
    with pytest.raises(ValueError, match="steps, keys"):
        notes_from_activity(np.zeros(88), 0.05)
    with pytest.raises(ValueError, match="dt"):
        notes_from_activity(a, float("nan"))


def test_synth_pitch_and_silence() -> None:
    sr = 8000
    y = synthesize([Note(48, 0.1, 0.6)], duration_s=1.0, sample_rate=sr)
    assert y.dtype == np.float32 and len(y) == sr + 1 and np.abs(y).max() <= 1.0
    assert np.abs(y[: int(0.09 * sr)]).max() == 0.0  # silent before the onset
    seg = y[int(0.15 * sr): int(0.55 * sr)]
    spectrum = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
    peak_hz = np.fft.rfftfreq(len(seg), 1 / sr)[np.argmax(spectrum)]
    assert abs(peak_hz - 440.0) < 5.0
    assert np.abs(y[int(0.8 * sr):]).max() == 0.0  # released and silent again


def test_wav_file(tmp_path: Path) -> None:
    a = np.zeros((40, 88), bool)
    a[5:20, [39, 43, 46]] = True  # a C major triad
    info = write_activity_wav(a, 0.05, tmp_path / "played.wav", sample_rate=8000)
    assert info["notes"] == 3 and info["duration_s"] == 2.0
    with wave.open(str(tmp_path / "played.wav")) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        assert w.getnframes() >= 2 * 8000
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    assert np.abs(pcm).max() > 1000  # audible
    assert not (tmp_path / "played.wav.tmp").exists()
