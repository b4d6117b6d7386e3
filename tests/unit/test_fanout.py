"""Per-piece expert pipeline (search + residual) and its fan-out over pieces (local Ray and in-process)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sim_training.env.piano_env import EnvConfig, PianoEnv
from sim_training.experts.fanout import (
    init_local_ray,
    is_loopback,
    listening_sockets,
    resolve_pieces,
    train_experts,
)
from sim_training.experts.pipeline import PriorExpert, load_expert, train_piece_expert
from sim_training.experts.policy import ExpertPolicy

TINY_TRAIN: dict[str, Any] = {
    "max_env_steps": 40, "n_envs": 2, "clip_steps": 20, "eval_every_steps": 10_000, "replay_checkpoint_size": 100,
    "droq_hidden_width": 16, "droq_hidden_layers": 1, "droq_batch_size": 16, "droq_learning_starts": 20,
}
TINY_PIPELINE: dict[str, Any] = {"minutes": 0.5, "population": 2, "search_overrides": {"max_generations": 1},
                                 "train_overrides": TINY_TRAIN, "method": "search"}
"""The per-piece search + residual DroQ method (the planner is the default; tested below and in test_planner)."""


def _play(expert: Any, piece: str) -> float:
    env = PianoEnv(piece, expert.embodiment, EnvConfig(clip_steps=None, random_start=False), scene=expert.scene)
    obs, _ = env.reset(seed=0, options={"start_step": 0})
    expert.reset()
    for _ in range(env.n_piece_steps):
        action = expert.act(obs)
        assert action.shape == (env.embodiment.action_dim,) and np.all(np.abs(action) <= 1.0)
        obs, *_ = env.step(action)
    return float(env.episode_metrics()["f1"])


def test_pipeline_writes_expert_json_and_loads(tmp_path: Path) -> None:
    out = tmp_path / "single_note"
    r = train_piece_expert("single_note", out, **TINY_PIPELINE)
    meta = json.loads((out / "expert.json").read_text())
    assert meta["kind"] in ("prior", "residual") and meta == {k: v for k, v in r.items()}
    assert meta["searched_f1"] >= meta["prior_f1"]
    assert meta["expert_f1"] >= meta["searched_f1"]
    assert meta["residual_prior_f1"] == pytest.approx(meta["searched_f1"], abs=1e-12)  # same play, two processes
    assert meta["env_steps"] == 40 and meta["updates"] > 0
    assert {"search", "residual", "total"} <= set(meta["wall_s"])
    for name in ("best_prior.json", "search.json", "search.png", "residual/best.pt"):
        assert (out / name).is_file(), name

    expert = load_expert(out)
    f1 = _play(expert, "single_note")
    if meta["kind"] == "prior":
        assert isinstance(expert, PriorExpert)
        assert f1 == pytest.approx(meta["expert_f1"], abs=1e-12)

    # the residual branch of load_expert, on the same folder
    meta_res = {**meta, "kind": "residual"}
    (out / "expert.json").write_text(json.dumps(meta_res))
    assert isinstance(load_expert(out, scene=expert.scene), ExpertPolicy)
    (out / "expert.json").write_text(json.dumps(meta))

    again = train_piece_expert("single_note", out, **TINY_PIPELINE)  # done: returned as is
    assert again.get("skipped") is True and again["expert_f1"] == meta["expert_f1"]


def test_fanout_runs_the_planner_by_default(tmp_path: Path) -> None:
    kw = {"planner_overrides": {"window": 5, "horizon": 5, "budget": 3}}
    s = train_experts("single_note", tmp_path, use_ray=False, pipeline_kwargs=kw, show_progress=False, log=False)
    assert s["trained"] == ["single_note"] and not s["failed"], s["failed"]
    meta = json.loads((tmp_path / "single_note" / "expert.json").read_text())
    assert meta["kind"] == "plan" and meta["expert_f1"] >= meta["prior_f1"]
    assert (tmp_path / "single_note" / "plan.json").is_file()
    expert = load_expert(tmp_path / "single_note")
    assert _play(expert, "single_note") == pytest.approx(meta["expert_f1"], abs=0)
    assert s["rows"][0]["kind"] == "plan"


def test_pieces_from_builtins_folder_and_manifest(tmp_path: Path) -> None:
    assert [j.id for j in resolve_pieces("single_note, c_major_chords")] == ["single_note", "c_major_chords"]
    from sim_training.music.corpus import load_manifest

    manifest = load_manifest()
    jobs = resolve_pieces(str(manifest.root / "manifest.json"), "validation", 2)
    assert [j.id for j in jobs] == [p.id for p in manifest.pieces("validation", 2)]
    assert all(Path(j.piece).is_file() for j in jobs)
    (tmp_path / "b.mid").write_bytes(b"")
    (tmp_path / "a.midi").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("")
    assert [j.id for j in resolve_pieces(tmp_path)] == ["a", "b"]
    from omnipianist.errors import ScoreError

    with pytest.raises(ScoreError, match="not a built-in"):
        resolve_pieces("single_note,no_such_piece")


def test_fanout_in_process_and_resume(tmp_path: Path) -> None:
    kw = {k: v for k, v in TINY_PIPELINE.items() if k != "minutes"}
    s = train_experts("single_note", tmp_path, use_ray=False, minutes_per_piece=0.5, pipeline_kwargs=kw,
                      show_progress=False, log=False)
    assert s["trained"] == ["single_note"] and s["backend"] == "in-process" and not s["failed"]
    s2 = train_experts("single_note", tmp_path, use_ray=False, minutes_per_piece=0.5, pipeline_kwargs=kw,
                       show_progress=False, log=False)
    assert s2["trained"] == [] and s2["skipped"] == ["single_note"] and s2["n"] == 1


@pytest.mark.timeout(900)  # Ray worker start-up is slow on a loaded 2-core machine
def test_fanout_on_local_ray_loopback_only_and_resume(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    kw = {k: v for k, v in TINY_PIPELINE.items() if k != "minutes"}
    init_local_ray(num_cpus=2)
    try:
        socks = listening_sockets()
        assert socks, "no Ray sockets found"
        assert all(is_loopback(s["address"]) for s in socks), [s for s in socks if not is_loopback(s["address"])]
        s = train_experts("single_note,c_major_chords", tmp_path, minutes_per_piece=0.5, pipeline_kwargs=kw,
                          show_progress=False, log=False)
        socks = listening_sockets()  # workers have started by now
        assert all(is_loopback(x["address"]) for x in socks), [x for x in socks if not is_loopback(x["address"])]
    finally:
        ray.shutdown()
    assert sorted(s["trained"]) == ["c_major_chords", "single_note"] and not s["failed"], s["failed"]
    assert s["backend"].startswith("ray")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [r["piece"] for r in summary["rows"]] == ["single_note", "c_major_chords"]
    assert summary["line"].startswith("expert beats prior on ") and summary["line"].endswith("/2 pieces")
    md = (tmp_path / "summary.md").read_text()
    assert "| piece | prior F1 | searched F1 | expert F1 | do-nothing F1 | kind |" in md and "**mean**" in md
    for piece in ("single_note", "c_major_chords"):
        assert (tmp_path / piece / "expert.json").is_file()

    again = train_experts("single_note,c_major_chords", tmp_path, minutes_per_piece=0.5, pipeline_kwargs=kw,
                          show_progress=False, log=False)
    assert again["trained"] == [] and sorted(again["skipped"]) == ["c_major_chords", "single_note"]
    assert again["backend"] == "none"  # nothing to do: Ray not even started
