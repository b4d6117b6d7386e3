"""Expert training smoke run: trains, checkpoints, resumes where it stopped, and loads as a policy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from omnipianist.command import to_json
from sim_training.env.piano_env import EnvConfig, PianoEnv
from sim_training.experts.cli import TRAIN_EXPERT, add_train_expert_args, config_from_args, format_train_expert
from sim_training.experts.droq import DroQConfig
from sim_training.experts.policy import ExpertPolicy
from sim_training.experts.train import ExpertTrainConfig, config_replace, train_expert

TINY_DROQ = DroQConfig(hidden_width=32, hidden_layers=2, batch_size=32, learning_starts=100)


def _cfg(out: Path, **kw: object) -> ExpertTrainConfig:
    base = ExpertTrainConfig(piece="c_major_scale", out=str(out), n_envs=2, n_threads=1, clip_steps=30,
                             eval_every_steps=10_000, max_env_steps=160, minutes=5.0, show_progress=False,
                             log=False, replay_checkpoint_size=500, droq=TINY_DROQ)
    return config_replace(base, **kw)


def test_train_checkpoint_resume_and_load(tmp_path: Path) -> None:
    out = tmp_path / "expert"
    first = train_expert(_cfg(out))
    assert first["env_steps"] == 160 and first["updates"] == 61  # rounds at steps 100, 101, ..., 160
    assert not first["resumed"]
    for name in ("best.pt", "last.pt", "replay.npz", "curve.json", "curve.png", "result.json"):
        assert (out / name).exists(), name
    curve = json.loads((out / "curve.json").read_text())
    assert [c["env_steps"] for c in curve] == [0, 160]
    # the untrained residual is exactly the prior
    assert curve[0]["f1"] == pytest.approx(first["prior_f1"], abs=1e-12)
    assert 0.0 <= first["best_f1"] <= 1.0 and first["best_f1"] >= first["prior_f1"]

    (out / "last.pt.tmp").write_bytes(b"half-written by a killed run")  # a kill mid-write leaves this
    second = train_expert(_cfg(out, max_env_steps=240))
    assert second["resumed"]
    assert second["env_steps"] == 240 and second["updates"] == 61 + 80  # continued, not restarted
    assert second["wall_s"] > first["wall_s"]
    curve = json.loads((out / "curve.json").read_text())
    assert [c["env_steps"] for c in curve] == [0, 160, 240]

    with pytest.raises(ValueError, match="obs_mode"):
        train_expert(_cfg(out, max_env_steps=300, obs_mode="full"))

    policy = ExpertPolicy.load(out)
    env = PianoEnv("c_major_scale", policy.embodiment, EnvConfig(clip_steps=20, random_start=False),
                   scene=policy.scene)
    obs, _ = env.reset(seed=0)
    policy.reset()
    for _ in range(20):
        action = policy.act(obs)
        assert action.shape == (env.embodiment.action_dim,)
        assert np.all(np.abs(action) <= 1.0) and np.all(np.isfinite(action))
        obs, *_ = env.step(action)


def test_no_prior_full_obs_run(tmp_path: Path) -> None:
    res = TRAIN_EXPERT.execute(_cfg(tmp_path / "plain", use_prior=False, obs_mode="full", max_env_steps=120))
    assert res.env_steps == 120 and not res.with_prior
    written = json.loads((tmp_path / "plain" / "result.json").read_text())
    assert list(to_json(res)) == list(written)  # --json: result.json's keys, in its order
    assert format_train_expert(res).startswith("c_major_scale (shadow): best F1 ")
    policy = ExpertPolicy.load(tmp_path / "plain" / "last.pt")
    assert policy.prior is None
    obs = np.zeros(policy.layout.size, dtype=np.float32)
    assert policy.act(obs).shape == (policy.action_dim,)


def test_cli_flags_build_the_config() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_train_expert_args(parser)
    args = parser.parse_args(["twinkle", "--minutes", "3", "--out", "x", "--no-prior", "--droq-gamma", "0.9",
                              "--droq-update-every", "4", "--obs-mode", "compact"])
    cfg = config_from_args(args)
    assert (cfg.piece, cfg.minutes, cfg.out, cfg.use_prior, cfg.obs_mode) == ("twinkle", 3.0, "x", False, "compact")
    assert cfg.droq.gamma == 0.9 and cfg.droq.update_every == 4 and cfg.droq.residual_scale == 0.1
    assert config_from_args(parser.parse_args(["twinkle"])).use_prior is True
