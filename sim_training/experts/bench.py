"""Expert benchmark (issue: OT-fingered RL experts).

One command, resumable (every stage skips what its output folder already holds):

1. Twinkle (both hands, Shadow): the expert pipeline (prior search + residual DroQ) with
   ``minutes`` of wall clock; target F1 >= 0.95 (RP1M's OT-DroQ: 0.976 after 3M steps).
2. The same budget with ``--no-prior`` (plain DroQ from scratch) for comparison (reported only).
3. ``corpus_pieces`` corpus pieces (train split) through the Ray fan-out with
   ``minutes_per_piece`` each; target: the expert beats its (default) prior on >= 90 % of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TWINKLE_F1_TARGET = 0.95
BEATS_PRIOR_FRACTION_TARGET = 0.9


@dataclass(frozen=True)
class ExpertBenchConfig:
    out: str = "runs/experts"
    minutes: float = 60.0
    """Wall-clock budget of each Twinkle run."""
    corpus_pieces: int = 10
    minutes_per_piece: float = 5.0
    num_cpus: int = 2
    skip_no_prior: bool = False


def _read(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def run_expert_bench(cfg: ExpertBenchConfig) -> dict[str, Any]:
    from sim_training.experts.fanout import train_experts
    from sim_training.experts.pipeline import train_piece_expert
    from sim_training.experts.train import ExpertTrainConfig, train_expert

    out = Path(cfg.out)
    overrides = {"droq_learning_starts": 1000, "droq_init_temperature": 0.1}
    twinkle = train_piece_expert("twinkle", out / "twinkle", "shadow", minutes=cfg.minutes, search_frac=0.25,
                                 train_overrides=overrides, n_threads=2)
    no_prior = None
    if not cfg.skip_no_prior:
        no_prior = _read(out / "twinkle_noprior" / "result.json") or train_expert(ExpertTrainConfig(
            piece="twinkle", out=str(out / "twinkle_noprior"), minutes=cfg.minutes, use_prior=False))
    from sim_training.music.corpus import load_manifest

    manifest = load_manifest()
    summary = train_experts(manifest.root / "manifest.json", out / "corpus10", split="train",
                            max_pieces=cfg.corpus_pieces, minutes_per_piece=cfg.minutes_per_piece,
                            num_cpus=cfg.num_cpus,
                            pipeline_kwargs={"search_frac": 0.5, "train_overrides": overrides}, show_progress=False)
    rows = summary.get("pieces", summary.get("rows", []))
    beats = [r for r in rows if (r.get("expert_f1") or 0) > (r.get("prior_f1") or 0)]
    frac = len(beats) / max(len(rows), 1)
    checks = {
        "twinkle_expert_f1": (twinkle["expert_f1"], TWINKLE_F1_TARGET, twinkle["expert_f1"] >= TWINKLE_F1_TARGET),
        "corpus_beats_prior_fraction": (frac, BEATS_PRIOR_FRACTION_TARGET, frac >= BEATS_PRIOR_FRACTION_TARGET
                                        and len(rows) >= cfg.corpus_pieces),
    }
    return {
        "benchmark": "expert",
        "twinkle": twinkle,
        "twinkle_no_prior": None if no_prior is None else {
            k: no_prior.get(k) for k in ("best_f1", "final_f1", "env_steps", "updates", "wall_s", "env_steps_per_s",
                                         "updates_per_s", "do_nothing_f1")},
        "corpus": {"pieces": len(rows), "beats_prior": len(beats), "rows": rows},
        "targets": {k: {"measured": v[0], "target": v[1], "ok": bool(v[2])} for k, v in checks.items()},
        "ok": all(v[2] for v in checks.values()),
    }
