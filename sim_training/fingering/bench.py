"""Prior benchmark: F1 of the zero-training OT/IK prior on built-in and corpus pieces, both
embodiments, with OT-solve and prior-step latency (p99). Prints the do-nothing F1 beside each F1."""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

TWINKLE_F1_TARGET = 0.75
OT_P99_MS_TARGET = 0.2
PRIOR_STEP_P99_MS_TARGET = 2.0


@dataclass(frozen=True)
class PriorBenchConfig:
    embodiments: str = "shadow,leap"
    corpus_pieces: int = 12
    """Corpus pieces (test split first, then validation) played per embodiment."""
    workers: int = 2
    """Processes for the F1 sweep (the latency run is done alone first)."""


def _builtin_names() -> list[str]:
    from sim_training.music import BUILTIN_PIECES

    return [n for n in BUILTIN_PIECES if n != "single_note"]


def _play(job: tuple[str, str, str]) -> dict[str, Any]:
    label, piece, embodiment = job
    from sim_training.fingering.piece import play_with_prior

    run = play_with_prior(piece, embodiment)
    m = run.metrics
    return {"piece": label, "embodiment": embodiment, "f1": round(m["f1"], 4),
            "note_step_f1": round(m["note_step_f1"], 4), "onset_f1": round(m["onset_f1"], 4),
            "precision": round(m["precision"], 4), "recall": round(m["recall"], 4),
            "do_nothing_f1": round(m["do_nothing_f1"], 4), "steps": int(m["steps"]),
            "dropped_keys": run.stats["dropped_keys"]}


def run_prior_bench(cfg: PriorBenchConfig) -> dict[str, Any]:
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
    corpus = (manifest.pieces("test") + manifest.pieces("validation"))[: cfg.corpus_pieces]
    jobs = []
    for emb in cfg.embodiments.split(","):
        jobs += [(name, name, emb) for name in _builtin_names()]
        jobs += [(p.id, str(manifest.corpus_path(p.id)), emb) for p in corpus]
    workers = max(1, min(cfg.workers, os.cpu_count() or 1))
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            rows = list(pool.map(_play, jobs))
    else:
        rows = [_play(j) for j in jobs]
    summary: dict[str, Any] = {}
    for emb in cfg.embodiments.split(","):
        mine = [r for r in rows if r["embodiment"] == emb]
        corp = [r for r in mine if r["piece"] not in _builtin_names()]
        summary[emb] = {
            "builtin_f1": {r["piece"]: r["f1"] for r in mine if r["piece"] in _builtin_names()},
            "corpus_mean_f1": float(np.mean([r["f1"] for r in corp])) if corp else None,
            "corpus_mean_do_nothing_f1": float(np.mean([r["do_nothing_f1"] for r in corp])) if corp else None,
            "corpus_mean_onset_f1": float(np.mean([r["onset_f1"] for r in corp])) if corp else None,
        }
    twinkle = next(r["f1"] for r in rows if r["piece"] == "twinkle" and r["embodiment"] == "shadow")
    checks = {
        "twinkle_shadow_f1": (twinkle, TWINKLE_F1_TARGET, twinkle >= TWINKLE_F1_TARGET),
        "ot_solve_ms_p99": (latency["ot_solve_ms_p99"], OT_P99_MS_TARGET, latency["ot_solve_ms_p99"] <= OT_P99_MS_TARGET),
        "prior_step_ms_p99": (latency["prior_step_ms_p99"], PRIOR_STEP_P99_MS_TARGET,
                              latency["prior_step_ms_p99"] <= PRIOR_STEP_P99_MS_TARGET),
    }
    return {
        "benchmark": "prior", **latency, "summary": summary, "pieces": rows,
        "targets": {k: {"measured": round(v[0], 4), "target": v[1], "ok": bool(v[2])} for k, v in checks.items()},
        "ok": all(v[2] for v in checks.values()), "wall_s": round(time.perf_counter() - t0, 1),
    }
