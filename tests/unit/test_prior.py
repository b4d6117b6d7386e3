"""The OT/IK prior: IK accuracy, a single key pressed and nothing else, fingering CSV round-trip."""

from __future__ import annotations

import numpy as np
import pytest

from omnipianist.errors import ScoreError
from sim_training.fingering.ik import FingertipIK, IKConfig
from sim_training.fingering.piece import (
    NoteFingering,
    play_with_prior,
    read_fingering_csv,
    write_fingering_csv,
)
from sim_training.fingering.prior import OTIKPrior
from sim_training.models.scene import Scene
from tests.conftest import cached_scene


@pytest.mark.parametrize("name", ["shadow", "leap"])
def test_ik_reaches_a_reachable_target_within_2mm(name: str) -> None:
    scene = cached_scene(name)
    ik = FingertipIK(scene, IKConfig(iterations=12))
    q = scene.home_qpos[scene.hand_qpos_adr]
    u_home = [scene.home_ctrl[h.act_ids] for h in ik.hands]
    rng = np.random.default_rng(0)
    for trial in range(3):
        # a posture near home is reachable by construction; its fingertips are the targets (the
        # wrist, which the IK deliberately keeps near home, stays put)
        u_goal = []
        for u, h in zip(u_home, ik.hands, strict=True):
            step = rng.normal(0, 0.12, u.shape) * (h.reg < 1e-4)
            u_goal.append(np.clip(u + step, h.lo, h.hi))
        goal_tips = ik.fingertips(q, u_goal)
        n_f = goal_tips.shape[0] // 2
        targets = [goal_tips[:n_f], goal_tips[n_f:]]
        u = ik.solve(q, u_home, targets, [np.ones(n_f), np.ones(n_f)])
        err = np.linalg.norm(ik.fingertips(q, u) - goal_tips, axis=1)
        assert err.max() < 0.002, f"trial {trial}: fingertip errors (mm) {np.round(err * 1e3, 2)}"


def test_ik_respects_joint_limits(shadow_scene: Scene) -> None:
    ik = FingertipIK(shadow_scene)
    q = shadow_scene.home_qpos[shadow_scene.hand_qpos_adr]
    u0 = [shadow_scene.home_ctrl[h.act_ids] for h in ik.hands]
    far = [np.full((5, 3), 5.0), np.full((5, 3), -5.0)]  # unreachable: drives joints to their limits
    u = ik.solve(q, u0, far, [np.ones(5), np.ones(5)])
    for h, uh in zip(ik.hands, u, strict=True):
        assert np.all(uh >= h.lo - 1e-12) and np.all(uh <= h.hi + 1e-12)


def test_prior_presses_the_single_key_and_nothing_else() -> None:
    run = play_with_prior("single_note", "shadow")
    c4 = 60 - 21
    assert run.active[:, c4].any(), "middle C was pressed"
    others = np.delete(run.active, c4, axis=1)
    assert not others.any(), f"other keys pressed: {np.unique(np.nonzero(others)[1])}"
    assert run.metrics["f1"] > 0.5
    assert len(run.notes) == 1 and run.notes[0].played and run.notes[0].hand is not None


def test_leap_prior_presses_the_single_key() -> None:
    # LEAP's fingertips are ~2 cm wide on 2.25 cm keys: a press can also catch the neighbour key
    # (a known limit of that hand on a full-size keyboard), so only the note itself is asserted.
    run = play_with_prior("single_note", "leap")
    assert run.active[:, 60 - 21].any() and run.notes[0].hand is not None


def test_prior_action_is_in_the_action_space(shadow_scene: Scene) -> None:
    from sim_training.env.piano_env import EnvConfig, PianoEnv

    env = PianoEnv("c_major_chords", shadow_scene.embodiment, EnvConfig(clip_steps=30), scene=shadow_scene)
    prior = OTIKPrior(shadow_scene)
    obs, _ = env.reset(seed=1)
    for _ in range(30):
        a = prior.act(obs)
        assert env.action_space.contains(a.astype(np.float32))
        obs, *_ = env.step(a)


def test_fingering_csv_round_trip(tmp_path) -> None:
    notes = [NoteFingering(0, 0.0, 60, 39, "right", 1, True), NoteFingering(4, 0.2, 48, 27, "left", 5, False),
             NoteFingering(8, 0.4, 50, 29, None, None, False)]
    path = tmp_path / "f.csv"
    write_fingering_csv(notes, path)
    assert read_fingering_csv(path) == notes


def test_fingering_csv_errors_name_file_and_line(tmp_path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("onset_step,onset_s,pitch,key,hand,digit,played\n0,0.0,60,39,middle,1,1\n")
    with pytest.raises(ScoreError, match=r"bad.csv:2"):
        read_fingering_csv(path)
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ScoreError, match="expected columns"):
        read_fingering_csv(path)
    with pytest.raises(ScoreError, match="cannot read"):
        read_fingering_csv(tmp_path / "missing.csv")


def test_forearm_reach_presses_black_keys_the_default_prior_misses(shadow_scene) -> None:
    """Black keys lie ~5 cm further into the piano than the white keys' targets: with the forearm's y
    slide at 0 (the default) the fingers do not get there; with ``forward_gain`` the forearm reaches in."""
    from sim_training.env.piano_env import EnvConfig, PianoEnv
    from sim_training.fingering.prior import OTIKPrior, PriorConfig
    from sim_training.models.piano import KEY_GEOMETRY
    from sim_training.music.corpus import load_manifest

    clip = str(load_manifest().corpus_path("mozart-k80-movement4__05"))
    recall, ty_max = [], []
    for cfg in (PriorConfig(), PriorConfig(forward_gain=1.0, black_forward_m=-0.01)):
        env = PianoEnv(clip, shadow_scene.embodiment, EnvConfig(clip_steps=250, random_start=False, ot_reward=False),
                       scene=shadow_scene)
        prior = OTIKPrior(shadow_scene, cfg)
        obs, _ = env.reset(seed=0)
        prior.reset()
        ty = []
        for _ in range(250):
            obs, *_ = env.step(prior.act(obs))
            ty.append(env.data.qpos[prior.scene.hand_qpos_adr[prior.ty_q_index]].max())
        active, goal, *_ = env.episode_log()
        black = goal[:, KEY_GEOMETRY.is_black]
        assert black.sum() > 20, "the clip should have black-key notes in its first 250 steps"
        recall.append((active[:, KEY_GEOMETRY.is_black] & black).sum() / black.sum())
        ty_max.append(max(ty))
    assert ty_max[0] < 0.01 < 0.02 < ty_max[1]  # the default slide only drifts (contacts)
    assert recall[1] > recall[0] + 0.2, recall
