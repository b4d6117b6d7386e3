"""The generalist as a residual on the OT/IK prior: data view, training, torch and ORT runtimes, export parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from omnipianist.errors import ContractError
from policy_export.export import export_policy
from policy_export.metadata import read_metadata
from policy_export.runtime import Policy
from policy_export.verify import verify_parity
from sim_training.dataset.collect import CollectConfig, CollectTask, collect
from sim_training.dataset.labellers import EmbodimentRef, LabellerSpec, resolve_piece
from sim_training.dataset.store import DatasetReader
from sim_training.env.observation import ObservationLayout
from sim_training.fingering.prior import OTIKPrior
from sim_training.imitation.data import open_store
from sim_training.imitation.evaluate import evaluate_policy
from sim_training.imitation.model import FMTConfig
from sim_training.imitation.policy import GeneralistPolicy
from sim_training.imitation.residual import PRIOR_FIELD, augment_layout, base_layout, compose
from sim_training.imitation.train import PolicyTrainConfig, train_policy
from sim_training.models.embodiment import get_embodiment
from tests.conftest import cached_scene

EMB = get_embodiment("shadow")
LAYOUT = ObservationLayout.for_embodiment(EMB)
PRIOR = LabellerSpec("prior", EmbodimentRef())
TINY = FMTConfig(d_model=32, n_heads=2, encoder_layers=1, decoder_layers=1)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A prior-labelled store (two built-in pieces, a noisy episode each) and a tiny residual FMT on it."""
    tmp = tmp_path_factory.mktemp("residual")
    store = tmp / "store"
    tasks = [CollectTask(resolve_piece(p), PRIOR) for p in ("single_note", "c_major_chords")]
    collect(store, tasks, CollectConfig(noise_std=(0.05,), show_progress=False))
    cfg = PolicyTrainConfig(store=str(store), out=str(tmp / "run"), minutes=5.0, max_steps=4, batch_size=8,
                            eval_every=2, val_windows=16, warmup_steps=1, threads=1, show_progress=False, log=False,
                            fmt=TINY, residual_on_prior=True)
    train_policy(cfg)
    return {"store": store, "run": tmp / "run", "dir": tmp}


def test_layout_augmentation_round_trip() -> None:
    base = LAYOUT.to_dict()
    aug = augment_layout(base, EMB.action_dim)
    assert aug["size"] == base["size"] + EMB.action_dim
    assert aug["fields"][-1] == {"name": PRIOR_FIELD, "offset": base["size"], "shape": [EMB.action_dim],
                                 "unit": aug["fields"][-1]["unit"]}
    assert base_layout(aug) == base and base_layout(base) is base
    with pytest.raises(ValueError, match="already has"):
        augment_layout(aug, EMB.action_dim)
    np.testing.assert_array_equal(compose(np.array([0.9, -0.5]), np.array([0.3, 0.2])), [1.0, -0.3])


def test_residual_view_of_a_store(run: dict[str, Path]) -> None:
    reader = DatasetReader(run["store"])
    plain, res = open_store(run["store"]), open_store(run["store"], residual_on_prior=True)
    prior = reader.column("prior_action")
    d = LAYOUT.size
    assert res.obs_dim == d + EMB.action_dim and res.observation_layout["fields"][-1]["name"] == PRIOR_FIELD
    np.testing.assert_array_equal(res.obs[:, :d], plain.obs)
    np.testing.assert_array_equal(res.obs[:, d:], prior)
    np.testing.assert_array_equal(res.action, plain.action - prior)
    assert np.abs(res.action).max() == 0.0  # the prior labelled these: its residual on itself is zero


def test_checkpoint_records_the_prior_and_the_policy_adds_it(run: dict[str, Path]) -> None:
    policy = GeneralistPolicy.load(run["run"], noise="zero")
    assert policy.meta["residual_on_prior"] and policy.meta["prior_config"]
    assert policy.obs_dim == LAYOUT.size + EMB.action_dim
    # a network whose output is exactly zero residual plays exactly like the prior
    with torch.no_grad():
        policy.model.head.weight.zero_()
        policy.model.head.bias.zero_()
    lo, hi = policy.model.normalizer.action_low, policy.model.normalizer.action_high
    assert torch.allclose(0.5 * (lo + hi), torch.zeros_like(lo))  # zero-residual data: the range is centred on 0
    r_policy = evaluate_policy("c_major_chords", policy)
    prior = OTIKPrior(cached_scene("shadow"))

    class PriorOnly:
        meta = {"observation_layout": LAYOUT.to_dict()}
        source = "prior"
        embodiment = EMB

        def reset(self) -> None:
            prior.reset()

        def act(self, obs: np.ndarray) -> np.ndarray:
            return np.clip(prior.act(obs), -1.0, 1.0)

    r_prior = evaluate_policy("c_major_chords", PriorOnly())
    assert r_policy["f1"] == r_prior["f1"] and r_policy["f1"] > 0.7


def test_export_and_ort_runtime_match_torch(run: dict[str, Path]) -> None:
    out = run["dir"] / "residual.onnx"
    export_policy(run["run"], out, scene=cached_scene("shadow"))
    meta = read_metadata(out)
    assert meta["residual_on_prior"] and meta["prior_config"] and "prior" in meta["action_formula"]
    assert meta["observation_layout"]["size"] == LAYOUT.size  # the environment's layout; the graph adds the prior
    assert meta["graph"]["inputs"][0]["shape"] == [1, 2, LAYOUT.size + EMB.action_dim]
    ort_p = Policy.load(out, "shadow", scene=cached_scene("shadow"), warmup=1)
    torch_p = GeneralistPolicy.load(run["run"])
    rng = np.random.default_rng(0)
    ort_p.reset()
    torch_p.reset()
    for _ in range(6):
        o = np.zeros(LAYOUT.size, dtype=np.float32)
        o[LAYOUT.field("goal").slice] = rng.random(LAYOUT.field("goal").size) < 0.05
        o[LAYOUT.field("hand_joints").slice] = 0.2 * rng.standard_normal(LAYOUT.field("hand_joints").size)
        np.testing.assert_allclose(ort_p.act(o), torch_p.act(o), atol=1e-4, rtol=0)
    r = verify_parity(run["run"], out, n_random=20, n_rollout=10, piece="single_note")
    assert r["ok"] and r["max_abs_diff"] <= 1e-4 and r["n_rollout"] == 10
    with pytest.raises(ContractError, match="embodiment"):
        Policy.load(out, "leap", warmup=0)
