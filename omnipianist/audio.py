"""Hear what the hands played: key activity -> notes -> a WAV file (the project's own small synth).

No soundfont, no fluidsynth, no download: each note is a few decaying harmonics with a short attack
and a release when the key comes up — enough to hear wrong notes, missed notes and timing. Key ``k``
(0..87) is MIDI pitch ``21 + k`` (A0..C8), equal temperament, A4 = 440 Hz.

``write_activity_wav(active, dt, path)`` is the one-call form (``active``: (T, 88) key-down per control
step, as ``PianoEnv.episode_log()`` and the ROS evaluator record it).
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from omnipianist.fileio import atomic_write

LOWEST_MIDI = 21
SAMPLE_RATE = 22_050
HARMONICS = ((1.0, 1.0), (2.0, 0.5), (3.0, 0.25), (4.0, 0.12))
"""(frequency multiple, relative amplitude) of each partial."""
ATTACK_S, RELEASE_S = 0.005, 0.08


@dataclass(frozen=True)
class Note:
    key: int
    """0..87 (MIDI pitch 21 + key)."""
    on_s: float
    off_s: float

    @property
    def midi(self) -> int:
        return LOWEST_MIDI + self.key

    @property
    def hz(self) -> float:
        return float(440.0 * 2.0 ** ((self.midi - 69) / 12.0))


def notes_from_activity(active: np.ndarray, dt: float) -> list[Note]:
    """(T, K) key-down booleans per step -> the notes (a run of consecutive down steps = one note)."""
    a = np.asarray(active, dtype=bool)
    if a.ndim != 2:
        raise ValueError(f"key activity must be (steps, keys), got shape {a.shape}")
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number of seconds, got {dt!r}")
    padded = np.concatenate([np.zeros((1, a.shape[1]), bool), a, np.zeros((1, a.shape[1]), bool)])
    edges = np.diff(padded.astype(np.int8), axis=0)
    notes = []
    for k in range(a.shape[1]):
        ons, offs = np.flatnonzero(edges[:, k] == 1), np.flatnonzero(edges[:, k] == -1)
        notes += [Note(k, on * dt, off * dt) for on, off in zip(ons, offs, strict=True)]
    return sorted(notes, key=lambda n: (n.on_s, n.key))


def synthesize(notes: list[Note], duration_s: float | None = None, sample_rate: int = SAMPLE_RATE,
               gain: float = 0.25) -> np.ndarray:
    """Mono float32 samples in [-1, 1] (peak-normalised to ``gain`` per voice, soft-clipped overall)."""
    end = max([n.off_s for n in notes], default=0.0) + RELEASE_S
    total = int(round(max(duration_s or 0.0, end) * sample_rate)) + 1
    out = np.zeros(total, dtype=np.float64)
    norm = sum(a for _, a in HARMONICS)
    for n in notes:
        held = max(n.off_s - n.on_s, 1.0 / sample_rate)
        length = int((held + RELEASE_S) * sample_rate)
        t = np.arange(length) / sample_rate
        env = np.minimum(t / ATTACK_S, 1.0) * np.exp(-t * (1.5 + n.hz / 400.0))  # higher notes die faster
        env *= np.clip((held + RELEASE_S - t) / RELEASE_S, 0.0, 1.0)  # release ramp after the key comes up
        wave_ = np.zeros(length)
        for m, a in HARMONICS:
            if m * n.hz < sample_rate / 2:
                wave_ += a * np.sin(2 * np.pi * m * n.hz * t)
        start = int(n.on_s * sample_rate)
        seg = out[start: start + length]
        seg += (gain / norm) * env[: len(seg)] * wave_[: len(seg)]
    return np.tanh(out).astype(np.float32)


def write_wav(samples: np.ndarray, path: str | Path, sample_rate: int = SAMPLE_RATE) -> Path:
    """16-bit mono PCM WAV, written atomically."""
    pcm = (np.clip(np.asarray(samples, dtype=np.float64), -1.0, 1.0) * 32767.0).astype("<i2")

    def write(p: Path) -> None:
        with wave.open(str(p), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(sample_rate)
            w.writeframes(pcm.tobytes())

    path = Path(path)
    atomic_write(path, write)
    return path


def write_activity_wav(active: np.ndarray, dt: float, path: str | Path, sample_rate: int = SAMPLE_RATE) -> dict:
    """Key activity (T, 88) at step ``dt`` -> WAV at ``path``; returns a small summary dict."""
    notes = notes_from_activity(active, dt)
    duration = np.asarray(active).shape[0] * dt
    write_wav(synthesize(notes, duration, sample_rate), path, sample_rate)
    return {"path": str(path), "notes": len(notes), "duration_s": round(float(duration), 3), "sample_rate": sample_rate}
