"""Prior benchmark: F1 of the zero-training OT/IK prior, both embodiments, on the built-in pieces
(RoboPianist-style two-hand D- and B-major scales among them), the corpus test split and any MIDI
files given (RoboPianist's Nocturne), every one of the 88 keys played alone, and the OT-solve and
prior-step latency (p99). The piano roll is RoboPianist's timing (``sim_training.music.roll``).

Targets (exit non-zero on a miss): Shadow mean F1 on the test clips >= 0.75, D-major two hands
>= 0.85 (Shadow), a Nocturne among the extras >= 0.70, all 88 keys pressed and released by both
embodiments, prior step p99 <= 1.5 ms, OT solve p99 <= 0.2 ms.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim_training.constants import LOWEST_MIDI_PITCH

TEST_MEAN_F1_TARGET = 0.75
D_MAJOR_F1_TARGET = 0.85
NOCTURNE_F1_TARGET = 0.70
OT_P99_MS_TARGET = 0.2
PRIOR_STEP_P99_MS_TARGET = 1.5


@dataclass(frozen=True)
class PriorBenchConfig:
    embodiments: str = "shadow,leap"
    test_pieces: int | None = None
    """Corpus test clips played per embodiment (None: the whole test split)."""
    extras: str = ""
    """Comma-separated MIDI files played beside (e.g. RoboPianist's nocturne-trimmed.mid; the
    Nocturne target applies to a file whose name contains 'nocturne')."""
    all_keys: bool = True
    """Play each of the 88 keys alone (twice, with a release between) with each embodiment."""
    workers: int = 2
    """Processes for the F1 sweep (the latency run is done alone first)."""


@dataclass(frozen=True)
class EmbodimentSummary:
    """One embodiment's F1 figures (and, with ``all_keys``, the keys it played alone)."""

    builtin_f1: dict[str, float]
    extras_f1: dict[str, float]
    test_clips: int
    test_mean_f1: float | None
    test_mean_note_step_f1: float | None
    test_mean_onset_f1: float | None
    test_mean_do_nothing_f1: float | None
    keys_played_alone: int | None = field(default=None, metadata={"omit_none": True})
    keys_failed: list[int] | None = field(default=None, metadata={"omit_none": True})


@dataclass(frozen=True)
class Target:
    measured: float
    target: float
    ok: bool


@dataclass(frozen=True)
class PriorBenchResult:
    benchmark: str
    roll_timing: str
    ot_solve_ms_p50: float
    ot_solve_ms_p99: float
    prior_step_ms_p50: float
    prior_step_ms_p99: float
    summary: dict[str, EmbodimentSummary]
    pieces: list[dict[str, Any]]
    """One row per piece played (kind, piece, embodiment, F1s, steps, dropped keys)."""
    targets: dict[str, Target]
    ok: bool
    wall_s: float


def _builtin_names() -> list[str]:
    from sim_training.music import BUILTIN_PIECES

    return [n for n in BUILTIN_PIECES if n != "single_note"]


def _play(job: tuple[str, str, str, str]) -> dict[str, Any]:
    kind, label, piece, embodiment = job
    from sim_training.fingering.piece import play_with_prior

    run = play_with_prior(piece, embodiment)
    m = run.metrics
    return {"kind": kind, "piece": label, "embodiment": embodiment, "f1": round(m["f1"], 4),
            "note_step_f1": round(m["note_step_f1"], 4), "onset_f1": round(m["onset_f1"], 4),
            "precision": round(m["precision"], 4), "recall": round(m["recall"], 4),
            "do_nothing_f1": round(m["do_nothing_f1"], 4), "steps": int(m["steps"]),
            "dropped_keys": run.stats["dropped_keys"]}


def key_alone_score(key: int) -> Any:
    """Key ``key`` (0..87) played alone twice: down 0..1 s, up, down 1.5..2 s."""
    from sim_training.music import Note, Score

    pitch = LOWEST_MIDI_PITCH + key
    return Score(f"key{key}", (Note(pitch, 0.0, 1.0), Note(pitch, 1.5, 2.0)))


def keys_played_alone(embodiment: str) -> dict[str, Any]:
    """Each of the 88 keys alone (:func:`key_alone_score`) with the default prior: the keys that
    were not pressed during both notes and released between them."""
    from sim_training.env.piano_env import EnvConfig, PianoEnv
    from sim_training.env.rollout import rollout
    from sim_training.fingering.prior import OTIKPrior

    failed = []
    scene = None
    for k in range(88):
        env = PianoEnv(key_alone_score(k), embodiment, EnvConfig(clip_steps=None, random_start=False), scene=scene)
        scene = env.scene
        prior = OTIKPrior(env.scene, lookahead=env.config.lookahead)
        rollout(env, prior.act)
        log = env.episode_log()
        active, down = log[0][:, k], np.flatnonzero(log[1][:, k])
        gap = int(np.argmax(np.diff(down))) + 1  # the first index of the second note
        first, second, up = down[:gap], down[gap:], np.arange(down[gap - 1] + 1, down[gap])
        ok = bool(active[first].any() and not active[up].all() and active[second].any())
        if not ok:
            failed.append(k)
    return {"embodiment": embodiment, "keys": 88, "played": 88 - len(failed), "failed": failed}


def run_prior_bench(cfg: PriorBenchConfig) -> PriorBenchResult:
    from sim_training.fingering.piece import play_with_prior
    from sim_training.music.corpus import load_manifest

    t0 = time.perf_counter()
    # 1) latency, alone on the machine: twinkle on Shadow
    run = play_with_prior("twinkle", "shadow")
    latency = {
        "ot_solve_ms_p50": float(np.percentile(run.ot_times_s, 50) * 1e3),
        "ot_solve_ms_p99": float(np.percentile(run.ot_times_s, 99) * 1e3),
        "prior_step_ms_p50": float(np.percentile(run.step_times_s, 50) * 1e3),
        "prior_step_ms_p99": float(np.percentile(run.step_times_s, 99) * 1e3),
    }
    # 2) F1 sweep
    manifest = load_manifest()
    test = manifest.pieces("test")[: cfg.test_pieces] if cfg.test_pieces is not None else manifest.pieces("test")
    extras = [e for e in cfg.extras.split(",") if e]
    for e in extras:
        if not Path(e).is_file():
            raise FileNotFoundError(f"--extras: no such MIDI file {e}")
    embodiments = [e for e in cfg.embodiments.split(",") if e]
    jobs = []
    for emb in embodiments:
        jobs += [("builtin", name, name, emb) for name in _builtin_names()]
        jobs += [("test", p.id, str(manifest.corpus_path(p.id)), emb) for p in test]
        jobs += [("extra", Path(e).stem, e, emb) for e in extras]
    workers = max(1, min(cfg.workers, os.cpu_count() or 1))
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            rows = list(pool.map(_play, jobs))
            keys = list(pool.map(keys_played_alone, embodiments)) if cfg.all_keys else []
    else:
        rows = [_play(j) for j in jobs]
        keys = [keys_played_alone(e) for e in embodiments] if cfg.all_keys else []
    summary: dict[str, EmbodimentSummary] = {}
    for emb in embodiments:
        mine = [r for r in rows if r["embodiment"] == emb]
        corp = [r for r in mine if r["kind"] == "test"]

        def mean(key: str, corp: list[dict[str, Any]] = corp) -> float | None:
            return round(float(np.mean([r[key] for r in corp])), 4) if corp else None

        k = next((x for x in keys if x["embodiment"] == emb), None)
        summary[emb] = EmbodimentSummary(
            builtin_f1={r["piece"]: r["f1"] for r in mine if r["kind"] == "builtin"},
            extras_f1={r["piece"]: r["f1"] for r in mine if r["kind"] == "extra"},
            test_clips=len(corp), test_mean_f1=mean("f1"), test_mean_note_step_f1=mean("note_step_f1"),
            test_mean_onset_f1=mean("onset_f1"), test_mean_do_nothing_f1=mean("do_nothing_f1"),
            keys_played_alone=k["played"] if k is not None else None, keys_failed=k["failed"] if k is not None else None)
    checks: dict[str, tuple[float, float, bool]] = {
        "ot_solve_ms_p99": (latency["ot_solve_ms_p99"], OT_P99_MS_TARGET, latency["ot_solve_ms_p99"] <= OT_P99_MS_TARGET),
        "prior_step_ms_p99": (latency["prior_step_ms_p99"], PRIOR_STEP_P99_MS_TARGET,
                              latency["prior_step_ms_p99"] <= PRIOR_STEP_P99_MS_TARGET),
    }
    shadow = summary.get("shadow")
    if shadow is not None:
        if shadow.test_mean_f1 is not None and cfg.test_pieces is None:
            checks["shadow_test_mean_f1"] = (shadow.test_mean_f1, TEST_MEAN_F1_TARGET,
                                             shadow.test_mean_f1 >= TEST_MEAN_F1_TARGET)
        d = shadow.builtin_f1["d_major_scale"]
        checks["shadow_d_major_scale_f1"] = (d, D_MAJOR_F1_TARGET, d >= D_MAJOR_F1_TARGET)
        for name, f1 in shadow.extras_f1.items():
            if "nocturne" in name.lower():
                checks[f"shadow_{name}_f1"] = (f1, NOCTURNE_F1_TARGET, f1 >= NOCTURNE_F1_TARGET)
    for k in keys:
        checks[f"{k['embodiment']}_keys_played_alone"] = (k["played"], 88, k["played"] == 88)
    return PriorBenchResult(
        benchmark="prior", roll_timing="robopianist", **latency, summary=summary, pieces=rows,
        targets={k: Target(measured=round(float(v[0]), 4), target=v[1], ok=bool(v[2])) for k, v in checks.items()},
        ok=all(v[2] for v in checks.values()), wall_s=round(time.perf_counter() - t0, 1))
