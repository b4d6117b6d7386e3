"""Play a whole piece with the OT/IK prior; the fingering of every note; CSV in and out."""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from omnipianist.errors import ScoreError
from sim_training.constants import HAND_SIDES, LOWEST_MIDI_PITCH
from sim_training.env.piano_env import EnvConfig, PianoEnv
from sim_training.env.rollout import rollout
from sim_training.fingering.assignment import assign_fingers
from sim_training.fingering.prior import OTIKPrior, PriorConfig
from sim_training.models.embodiment import Embodiment
from sim_training.music import PianoRoll, Score

CSV_FIELDS = ("onset_step", "onset_s", "pitch", "key", "hand", "digit", "played")


@dataclass(frozen=True)
class NoteFingering:
    """The finger that took one note: ``digit`` 1 = thumb, 2 = index, ... (piano convention)."""

    onset_step: int
    onset_s: float
    pitch: int
    key: int
    hand: str | None
    """"left" | "right", or None when no finger could take the note (dropped)."""
    digit: int | None
    played: bool
    """Whether the key was active at some step of the note."""


@dataclass
class PriorRun:
    """What a whole-piece play with the prior produced."""

    roll: PianoRoll
    embodiment: str
    active: np.ndarray = field(repr=False)
    metrics: dict[str, float]
    notes: list[NoteFingering] = field(repr=False)
    step_times_s: np.ndarray = field(repr=False)
    ot_times_s: np.ndarray = field(repr=False)
    wall_s: float = 0.0
    frames: list[np.ndarray] = field(default_factory=list, repr=False)
    stats: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, float | int | str]:
        return {
            "embodiment": self.embodiment, **{k: float(v) for k, v in self.metrics.items()},
            "steps": int(self.metrics["steps"]),
            "prior_step_ms_p50": float(np.percentile(self.step_times_s, 50) * 1e3),
            "prior_step_ms_p99": float(np.percentile(self.step_times_s, 99) * 1e3),
            "steps_per_s": float(self.metrics["steps"] / max(self.wall_s, 1e-9)),
            **self.stats,
        }


def play_with_prior(
    piece: str | Score | PianoRoll,
    embodiment: str | Embodiment = "shadow",
    config: PriorConfig | None = None,
    *,
    env: PianoEnv | None = None,
    video: bool = False,
    stretch: float = 1.0,
    seed: int = 0,
) -> PriorRun:
    """Play the whole piece closed-loop with the prior and measure it."""
    env = env or PianoEnv(piece, embodiment, EnvConfig(clip_steps=None, random_start=False, stretch=stretch),
                          render_mode="rgb_array" if video else None)
    prior = OTIKPrior(env.scene, config, lookahead=env.config.lookahead)
    per_step: list[dict[int, tuple[int, int]]] = []
    ep = rollout(env, prior.act, seed=seed, frames=video,
                 on_step=lambda t, action, e: per_step.append(dict(prior.last_fingering)))
    active, metrics = ep.active, ep.metrics
    notes = note_fingering(env.roll, per_step, active)
    run = PriorRun(roll=env.roll, embodiment=env.embodiment.key, active=active, metrics=metrics, notes=notes,
                   step_times_s=ep.act_times_s, ot_times_s=_ot_solve_times(env), wall_s=ep.wall_s, frames=ep.frames,
                   stats={"dropped_keys": prior.stats.dropped_keys, "gated_presses": prior.stats.gated_presses})
    if env.render_mode:
        env.close()
    return run


def _ot_solve_times(env: PianoEnv, n: int = 2000, seed: int = 0) -> np.ndarray:
    """Per-call time of the OT solve at 10 (or 8) fingertips x 1..10 keys on random key sets."""
    rng = np.random.default_rng(seed)
    tips = env.fingertip_xyz()
    targets = env.scene.key_target_xyz_m
    out = np.zeros(n)
    for i in range(n):
        keys = np.sort(rng.choice(88, size=int(rng.integers(1, min(10, tips.shape[0]) + 1)), replace=False))
        t0 = time.perf_counter()
        assign_fingers(tips, targets[keys], keys)
        out[i] = time.perf_counter() - t0
    return out


def note_fingering(roll: PianoRoll, per_step: list[dict[int, tuple[int, int]]],
                   active: np.ndarray) -> list[NoteFingering]:
    """The finger assigned at each note's onset step (and whether the note sounded)."""
    notes = []
    keys = roll.keys
    for step, key in roll.onsets:
        end = step
        while end < roll.n_steps and keys[end, key]:
            end += 1
        hf = per_step[step].get(key) if step < len(per_step) else None
        played = bool(active[step:min(end, len(active)), key].any()) if step < len(active) else False
        notes.append(NoteFingering(
            onset_step=int(step), onset_s=float(step * roll.dt_s), pitch=int(key + LOWEST_MIDI_PITCH), key=int(key),
            hand=HAND_SIDES[hf[0]] if hf else None, digit=int(hf[1] + 1) if hf else None, played=played))
    return notes


def write_fingering_csv(notes: list[NoteFingering], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        for n in notes:
            w.writerow({"onset_step": n.onset_step, "onset_s": f"{n.onset_s:.3f}", "pitch": n.pitch, "key": n.key,
                        "hand": n.hand or "", "digit": n.digit if n.digit is not None else "",
                        "played": int(n.played)})


def read_fingering_csv(path: str | Path) -> list[NoteFingering]:
    """Read a fingering CSV; a malformed row raises ScoreError naming the file and line."""
    path = Path(path)
    out = []
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or tuple(reader.fieldnames) != CSV_FIELDS:
                raise ScoreError(f"{path}: expected columns {','.join(CSV_FIELDS)}, got {reader.fieldnames}")
            for line, row in enumerate(reader, start=2):
                try:
                    hand = row["hand"] or None
                    if hand not in (None, "left", "right"):
                        raise ValueError(f"hand {hand!r}")
                    out.append(NoteFingering(
                        onset_step=int(row["onset_step"]), onset_s=float(row["onset_s"]), pitch=int(row["pitch"]),
                        key=int(row["key"]), hand=hand, digit=int(row["digit"]) if row["digit"] else None,
                        played=bool(int(row["played"]))))
                except (ValueError, TypeError) as exc:
                    raise ScoreError(f"{path}:{line}: bad fingering row ({exc})") from exc
    except OSError as exc:
        raise ScoreError(f"{path}: cannot read fingering CSV ({exc.strerror})") from exc
    return out
