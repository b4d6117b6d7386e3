"""The knob head: samples from plan replays, training, export with parity, the contract's knob table,
and the planner relabelling loop on a tiny case."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from omnipianist.errors import ContractError
from sim_training.experts.planner import REACH_SPACE, PlannerConfig, plan_piece
from sim_training.fingering.knobs import KnobPrior, encode, table_mismatch
from sim_training.fingering.prior import OTIKPrior, PriorConfig
from sim_training.imitation.knobhead import (
    KnobHeadPolicy,
    KnobSamples,
    KnobTrainConfig,
    cached_plan_samples,
    plan_samples,
    relabel_rounds,
    train_knob_head,
)

TINY = PlannerConfig(budget=4, window=10, horizon=10, iterations=1)
FAST = KnobTrainConfig(steps=60, batch_size=64, eval_every=30, val_fraction=0.0)


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, KnobSamples]:
    d = tmp_path_factory.mktemp("plans") / "c_major_scale"
    plan_piece("c_major_scale", d, config=TINY)
    return d, plan_samples([d])


def test_samples_replay_the_plan_and_carry_its_window_choices(planned: tuple[Path, KnobSamples]) -> None:
    d, s = planned
    doc = json.loads((d / "plan.json").read_text())
    assert s.plan_f1["c_major_scale"] == pytest.approx(doc["f1"], abs=1e-12)  # the replay is the plan
    assert s.window_start.sum() == len(doc["windows"]) and s.obs.shape[0] == doc["steps"]
    assert s.obs.shape[1] == s.observation_layout["size"] and s.u.shape[1] == len(REACH_SPACE)
    for w in doc["windows"]:
        i = int(np.flatnonzero(s.step == w["step"])[0])
        want = encode(dataclasses.replace(PriorConfig(), **w["knobs"]), REACH_SPACE)
        np.testing.assert_allclose(s.u[i], want, atol=1e-6)
        assert s.window_start[i]
    assert np.all((s.u >= 0) & (s.u <= 1))


def test_saved_samples_load_and_join_fresh_ones(planned: tuple[Path, KnobSamples], tmp_path: Path) -> None:
    _, s = planned
    s.save(tmp_path / "s.npz")
    back = KnobSamples.load(tmp_path / "s.npz")
    np.testing.assert_array_equal(back.obs, s.obs)
    assert table_mismatch([{"name": k.name, "low": k.low, "high": k.high, "kind": k.kind} for k in back.space],
                          REACH_SPACE) == ""
    both = KnobSamples.concat([back, s])  # a cache read from disk joins samples made by the code
    assert both.obs.shape[0] == 2 * s.obs.shape[0] and both.observation_layout == s.observation_layout
    other = dataclasses.replace(s, window=5)
    with pytest.raises(ValueError, match="cannot be joined"):
        KnobSamples.concat([s, other])


def test_the_samples_cache_follows_a_growing_plans_folder(planned: tuple[Path, KnobSamples], tmp_path: Path) -> None:
    d, s = planned
    cache = tmp_path / "cache.npz"
    other = s.select([])  # a cache that holds no replay of this plan yet
    other.save(cache)
    got = cached_plan_samples([d], cache)
    np.testing.assert_array_equal(got.obs, s.obs)  # the missing plan was replayed ...
    assert KnobSamples.load(cache).pieces == ["c_major_scale"]  # ... and added to the cache
    again = cached_plan_samples([d], cache)  # now read from the cache, bit for bit
    np.testing.assert_array_equal(again.obs, s.obs)
    np.testing.assert_array_equal(again.u, s.u)


def test_knob_prior_with_the_default_knobs_is_the_prior() -> None:
    from sim_training.env.piano_env import PianoEnv

    env = PianoEnv("c_major_scale", "shadow")
    try:
        obs, _ = env.reset(seed=0)
        plain = OTIKPrior(env.scene)
        runner = KnobPrior(OTIKPrior(env.scene), PriorConfig(), REACH_SPACE, 10,
                           lambda o: encode(PriorConfig(), REACH_SPACE))
        runner.reset()
        for _ in range(25):
            a, b = plain.act(obs), runner.act(obs)
            np.testing.assert_allclose(a, b, atol=1e-12)
            obs, *_ = env.step(a)
    finally:
        env.close()


def test_export_round_trip_with_parity_and_the_knob_table_is_enforced(planned: tuple[Path, KnobSamples],
                                                                      tmp_path: Path) -> None:
    import onnx

    from policy_export.export import export_policy
    from policy_export.metadata import attach_metadata, read_metadata
    from policy_export.runtime import Policy
    from policy_export.verify import verify_parity

    _, s = planned
    train_knob_head(s, tmp_path / "head", FAST)
    out = tmp_path / "knobs.onnx"
    r = export_policy(tmp_path / "head", out)
    assert r["kind"] == "knobs" and r["check_max_abs_diff"] < 1e-5
    v = verify_parity(tmp_path / "head", out, n_random=64, n_rollout=64, piece="c_major_scale")
    assert v["parity_ok"] and v["f1_ok"] and v["same_weights"], v
    # the runtime plays what the torch student plays, step for step
    torch_p, ort_p = KnobHeadPolicy(tmp_path / "head"), Policy.load(out, warmup=0)
    assert table_mismatch(ort_p.meta["knob_table"], REACH_SPACE) == ""

    # a model whose knob table is not the code's is refused, naming the knob
    meta = read_metadata(out)
    for change, match in ((lambda m: m["knob_table"][0].__setitem__("high", 0.05), "press_depth_m"),
                          (lambda m: m["knob_table"].reverse(), "names/order"),
                          (lambda m: m.__setitem__("knob_space", "elsewhere"), "knob_space")):
        bad = json.loads(json.dumps(meta))
        change(bad)
        proto = onnx.load_model(str(out))
        del proto.metadata_props[:]
        attach_metadata(proto, bad)
        f = tmp_path / "bad.onnx"
        onnx.save_model(proto, str(f))
        with pytest.raises(ContractError, match=match):
            Policy.load(f)
    from sim_training.env.piano_env import PianoEnv

    env = PianoEnv("c_major_scale", "shadow")
    try:
        obs, _ = env.reset(seed=0)
        torch_p.reset()
        ort_p.reset()
        for _ in range(40):
            a, b = torch_p.act(obs), ort_p.act(obs)
            assert b is not None
            np.testing.assert_allclose(a, b, atol=1e-4)
            obs, *_ = env.step(a)
        nan = obs.copy()
        nan[0] = np.nan
        assert ort_p.act(nan) is None and ort_p.refused_count == 1
    finally:
        env.close()


@pytest.mark.slow
def test_relabel_rounds_change_the_labels_and_keep_the_student(planned: tuple[Path, KnobSamples],
                                                               tmp_path: Path) -> None:
    _, s = planned
    r = relabel_rounds(s, ["c_major_scale"], tmp_path / "dagger", rounds=2, train_config=FAST, planner_config=TINY)
    rounds = r["rounds"]
    assert [x["round"] for x in rounds] == [0, 1, 2]
    assert rounds[0]["labels_added"] == rounds[1]["labels_added"] == int(s.window_start.sum())
    assert rounds[1]["samples"] == rounds[0]["samples"] + rounds[0]["labels_added"]
    # each round's student, trained on the labels added so far, chooses other knobs than the last one
    import torch

    knobs = []
    for x in rounds:
        net = KnobHeadPolicy(x["student"]).net
        with torch.no_grad():
            knobs.append(net(torch.as_tensor(s.obs)).numpy())
    assert not np.allclose(knobs[0], knobs[1], atol=1e-3) and not np.allclose(knobs[1], knobs[2], atol=1e-3)
    f1 = [x["student_f1_mean"] for x in rounds]
    assert f1[-1] >= f1[0] - 1e-9, f1
    assert (tmp_path / "dagger" / "relabel.json").is_file()
