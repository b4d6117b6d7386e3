"""``make demo``: the main job — the shipped generalist plays a piece it never trained on, and you see and hear it.

Stages (each prints what it measured; outputs in ``runs/<timestamp>/``):

1. **simulation**: the shipped ONNX generalist (``models/generalist/``) plays the piece on the simulated
   Shadow hands through :class:`policy_export.runtime.Policy` — ``piano_roll.png`` (score vs played,
   coloured by the finger that was there), ``fingering.csv``, ``hands.mp4`` (offscreen rendering; skipped
   with a note when unavailable), ``played.wav`` (the project's synth) and ``score.wav`` for comparison.
2. **ROS 2 graph through the serial hardware-in-the-loop path**: the same model in the full graph —
   score -> policy (+ safety filter) -> hand driver nodes -> Dynamixel Protocol 2.0 bytes over ptys ->
   emulated servos whose physics is the MuJoCo mock -> evaluator — on loopback DDS, lock-step
   (``omnipianist play --hil --record``), in a child process: live F1 (close to stage 1's: the
   servos, not the policy, hold the goals), onset F1, bus figures, and ``ros_run.mcap`` (every topic).

``report.json`` holds every figure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omnipianist.audio import write_activity_wav
from omnipianist.command import Command, to_json
from omnipianist.errors import ConfigError
from omnipianist.media import write_video
from omnipianist.plots import plot_piano_roll
from omnipianist.resources import REPO_ROOT, candidates
from policy_export.runtime import Policy

ROOT = REPO_ROOT


def _shipped_policy(name: str) -> Path:
    found = [c for c in candidates("models", name) if c.is_file()]
    return found[0] if found else candidates("models", name)[0]


DEFAULT_POLICY = _shipped_policy("generalist/shadow.onnx")


def _stage_sim(piece: str, policy_path: Path, out: Path, video: bool, report: dict[str, Any]) -> dict[str, Any]:
    from sim_training.fingering.piece import write_fingering_csv
    from sim_training.imitation.evaluate import play_policy

    policy = Policy.load(policy_path)
    try:
        run = play_policy(piece, policy, video=video)
    except Exception as exc:  # noqa: BLE001 - rendering backends fail in many ways; the play must not
        if not video:
            raise
        report["video_error"] = f"offscreen rendering unavailable ({type(exc).__name__}: {exc}); played without video"
        policy.reset()
        run = play_policy(piece, policy, video=False)
    name = policy.meta["model"]["type"].upper()
    write_fingering_csv(run["notes"], out / "fingering.csv")
    plot_piano_roll(run["roll"], run["active"], out / "piano_roll.png", fingering=run["notes"],
                    title=f"{piece}: {name} generalist ({policy_path.name}), Shadow hands — F1 {run['f1']:.3f}")
    dt = float(run["roll"].dt_s)
    sim = {k: v for k, v in run.items() if k not in ("roll", "active", "notes", "frames")}
    sim["outputs"] = {"piano_roll_png": str(out / "piano_roll.png"), "fingering_csv": str(out / "fingering.csv"),
                      "played_wav": write_activity_wav(run["active"], dt, out / "played.wav"),
                      "score_wav": write_activity_wav(run["roll"].keys, dt, out / "score.wav")}
    if run["frames"]:
        sim["outputs"]["video"] = write_video(run["frames"], out / "hands.mp4", fps=round(1.0 / dt))
    sim["refused_observations"] = policy.refused_count
    return sim


def _stage_ros(piece: str, policy_path: Path, out: Path, timeout_s: float) -> dict[str, Any]:
    """``omnipianist play --hil --record`` in a child process (its own DDS participants, loopback profile)."""
    cmd = [sys.executable, "-m", "omnipianist.cli", "play", piece, "--hil", "--policy", str(policy_path),
           "--report", str(out / "ros_report.json"), "--record", str(out / "ros_run.mcap"), "--json"]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=str(ROOT),
                              env=dict(os.environ))
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"no result within {timeout_s:.0f} s", "command": " ".join(cmd[3:])}
    if proc.returncode != 0:
        return {"ok": False, "error": (proc.stderr or proc.stdout).strip()[-2000:], "command": " ".join(cmd[3:])}
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    r["ok"] = True
    r["wall_s"] = round(time.perf_counter() - t0, 1)
    r["command"] = "omnipianist " + " ".join(cmd[3:])
    r["mcap"] = str(out / "ros_run.mcap")
    return r


@dataclass(frozen=True)
class DemoConfig:
    out: str = "runs"
    """output folder"""
    piece: str = "twinkle"
    """piece to play"""
    policy: str = ""
    """exported .onnx generalist (default: the shipped models/generalist one)"""
    no_video: bool = field(default=False, metadata={"action": "store_true"})
    """skip the MP4 (offscreen rendering)"""
    no_ros: bool = field(default=False, metadata={"action": "store_true"})
    """skip the ROS 2 graph + serial HIL stage"""
    ros_timeout_s: float = 600.0
    """give up on the ROS stage after"""


@dataclass(frozen=True)
class DemoResult:
    """What ``report.json`` holds."""

    piece: str
    policy: str
    outputs: str
    """The run's folder."""
    video_error: str | None = field(default=None, metadata={"omit_none": True})
    sim: dict[str, Any] = field(default_factory=dict)
    ros: dict[str, Any] | None = field(default=None, metadata={"omit_none": True})
    wall_s: float = 0.0


def run_demo(cfg: DemoConfig) -> DemoResult:
    """The stages of the module docstring; writes ``report.json`` into a new folder under ``cfg.out``."""
    t0 = time.perf_counter()
    policy_path = Path(cfg.policy) if cfg.policy else DEFAULT_POLICY
    if not policy_path.exists():
        raise ConfigError(f"{policy_path}: no such policy file (the shipped generalist lives in models/generalist/)")
    out = Path(cfg.out) / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    notes: dict[str, Any] = {}
    sim = _stage_sim(cfg.piece, policy_path, out, not cfg.no_video, notes)
    ros = None
    if not cfg.no_ros:
        ros = _stage_ros(cfg.piece, policy_path, out, cfg.ros_timeout_s)
        if ros.get("ok"):
            ros["f1_minus_sim_f1"] = round(ros["f1"] - sim["f1"], 4)
    report = DemoResult(piece=cfg.piece, policy=str(policy_path), outputs=str(out), sim=sim,
                        video_error=notes.get("video_error"), ros=ros, wall_s=round(time.perf_counter() - t0, 1))
    (out / "report.json").write_text(json.dumps(to_json(report), indent=2, default=str))
    return report


def format_demo(r: DemoResult) -> str:
    s, ros = r.sim, r.ros
    lines = [f"omnipianist demo — {r.piece} (not in the training data) played by {Path(r.policy).name} on simulated "
             f"Shadow hands",
             f"  simulation: step F1 {s['f1']:.3f} (P {s['precision']:.3f} R {s['recall']:.3f}), onset F1 "
             f"{s['onset_f1']:.3f}; doing nothing scores {s['do_nothing_f1']:.3f}; policy p99 {s['act_ms_p99']:.2f} ms "
             f"per step; {s['steps']} steps"]
    if ros is not None and ros.get("ok"):
        bus = ros.get("buses") or {}
        errs = sum(int(b.get("timeouts", 0)) + int(b.get("crc_errors", 0)) for b in bus.values())
        lines.append(f"  ROS 2 graph + serial HIL (score -> policy -> safety -> hand drivers -> pty Dynamixel buses -> "
                     f"MuJoCo): F1 {ros['f1']:.3f} (simulation {s['f1']:.3f}), onset F1 {ros['onset_f1']:.3f}; "
                     f"policy inference p99 {ros.get('inference_ms_p99', float('nan')):.2f} ms; bus timeouts + CRC "
                     f"errors {errs}; {ros['steps']} steps in {ros['wall_s']:.0f} s; recording {Path(ros['mcap']).name}")
    elif ros is not None:
        lines.append(f"  ROS 2 graph + serial HIL FAILED: {ros['error'][-600:]}")
    outs = ", ".join(Path(str(v if not isinstance(v, dict) else v["path"])).name for v in s["outputs"].values())
    lines.append(f"  outputs in {r.outputs}: report.json, {outs}"
                 + ("" if "video" in s["outputs"] else f" (no video: {r.video_error or 'disabled'})"))
    lines.append(f"  wall time {r.wall_s:.0f} s")
    return "\n".join(lines)


def demo_exit_code(r: DemoResult) -> int:
    """1 when the ROS stage ran and failed."""
    return 1 if r.ros is not None and not r.ros.get("ok") else 0


DEMO = Command("demo", "the main job: what `make demo` runs", DemoConfig, run_demo, format_demo, exit_code=demo_exit_code)
