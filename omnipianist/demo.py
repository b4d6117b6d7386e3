"""``make demo``: the main job. Grows with the stack; today it runs the simulator on a built-in piece.

Writes ``runs/<timestamp>/report.json`` and prints what it measured.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from omnipianist.cliutil import emit


def _play(piece: str, policy: str, seed: int = 0) -> dict[str, Any]:
    from sim_training.env.piano_env import EnvConfig, PianoEnv
    from sim_training.metrics import onset_prf

    env = PianoEnv(piece, "shadow", EnvConfig(clip_steps=None, random_start=False))
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    home = env.scene.ctrl_to_action(env.scene.home_ctrl)
    t0 = time.perf_counter()
    for _ in range(env.n_piece_steps):
        a = home if policy == "home" else rng.uniform(-1, 1, env.embodiment.action_dim)
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            break
    wall = time.perf_counter() - t0
    metrics = env.episode_metrics()
    active, *_ = env.episode_log()
    metrics["onset_f1"] = onset_prf(active, env.roll).f1
    metrics["steps_per_s"] = metrics["steps"] / wall
    env.close()
    return metrics


def run_demo(args: argparse.Namespace) -> int:
    from sim_training.env.bench import SimBenchConfig, run_sim_bench

    out = Path(args.out) / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"piece": args.piece, "outputs": str(out)}
    for policy in ("home", "random"):
        report[f"baseline_{policy}"] = _play(args.piece, policy)
    report["sim_bench"] = run_sim_bench(SimBenchConfig(steps=600, repeats=2))
    (out / "report.json").write_text(json.dumps(report, indent=2))
    b = report["sim_bench"]
    human = "\n".join([
        f"omnipianist demo — {args.piece} on the simulated Shadow hands (outputs in {out})",
        *(f"  {p:7s} policy: F1 {report[f'baseline_{p}']['f1']:.3f}  onset F1 "
          f"{report[f'baseline_{p}']['onset_f1']:.3f}  (do-nothing F1 "
          f"{report[f'baseline_{p}']['do_nothing_f1']:.3f})" for p in ("home", "random")),
        f"  simulator: {b['env_steps_per_s']:.0f} env steps/s, raw mj_step {b['raw_mj_step_control_steps_per_s']:.0f}"
        f" (ratio {b['env_over_raw']:.2f}); batched x{b['batched_over_single']:.2f} on {b['batched_threads']} threads",
        f"  model {b['model']}",
    ])
    emit(report, args.json, human)
    return 0
