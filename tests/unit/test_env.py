"""Scene, observation layout, env determinism, batched == sequential, Gymnasium API."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from omnipianist.errors import ContractError, ModelError
from sim_training.constants import GOAL_WIDTH, LOOKAHEAD_STEPS, NUM_KEYS
from sim_training.env import ENV_IDS
from sim_training.env.batched import BatchedPianoEnv
from sim_training.env.observation import ObservationLayout, build_observation
from sim_training.env.piano_env import EnvConfig, PianoEnv
from sim_training.models.embodiment import get_embodiment
from sim_training.models.scene import Scene
from tests.conftest import cached_scene

EXPECTED = {
    # name: (action_dim, n_fingertips, n_hand_joints incl. 2 slides per hand)
    "shadow": (2 * (17 + 2) + 1, 10, 2 * (24 + 2)),
    "leap": (2 * (16 + 2) + 1, 8, 2 * (16 + 2)),
}


def _env(name: str = "shadow", piece: str = "c_major_scale", **cfg: object) -> PianoEnv:
    return PianoEnv(piece, name, EnvConfig(**cfg), scene=cached_scene(name))  # type: ignore[arg-type]


def test_scene_sizes_and_orders(scene: Scene) -> None:
    emb = scene.embodiment
    action_dim, n_tips, n_joints = EXPECTED[emb.name]
    assert emb.action_dim == action_dim and emb.action_names[-1] == "sustain"
    assert emb.n_fingertips == n_tips and len(emb.all_joint_names) == n_joints
    assert emb.all_joint_names[0] == "lh_forearm_tx" and emb.joint_names("right")[0] == "rh_forearm_tx"
    assert scene.action_actuator_ids.shape == (action_dim - 1,)
    assert np.all(scene.action_ctrl_high > scene.action_ctrl_low)
    sizes = scene.sizes()
    assert sizes["nq"] == NUM_KEYS + n_joints, "keys, slides and hand joints only (no free joints)"
    assert sizes["nu"] >= action_dim - 1


def test_full_action_set_and_z_slide() -> None:
    emb = get_embodiment("shadow", "full", forearm_z=True)
    assert emb.action_dim == 2 * (20 + 3) + 1
    assert "rh_THJ5" in emb.action_names and "lh_forearm_tz" in emb.action_names
    with pytest.raises(ModelError, match="unknown"):
        get_embodiment("nonexistent-hand")


def test_home_posture_hovers_without_pressing(scene: Scene) -> None:
    env = PianoEnv("c_major_scale", scene.embodiment, EnvConfig(clip_steps=40, random_start=False), scene=scene)
    env.reset(seed=0)
    home = scene.ctrl_to_action(scene.home_ctrl)
    for _ in range(40):
        env.step(home)
    assert not env.active_keys().any(), "the home posture must not press keys"
    tips = env.fingertip_xyz()
    assert np.all(tips[:, 2] > 0.0225), "fingertips hover above the white key tops"
    assert np.all(np.isfinite(env.data.qpos))
    # hands stay on their side: left fingertips left of right fingertips
    side = scene.fingertip_side
    assert tips[side == 0, 0].max() < tips[side == 1, 0].min()


def test_action_ctrl_round_trip(shadow_scene: Scene) -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, shadow_scene.embodiment.action_dim)
    ctrl = np.zeros(shadow_scene.model.nu)
    shadow_scene.action_to_ctrl(a, ctrl)
    np.testing.assert_allclose(shadow_scene.ctrl_to_action(ctrl, a[-1]), a, atol=1e-12)


@pytest.mark.parametrize("name", ["shadow", "leap"])
def test_observation_layout_and_builder(name: str) -> None:
    emb = get_embodiment(name)
    layout = ObservationLayout.for_embodiment(emb)
    _, n_tips, n_joints = EXPECTED[name]
    assert layout.size == (LOOKAHEAD_STEPS + 1) * GOAL_WIDTH + NUM_KEYS + 1 + 3 * n_tips + n_joints
    if name == "shadow":
        assert layout.size == 1150  # RP1M's 1144 with our 26 joints per hand (24 + 2 slides) vs their 23
    parts = [np.full(f.shape, i + 1.0) for i, f in enumerate(layout.fields)]
    obs = build_observation(layout, *parts)
    for i, f in enumerate(layout.fields):
        assert np.all(obs[f.slice] == i + 1.0), f.name
    with pytest.raises(ValueError, match="fingertip_xyz"):
        build_observation(layout, parts[0], parts[1], parts[2], np.zeros(5), parts[4])


def test_layout_contract_mismatch_names_the_field() -> None:
    shadow = ObservationLayout.for_embodiment(get_embodiment("shadow"))
    leap = ObservationLayout.for_embodiment(get_embodiment("leap"))
    shadow.check_matches(shadow.to_dict())
    with pytest.raises(ContractError, match="embodiment"):
        shadow.check_matches(leap.to_dict())
    d = shadow.to_dict()
    d["fields"][3]["shape"] = [9, 3]
    with pytest.raises(ContractError, match="fingertip_xyz"):
        shadow.check_matches(d)


def test_env_observation_is_built_from_state(shadow_scene: Scene) -> None:
    env = _env(random_start=False)
    obs, _ = env.reset(seed=0)
    expect = build_observation(env.layout, env.roll.goal(0), env.key_state(), 0.0, env.fingertip_xyz(),
                               env.data.qpos[shadow_scene.hand_qpos_adr])
    np.testing.assert_array_equal(obs, expect)
    assert obs.dtype == np.float32 and env.observation_space.contains(obs)
    goal = obs[env.layout.field("goal").slice].reshape(LOOKAHEAD_STEPS + 1, GOAL_WIDTH)
    assert goal[0, :NUM_KEYS].sum() >= 1, "trimmed piece: a note is due at step 0"


def test_bad_actions_are_refused() -> None:
    env = _env()
    env.reset(seed=0)
    a = np.zeros(env.embodiment.action_dim)
    a[3] = np.nan
    with pytest.raises(ValueError, match=env.embodiment.action_names[3]):
        env.step(a)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(5))


def _rollout(env: PianoEnv, seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    observations, rewards_ = [obs], []
    for _ in range(n):
        obs, r, term, trunc, _ = env.step(rng.uniform(-1, 1, env.embodiment.action_dim))
        observations.append(obs)
        rewards_.append(r)
        if term or trunc:
            break
    return np.stack(observations), np.asarray(rewards_)


def test_seeded_env_is_deterministic() -> None:
    o1, r1 = _rollout(_env(clip_steps=30), seed=3, n=30)
    o2, r2 = _rollout(_env(clip_steps=30), seed=3, n=30)
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(r1, r2)
    starts = {_env(clip_steps=10).reset(seed=s)[1]["start_step"] for s in range(8)}
    assert len(starts) > 1, "random clip starts vary with the seed"


def test_batched_equals_sequential() -> None:
    n, steps = 3, 12
    rng = np.random.default_rng(1)
    actions = rng.uniform(-1, 1, (steps, n, get_embodiment("shadow").action_dim))
    seq_obs = []
    for i in range(n):
        env = _env(clip_steps=steps)
        obs, _ = env.reset(seed=i)
        traj = [obs]
        for t in range(steps):
            traj.append(env.step(actions[t, i])[0])
        seq_obs.append(np.stack(traj))
    batch = BatchedPianoEnv([_env(clip_steps=steps) for _ in range(n)], n_threads=2)
    obs, _ = batch.reset(seeds=list(range(n)))
    traj = [obs]
    for t in range(steps):
        traj.append(batch.step(actions[t])[0])
    batch.close()
    np.testing.assert_array_equal(np.stack(traj, axis=1), np.stack(seq_obs))


def test_episode_ends_and_metrics() -> None:
    env = _env(clip_steps=None, random_start=False)
    env.reset(seed=0)
    home = env.scene.ctrl_to_action(env.scene.home_ctrl)
    term = trunc = False
    steps = 0
    while not (term or trunc):
        _, r, term, trunc, info = env.step(home)
        assert np.isfinite(r)
        steps += 1
    assert term and not trunc and steps == env.n_piece_steps
    m = env.episode_metrics()
    assert m["f1"] == pytest.approx(m["do_nothing_f1"]), "pressing nothing scores the do-nothing baseline"
    assert 0.0 <= m["f1"] < 0.5, "silence is trimmed, so doing nothing scores low"


def test_gymnasium_registration_and_checker() -> None:
    from gymnasium.utils.env_checker import check_env

    env = gym.make(ENV_IDS["leap"], piece="single_note", config=EnvConfig(clip_steps=20))
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape
