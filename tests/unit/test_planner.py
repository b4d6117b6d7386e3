"""The receding-horizon planner: state round-trips, plans never lose to the default prior over a
window, results do not depend on the worker count, labels at committed states are the committed
actions, a plan plays back as an expert, and bad settings get clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sim_training.env.piano_env import EnvConfig, PianoEnv
from sim_training.experts.pipeline import ActingExpert, load_expert, plan_expert
from sim_training.experts.planner import (
    PLAN_CANDIDATES,
    PLAN_JSON,
    Planner,
    PlannerConfig,
    PlannerError,
    PlannerLabeller,
    load_plan_expert,
    plan_piece,
)
from sim_training.fingering.prior import OTIKPrior, PriorConfig

SMALL = PlannerConfig(budget=6, window=5, horizon=10, iterations=2)
"""A plan of c_major_scale (150 steps) in ~5 s."""


def test_env_and_prior_state_round_trip_is_bit_identical(shadow_scene) -> None:
    env = PianoEnv("c_major_scale", shadow_scene.embodiment, EnvConfig(clip_steps=None, random_start=False),
                   scene=shadow_scene)
    prior = OTIKPrior(shadow_scene)
    obs, _ = env.reset(seed=0)
    for _ in range(23):
        obs, *_ = env.step(prior.act(obs))
    snap, psnap = env.get_state(), prior.state()
    obs_at = obs.copy()
    actions, observations = [], []
    for _ in range(60):
        a = prior.act(obs)
        actions.append(a)
        obs, *_ = env.step(a)
        observations.append(obs)
    metrics, active = env.episode_metrics(), env.episode_log()[0].copy()
    assert metrics["steps"] == 83

    # something else runs in between (another episode, other knobs)
    env.reset(seed=1, options={"start_step": 40})
    prior.reset()
    prior.configure(PriorConfig(press_depth_m=0.02))
    for _ in range(5):
        env.step(prior.act(env._observe()))

    obs = env.set_state(snap)
    prior.restore(psnap)
    prior.configure(PriorConfig())
    np.testing.assert_array_equal(obs, obs_at)
    for i in range(60):
        a = prior.act(obs)
        np.testing.assert_array_equal(a, actions[i])
        obs, *_ = env.step(a)
        np.testing.assert_array_equal(obs, observations[i])
    np.testing.assert_array_equal(env.episode_log()[0], active)
    assert env.episode_metrics() == metrics


def test_set_state_refuses_a_snapshot_of_another_model(shadow_scene) -> None:
    from tests.conftest import cached_scene

    env = PianoEnv("c_major_scale", shadow_scene.embodiment, scene=shadow_scene)
    env.reset(seed=0)
    leap = PianoEnv("c_major_scale", "leap", scene=cached_scene("leap"))
    leap.reset(seed=0)
    with pytest.raises(ValueError, match="physics values"):
        env.set_state(leap.get_state())


@pytest.fixture(scope="module")
def small_plan():
    with Planner("c_major_scale", "shadow", SMALL) as planner:
        return planner.run()


def test_plan_is_never_worse_than_the_default_prior(small_plan) -> None:
    plan = small_plan
    assert plan.actions.shape == (150, 39)
    for w in plan.windows:  # the default knobs are among the candidates of every window
        assert w["horizon_f1"] >= w["default_horizon_f1"], w
    assert plan.metrics["f1"] >= plan.prior_metrics["f1"]
    assert plan.metrics["f1"] > plan.prior_metrics["do_nothing_f1"]
    s = plan.summary()
    assert s["windows"] == 30 and s["plays"] == sum(w["plays"] for w in plan.windows)
    assert 0.0 <= s["f1"] <= 1.0 and s["cpu_s"] > 0


def test_every_candidate_and_its_score_is_kept(tmp_path: Path, small_plan) -> None:
    c = small_plan.candidates
    n = sum(w["plays"] for w in small_plan.windows)
    assert {k: len(v) for k, v in c.items()} == dict.fromkeys(c, n)
    assert c["u"].shape == (n, len(small_plan.space)) and ((c["u"] >= 0) & (c["u"] <= 1)).all()
    for i, w in enumerate(small_plan.windows):  # one default and one chosen per window, scored as plan.json says
        rows = c["window"] == i
        assert (c["step"][rows] == w["step"]).all() and rows.sum() == w["plays"]
        assert c["default"][rows].sum() == 1 and c["chosen"][rows].sum() == 1
        assert c["f1"][rows & c["default"]][0] == pytest.approx(w["default_horizon_f1"], abs=1e-6)
        assert c["f1"][rows & c["chosen"]][0] == pytest.approx(w["horizon_f1"], abs=1e-6)
        assert c["f1"][rows].max() == pytest.approx(w["horizon_f1"], abs=1e-6)
    small_plan.save(tmp_path)
    with np.load(tmp_path / PLAN_CANDIDATES) as saved:
        assert sorted(saved.files) == sorted(c) and np.array_equal(saved["u"], c["u"])


def test_same_seed_same_plan_with_one_and_two_workers(small_plan) -> None:
    for workers in (1, 2):
        cfg = PlannerConfig(**{**SMALL.__dict__, "workers": workers})
        with Planner("c_major_scale", "shadow", cfg) as planner:
            plan = planner.run()
        np.testing.assert_array_equal(plan.actions, small_plan.actions)
        assert [w["knobs"] for w in plan.windows] == [w["knobs"] for w in small_plan.windows]
        assert plan.metrics == small_plan.metrics


def test_robust_scoring_averages_noisy_plays_and_commits_the_noise_free_one(small_plan) -> None:
    """noisy_plays: a candidate's score is the mean F1 over its noise-free play and noisy ones (the same draws
    for every candidate of a window); the committed steps stay the noise-free play's, so the plan replays."""
    cfg = PlannerConfig(**{**SMALL.__dict__, "noisy_plays": 2, "play_noise": 0.2})
    with Planner("c_major_scale", "shadow", cfg) as planner:
        snap = planner.engine.start(60)
        w = planner.plan_window(snap)
        again = planner.plan_window(snap)
        clean = planner._players.play(snap, [(planner.base, None)], cfg.horizon, cfg.window)[0]
        noisy = [planner._players.play(snap, [(planner.base, None)], cfg.horizon, cfg.window,
                                       (cfg.play_noise, (cfg.seed, 60, k)))[0] for k in (1, 2)]
        plan = planner.run()
    assert np.array_equal(w.candidate_f1, again.candidate_f1)  # deterministic
    assert w.candidate_f1_clean[w.default_index] == pytest.approx(clean.f1)
    assert w.default_f1 == pytest.approx((clean.f1 + noisy[0].f1 + noisy[1].f1) / 3)
    assert noisy[0].f1 != clean.f1 or noisy[1].f1 != clean.f1  # the noise reaches the play
    assert "f1_clean" in plan.candidates
    env = PianoEnv("c_major_scale", "shadow", EnvConfig(clip_steps=None, random_start=False))
    obs, _ = env.reset(options={"start_step": 0})
    for a in plan.actions:  # the committed actions are the noise-free plays': they replay the plan's F1
        obs, *_ = env.step(a)
    assert env.episode_metrics()["f1"] == pytest.approx(plan.metrics["f1"], abs=1e-12)
    env.close()


def test_another_seed_searches_differently() -> None:
    cfg = PlannerConfig(**{**SMALL.__dict__, "seed": 7, "adaptive": False})
    with Planner("c_major_scale", "shadow", cfg) as planner:
        w = planner.plan_window(planner.engine.start(60))
    cfg0 = PlannerConfig(**{**SMALL.__dict__, "adaptive": False})
    with Planner("c_major_scale", "shadow", cfg0) as planner:
        w0 = planner.plan_window(planner.engine.start(60))
    assert w.plays == w0.plays == SMALL.budget
    assert w.f1 >= w.default_f1 and w0.f1 >= w0.default_f1


def _attached_labeller(planner: Planner) -> tuple[PlannerLabeller, PianoEnv, np.ndarray]:
    labeller = PlannerLabeller(planner)
    env = PianoEnv("c_major_scale", "shadow", EnvConfig(clip_steps=None, random_start=False), scene=planner.engine.scene)
    labeller.attach(env)
    obs, _ = env.reset(seed=0)
    labeller.reset()
    return labeller, env, obs


def test_labeller_at_committed_states_gives_the_committed_actions(small_plan) -> None:
    with Planner("c_major_scale", "shadow", SMALL) as planner:
        labeller, env, obs = _attached_labeller(planner)
        for t, committed in enumerate(small_plan.actions):
            label = labeller.act(obs)
            np.testing.assert_array_equal(label, committed, err_msg=f"step {t}")
            obs, *_ = env.step(committed)
        assert len(labeller.choices) == len(small_plan.windows)


def test_labeller_replans_from_states_a_student_visits(small_plan) -> None:
    """Off the plan's trajectory the labels differ from the committed actions, and they are the
    prior's action under knobs chosen from the state reached (not the plan's knobs)."""
    with Planner("c_major_scale", "shadow", SMALL) as planner:
        labeller, env, obs = _attached_labeller(planner)
        rng = np.random.default_rng(0)
        differ = 0
        for committed in small_plan.actions[:60]:
            label = labeller.act(obs)
            differ += not np.array_equal(label, committed)
            obs, *_ = env.step(np.clip(label + rng.normal(0, 0.1, label.shape), -1, 1))
        assert differ > 30
        assert len(labeller.choices) == 12
        assert all(c.f1 >= c.default_f1 for c in labeller.choices)


def test_labeller_needs_an_env() -> None:
    with Planner("c_major_scale", "shadow", SMALL) as planner:
        labeller = PlannerLabeller(planner)
        with pytest.raises(RuntimeError, match="attach"):
            labeller.act(np.zeros(10))
        with pytest.raises(ValueError, match="different pieces"):
            labeller.attach(PianoEnv("twinkle", "shadow", scene=planner.engine.scene))


def test_plan_folder_plays_back_as_an_expert(tmp_path: Path, small_plan) -> None:
    from sim_training.imitation.evaluate import evaluate_policy

    r = plan_expert("c_major_scale", tmp_path / "exp", "shadow", SMALL.__dict__)
    assert r["kind"] == "plan" and (tmp_path / "exp" / "plan.png").is_file()
    assert r["expert_f1"] == pytest.approx(small_plan.metrics["f1"], abs=0)
    again = plan_expert("c_major_scale", tmp_path / "exp", "shadow", SMALL.__dict__)
    assert again.get("skipped") is True
    assert load_expert(tmp_path / "exp").kind == "plan"
    played = evaluate_policy("c_major_scale", ActingExpert(tmp_path / "exp"))
    assert played["f1"] == pytest.approx(small_plan.metrics["f1"], abs=0)
    # the plan folder alone (what `omnipianist plan` writes) loads too
    (tmp_path / "exp" / "expert.json").unlink()
    assert load_plan_expert(tmp_path / "exp").kind == "plan"


@pytest.mark.parametrize(("cfg", "match"), [
    (PlannerConfig(budget=0), "budget"),
    (PlannerConfig(window=20, horizon=10), "horizon"),
    (PlannerConfig(iterations=0), "iterations"),
    (PlannerConfig(method="pso"), "method"),  # type: ignore[arg-type]
    (PlannerConfig(noisy_plays=-1), "noisy_plays"),
    (PlannerConfig(noisy_plays=1, play_noise=0.0), "play_noise"),
])
def test_bad_settings_get_clear_errors(cfg: PlannerConfig, match: str) -> None:
    with pytest.raises(PlannerError, match=match):
        Planner("single_note", "shadow", cfg)


def test_a_piece_shorter_than_a_window_is_refused() -> None:
    with Planner("single_note", "shadow", PlannerConfig(window=20, horizon=20)) as planner, \
            pytest.raises(PlannerError, match="shorter than one window"):
        planner.run()


def test_plan_cli_errors_and_json(tmp_path: Path) -> None:
    bad = subprocess.run([sys.executable, "-m", "omnipianist.cli", "plan", "single_note", "--budget", "0"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "budget must be >= 1" in bad.stderr and "Traceback" not in bad.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / PLAN_JSON).write_text("{not json")
    ev = subprocess.run([sys.executable, "-m", "omnipianist.cli", "evaluate", "single_note", "--policy", str(broken)],
                        capture_output=True, text=True, timeout=120)
    assert ev.returncode == 2 and "not valid JSON" in ev.stderr and "Traceback" not in ev.stderr
    out = tmp_path / "plan"
    ok = subprocess.run([sys.executable, "-m", "omnipianist.cli", "plan", "single_note", "--window", "5", "--horizon",
                         "5", "--budget", "4", "--out", str(out), "--plot", "--json"],
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    r = json.loads(ok.stdout)
    assert r["steps"] == 11 and (out / "plan.png").is_file() and (out / PLAN_JSON).is_file()
    assert r["f1"] >= r["prior_f1"]


def test_plan_piece_writes_what_it_reports(tmp_path: Path) -> None:
    r = plan_piece("single_note", tmp_path, config=PlannerConfig(window=5, horizon=5, budget=3))
    doc = json.loads((tmp_path / PLAN_JSON).read_text())
    assert doc["f1"] == r["f1"] and len(doc["windows"]) == 3  # 11 steps: windows of 5, 5, 1
    assert np.load(tmp_path / "actions.npy").shape == (11, 39)


def test_dataset_rollouts_and_relabels_with_the_planner_labeller(tmp_path: Path, small_plan) -> None:
    from sim_training.dataset.collect import CollectConfig, CollectTask, collect
    from sim_training.dataset.labellers import EmbodimentRef, LabellerSpec, NoisyPriorStudent, PieceRef
    from sim_training.dataset.store import DatasetReader

    spec = LabellerSpec("planner", EmbodimentRef(), planner_config=json.dumps(SMALL.__dict__))
    task = CollectTask(PieceRef("c_major_scale", "c_major_scale"), spec)
    store = tmp_path / "store"
    r = collect(store, [task], CollectConfig(noise_std=(0.0,), workers=1, show_progress=False))
    assert r.episodes_added == 1
    reader = DatasetReader(store)
    assert reader.meta["label_source"][0] == "planner"
    # noise-free rollout of the planner labeller = the plan itself
    assert reader.meta["f1"][0] == pytest.approx(small_plan.metrics["f1"], abs=1e-12)
    np.testing.assert_allclose(reader.episode(0).action, small_plan.actions.astype(np.float32))
    rel = collect(store, [task], CollectConfig(mode="relabel", rounds=1, workers=1, show_progress=False),
                  student_factory=lambda round_, url: NoisyPriorStudent(EmbodimentRef(), 0.1))
    assert rel.episodes_added == 1
    reader = DatasetReader(store)
    assert sorted(reader.meta["label_source"].tolist()) == ["planner", "planner-relabel"]


def test_per_hand_planning_is_never_worse_and_plays_back(tmp_path: Path) -> None:
    cfg = PlannerConfig(**{**SMALL.__dict__, "per_hand": True, "budget": 8})
    with Planner("c_major_chords", "shadow", cfg) as planner:
        assert len(planner.u_default) == len(planner.space) + len(planner.right_space)
        plan = planner.run()
        choice = planner.plan_window(planner.engine.start(30))
    assert all(w["horizon_f1"] >= w["default_horizon_f1"] for w in plan.windows)
    assert all("right_knobs" in w and "plan_steps" not in w["right_knobs"] for w in plan.windows)
    assert choice.right is not None and choice.f1 >= choice.default_f1
    plan.piece = "c_major_chords"
    plan.save(tmp_path)
    from sim_training.imitation.evaluate import evaluate_policy

    played = evaluate_policy("c_major_chords", ActingExpert(tmp_path))
    assert played["f1"] == pytest.approx(plan.metrics["f1"], abs=0)


def test_prior_with_the_same_knobs_for_both_hands_is_unchanged(shadow_scene) -> None:
    """configure(cfg, right=cfg) plays exactly like configure(cfg): the per-hand path changes nothing by itself."""
    cfg = PriorConfig(press_depth_m=0.018, hover_m=0.004)
    runs = []
    for right in (None, cfg):
        env = PianoEnv("c_major_chords", shadow_scene.embodiment, EnvConfig(clip_steps=None, random_start=False),
                       scene=shadow_scene)
        prior = OTIKPrior(shadow_scene)
        prior.configure(cfg, right)
        obs, _ = env.reset(seed=0)
        acts = []
        for _ in range(80):
            acts.append(prior.act(obs))
            obs, *_ = env.step(acts[-1])
        runs.append(np.stack(acts))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_bench_subsets_are_spread_over_the_split() -> None:
    from sim_training.experts.bench import spaced

    assert spaced(list(range(77)), 5) == [0, 19, 38, 57, 76]
    assert spaced(list(range(4)), None) == [0, 1, 2, 3] and spaced(list(range(4)), 9) == [0, 1, 2, 3]


def test_plan_video_replays_the_plan(tmp_path: Path) -> None:
    import mujoco

    from sim_training.experts.planner import render_plan

    try:
        mujoco.Renderer(mujoco.MjModel.from_xml_string("<mujoco/>"), 16, 16).close()
    except Exception as exc:  # noqa: BLE001 - no offscreen GL on this machine
        pytest.skip(f"no offscreen rendering: {exc}")
    with Planner("single_note", "shadow", PlannerConfig(window=5, horizon=5, budget=3)) as planner:
        plan = planner.run()
    path = render_plan(plan, "single_note", tmp_path / "hands.mp4")  # raises if the replay differs
    assert Path(path).stat().st_size > 1000
