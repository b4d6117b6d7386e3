"""``make demo``: the main job. Grows with the stack; today it plays a piece with the OT/IK prior.

Writes ``runs/<timestamp>/``: ``report.json``, ``piano_roll.png`` (score vs played, coloured by
finger), ``fingering.csv``, ``hands.mp4`` (when offscreen rendering works) and prints what it
measured.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from omnipianist.cliutil import emit


def run_demo(args: argparse.Namespace) -> int:
    from omnipianist.plots import plot_piano_roll
    from sim_training.env.bench import SimBenchConfig, run_sim_bench
    from sim_training.fingering.piece import play_with_prior, write_fingering_csv

    t0 = time.perf_counter()
    out = Path(args.out) / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"piece": args.piece, "outputs": str(out)}

    video = not args.no_video
    try:
        run = play_with_prior(args.piece, "shadow", video=video)
    except Exception as exc:  # noqa: BLE001 - rendering backends fail in many ways; the play must not
        if not video:
            raise
        report["video_error"] = f"offscreen rendering unavailable ({type(exc).__name__}: {exc}); played without video"
        run = play_with_prior(args.piece, "shadow", video=False)
    report["prior"] = run.summary()
    write_fingering_csv(run.notes, out / "fingering.csv")
    report["piano_roll_png"] = plot_piano_roll(run.roll, run.active, out / "piano_roll.png", fingering=run.notes,
                                               title=f"{args.piece}: OT/IK prior, Shadow hands — F1 "
                                                     f"{run.metrics['f1']:.3f}")
    if run.frames:
        from omnipianist.media import write_video

        report["video"] = write_video(run.frames, out / "hands.mp4", fps=20)
    report["sim_bench"] = run_sim_bench(SimBenchConfig(steps=600, repeats=2))
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    p, b = report["prior"], report["sim_bench"]
    human = "\n".join([
        f"omnipianist demo — {args.piece} played by the zero-training OT/IK prior on simulated Shadow hands",
        f"  step F1 {p['f1']:.3f} (P {p['precision']:.3f} R {p['recall']:.3f}), onset F1 {p['onset_f1']:.3f}, "
        f"note-step F1 {p['note_step_f1']:.3f}; doing nothing scores {p['do_nothing_f1']:.3f}",
        f"  prior step p99 {p['prior_step_ms_p99']:.2f} ms; {p['steps']} control steps at {p['steps_per_s']:.0f} steps/s",
        f"  simulator: {b['env_steps_per_s']:.0f} env steps/s vs raw mj_step {b['raw_mj_step_control_steps_per_s']:.0f} "
        f"(ratio {b['env_over_raw']:.2f}); batched x{b['batched_over_single']:.2f} on {b['batched_threads']} threads",
        f"  outputs in {out}: report.json, piano_roll.png, fingering.csv"
        + (", hands.mp4" if "video" in report else f" (no video: {report.get('video_error', 'disabled')})"),
        f"  wall time {report['wall_s']:.0f} s",
    ])
    emit(report, args.json, human)
    return 0
