"""policy_export: the ONNX graph and its contract, the ORT runtime, parity, the benchmark, and every bad input.

Tiny untrained models throughout (weights perturbed off their zero initialisation so the graphs compute
something); the real architecture's latency is `omnipianist bench inference`'s job.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch

from omnipianist.command import to_json
from omnipianist.errors import ContractError
from policy_export import __version__
from policy_export.bench import InferenceBenchConfig, default_checkpoint, run_inference_bench
from policy_export.cli import main_bench_inference, main_export
from policy_export.export import export_policy
from policy_export.metadata import METADATA_KEY, SCHEMA, PolicyFileError, read_metadata
from policy_export.runtime import Policy
from policy_export.verify import VerifyResult, format_parity, histories, verify_parity
from policy_export.verify import main as main_verify
from sim_training.env.observation import ObservationLayout
from sim_training.env.piano_env import EnvConfig, PianoEnv
from sim_training.experts.droq import Actor, DroQConfig, RunningNorm
from sim_training.experts.policy import ExpertPolicy
from sim_training.experts.residual import observation_index
from sim_training.fingering.prior import OTIKPrior, PriorConfig
from sim_training.imitation.evaluate import EVALUATION_KEYS, evaluate_policy
from sim_training.imitation.model import FMTConfig
from sim_training.imitation.policy import ActingPolicy, GeneralistPolicy, load_policy
from sim_training.models.embodiment import get_embodiment
from tests.conftest import cached_scene

TINY_FMT = FMTConfig(d_model=32, n_heads=2, encoder_layers=1, decoder_layers=1)
EMB = get_embodiment("shadow")
LAYOUT = ObservationLayout.for_embodiment(EMB)


# ----------------------------------------------------------------------------------- fixtures
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny generalist checkpoint and its export (K = 10)."""
    tmp = tmp_path_factory.mktemp("tiny")
    ckpt = default_checkpoint(tmp / "run", seed=1, config=TINY_FMT)
    export_policy(ckpt, tmp / "tiny.onnx", scene=cached_scene("shadow"))
    return {"dir": tmp, "ckpt": ckpt, "onnx": tmp / "tiny.onnx"}


def observations(n: int, seed: int = 0) -> list[np.ndarray]:
    """Plausible observations: goal bits, key depressions, fingertips and joints around 0."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        o = np.zeros(LAYOUT.size, dtype=np.float32)
        o[LAYOUT.field("goal").slice] = rng.random(LAYOUT.field("goal").size) < 0.05
        o[LAYOUT.field("key_state").slice] = rng.random(88) * 0.3
        o[LAYOUT.field("fingertip_xyz").slice] = 0.3 * rng.standard_normal(LAYOUT.field("fingertip_xyz").size)
        o[LAYOUT.field("hand_joints").slice] = 0.3 * rng.standard_normal(LAYOUT.field("hand_joints").size)
        out.append(o)
    return out


def rewrite_metadata(src: Path, dst: Path, change: Any) -> Path:
    """Copy ``src`` with its metadata JSON passed through ``change(meta) -> meta | str`` (graph untouched)."""
    model = onnx.load_model(str(src))
    prop = next(p for p in model.metadata_props if p.key == METADATA_KEY)
    new = change(json.loads(prop.value))
    prop.value = new if isinstance(new, str) else json.dumps(new)
    onnx.save_model(model, str(dst))
    return dst


def expert_checkpoint(directory: Path, obs_mode: str = "compact", with_prior: bool = True, seed: int = 0) -> Path:
    """A tiny residual DroQ expert (``best.pt`` as the trainer writes it), its mean head perturbed off zero."""
    torch.manual_seed(seed)
    index = observation_index(LAYOUT, obs_mode)  # type: ignore[arg-type]
    a = EMB.action_dim
    p = int(index.size + (a if with_prior else 0))
    droq = DroQConfig(hidden_width=32, hidden_layers=2)
    actor = Actor(p, a, droq)
    with torch.no_grad():
        actor.mean.weight.normal_(0.0, 0.3)
        actor.mean.bias.normal_(0.0, 0.3)
    norm = RunningNorm(p, droq.obs_clip)
    rng = np.random.default_rng(seed)
    norm.update(rng.normal(0.2, 0.5, size=(64, p)))
    meta = {"format": 1, "kind": "omnipianist-expert", "piece": "single_note",
            "embodiment": {"name": "shadow", "action_set": "reduced", "forearm_z": False, "key": EMB.key},
            "with_prior": with_prior, "obs_mode": obs_mode, "residual_scale": 0.1, "policy_input_dim": p,
            "action_dim": a, "lookahead": LAYOUT.lookahead, "observation_layout": LAYOUT.to_dict(),
            "prior_config": dataclasses.asdict(PriorConfig()), "droq": dataclasses.asdict(droq), "stretch": 1.0}
    directory.mkdir(parents=True, exist_ok=True)
    torch.save({"meta": meta, "actor": actor.state_dict(), "obs_norm": norm.state_dict(), "eval": {},
                "env_steps": 0, "updates": 0}, directory / "best.pt")
    return directory


# ----------------------------------------------------------------------------------- the graph and its contract
def test_export_writes_one_graph_with_the_versioned_contract(tiny: dict[str, Path]) -> None:
    meta = read_metadata(tiny["onnx"])
    assert meta == Policy.read_metadata(tiny["onnx"])
    model = onnx.load_model(str(tiny["onnx"]))
    assert [p.key for p in model.metadata_props] == [METADATA_KEY]
    assert meta["schema"] == SCHEMA == "omnipianist.policy/1" and meta["kind"] == "generalist"
    d, a = LAYOUT.size, EMB.action_dim
    assert [(i.name, [x.dim_value for x in i.type.tensor_type.shape.dim]) for i in model.graph.input] == [
        ("obs_hist", [1, 2, d]), ("noise", [1, 4, a])]
    assert [(o["name"], o["shape"]) for o in meta["graph"]["outputs"]] == [("action_chunk", [1, 4, a])]
    assert meta["observation_layout"] == LAYOUT.to_dict()
    assert [f["unit"] for f in meta["observation_layout"]["fields"]] == [f.unit for f in LAYOUT.fields]
    assert meta["joint_order"] == list(EMB.all_joint_names) and meta["action"]["names"] == list(EMB.action_names)
    scene = cached_scene("shadow")
    per = meta["action"]["scaling"]["per_action"]
    assert [p["name"] for p in per] == list(EMB.action_names[:-1])
    np.testing.assert_array_equal([p["ctrl_high"] for p in per], scene.action_ctrl_high)
    norm = meta["normalization"]
    assert len(norm["observation"]["mean"]) == d and len(norm["action"]["low"]) == a
    assert meta["control_dt"] == 0.05 and meta["lookahead"] == 10 and meta["k_steps"] == 10
    assert (meta["obs_horizon"], meta["pred_horizon"], meta["execute_horizon"]) == (2, 4, 1)
    assert meta["embodiment"]["key"] == "shadow" and len(meta["model"]["sha256"]) == 64
    assert meta["data_card_id"] == "untrained-fmt" and meta["export"]["version"] == __version__
    assert meta["noise"]["default_mode"] == "fixed" and meta["noise"]["used"]


@pytest.mark.parametrize("k", [3, 10])
def test_k_euler_steps_inside_and_the_observation_encoded_once(tiny: dict[str, Path], k: int) -> None:
    out = tiny["dir"] / f"k{k}.onnx"
    if k != 10:
        export_policy(tiny["ckpt"], out, euler_steps=k, scene=cached_scene("shadow"))
    else:
        out = tiny["onnx"]
    graph = onnx.load_model(str(out)).graph
    ops = Counter(n.op_type for n in graph.node)
    # one self-attention per encoder layer, once; self + cross attention per decoder layer, K times
    assert ops["Softmax"] == TINY_FMT.encoder_layers + 2 * k * TINY_FMT.decoder_layers
    assert sum("obs_hist" in n.input for n in graph.node) == 1  # normalised once, then encoded once
    assert read_metadata(out)["graph"]["euler_steps"] == k
    with pytest.raises(ContractError, match="Euler"):
        Policy.load(out, k_steps=k + 1, warmup=0, scene=cached_scene("shadow"))


def test_runtime_matches_the_torch_policy_step_by_step(tiny: dict[str, Path]) -> None:
    obs = observations(12)
    for kw in ({}, {"execute": 2}, {"noise": "zero"}, {"noise": "random", "seed": 3}):
        ort_p = Policy.load(tiny["onnx"], "shadow", scene=cached_scene("shadow"), warmup=1, **kw)
        torch_p = GeneralistPolicy.load(tiny["ckpt"], **kw)
        for episode in range(2):  # reset: history refilled from the first observation, noise reseeded
            ort_p.reset()
            torch_p.reset()
            for o in obs[episode:]:
                a, b = ort_p.act(o), torch_p.act(o)
                assert a is not None and a.shape == (EMB.action_dim,) and a.dtype == np.float64
                assert np.all(np.abs(a) <= 1.0)
                np.testing.assert_allclose(a, b, atol=1e-4, rtol=0, err_msg=str(kw))
    chunk = ort_p.act_chunk(obs[0])
    assert chunk is not None and chunk.shape == (4, EMB.action_dim)


def test_bc_baseline_exports_without_a_noise_input(tmp_path: Path) -> None:
    from sim_training.imitation.bc import BCConfig
    from sim_training.imitation.checkpoint import build_model, config_dict

    ckpt = default_checkpoint(tmp_path / "fmt", config=TINY_FMT)
    state = torch.load(ckpt, weights_only=True)
    bc_cfg = BCConfig(hidden_width=32, hidden_layers=1)
    torch.manual_seed(0)
    model = build_model("bc", bc_cfg, LAYOUT.to_dict(), EMB.action_dim)
    state["meta"] = {**state["meta"], "model": "bc", "k_steps": 1}
    state["model"] = {"kind": "bc", "config": config_dict(bc_cfg)}
    state["state_dict"] = model.state_dict()
    torch.save(state, tmp_path / "policy.pt")
    export_policy(tmp_path / "policy.pt", tmp_path / "bc.onnx", scene=cached_scene("shadow"))
    meta = read_metadata(tmp_path / "bc.onnx")
    assert [i["name"] for i in meta["graph"]["inputs"]] == ["obs_hist"] and not meta["noise"]["used"]
    ort_p = Policy.load(tmp_path / "bc.onnx", scene=cached_scene("shadow"), warmup=0)
    torch_p = GeneralistPolicy.load(tmp_path / "policy.pt")
    for o in observations(3):
        np.testing.assert_allclose(ort_p.act(o), torch_p.act(o), atol=1e-4, rtol=0)


def test_parity_on_random_and_rollout_observations_and_f1(tiny: dict[str, Path]) -> None:
    r = verify_parity(tiny["ckpt"], tiny["onnx"], n_random=40, n_rollout=20, piece="single_note")
    assert r["ok"] and r["parity_ok"] and r["f1_ok"] and r["same_weights"]
    assert r["max_abs_diff"] <= 1e-4 and r["f1_diff"] <= 0.01
    assert r["n_random"] == 40 and r["n_rollout"] == 11  # single_note: floor(0.5 s / 50 ms) + 1 steps
    assert 0.0 <= r["f1_torch"] <= 1.0 and r["do_nothing_f1"] is not None
    assert format_parity(VerifyResult.of(r)) == format_parity(r) and "-> OK" in format_parity(r)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main_verify([str(tiny["ckpt"]), str(tiny["onnx"]), "--n-random", "40", "--n-rollout", "20",
                            "--piece", "single_note", "--json"]) == 0
    assert list(json.loads(buf.getvalue())) == list(r)  # VerifyResult keeps verify_parity's keys, in its order
    seq = np.arange(3)[:, None] * np.ones((3, 2))
    np.testing.assert_array_equal(histories(seq, 2)[:, :, 0], [[0, 0], [0, 1], [1, 2]])


def test_session_is_set_for_flat_latency_on_one_core(tiny: dict[str, Path]) -> None:
    import onnxruntime as ort

    p = Policy.load(tiny["onnx"], scene=cached_scene("shadow"), warmup=2)
    so = p.session.get_session_options()
    assert so.intra_op_num_threads == 1 and so.inter_op_num_threads == 1
    assert so.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert p.calls == 2 and p.last_inference_s > 0  # warmed up
    assert isinstance(p, ActingPolicy) and p.embodiment == EMB and p.source == str(tiny["onnx"])
    from omnipianist_ros.policies import check_contract as ros_check_contract
    from omnipianist_ros.policies import load_policy as ros_load_policy

    ros_policy = ros_load_policy(str(tiny["onnx"]), cached_scene("shadow"), LAYOUT.lookahead)  # the ROS node's path
    assert isinstance(ros_policy, Policy)
    ros_check_contract(ros_policy, LAYOUT, EMB.action_dim, EMB.key)
    with pytest.raises(ContractError, match="embodiment"):
        ros_load_policy(str(tiny["onnx"]), cached_scene("leap"), LAYOUT.lookahead)


def test_load_policy_hook_and_simulator_evaluation(tiny: dict[str, Path]) -> None:
    from sim_training.imitation.cli import main_evaluate

    policy = load_policy(tiny["onnx"], noise="fixed", seed=0)
    assert isinstance(policy, Policy)
    r = evaluate_policy("single_note", policy)
    assert set(EVALUATION_KEYS) <= set(r) and r["steps"] == 11
    want = evaluate_policy("single_note", GeneralistPolicy.load(tiny["ckpt"]))
    assert abs(r["f1"] - want["f1"]) <= 0.01
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main_evaluate(["single_note", "--policy", str(tiny["onnx"]), "--json"]) == 0
    assert json.loads(buf.getvalue())["f1"] == r["f1"]


# ----------------------------------------------------------------------------------- contract mismatches
def test_contract_mismatch_is_a_clear_error_naming_the_field(tiny: dict[str, Path], tmp_path: Path) -> None:
    src, scene = tiny["onnx"], cached_scene("shadow")
    with pytest.raises(ContractError, match="embodiment is 'shadow'.*'leap'"):
        Policy.load(src, "leap", warmup=0)
    with pytest.raises(ContractError, match="lookahead"):
        Policy.load(src, scene=scene, lookahead=5, warmup=0)

    def field_offset(m: dict[str, Any]) -> dict[str, Any]:
        next(f for f in m["observation_layout"]["fields"] if f["name"] == "fingertip_xyz")["offset"] += 1
        return m

    def swap_actions(m: dict[str, Any]) -> dict[str, Any]:
        n = m["action"]["names"]
        n[0], n[1] = n[1], n[0]
        return m

    def joint_order(m: dict[str, Any]) -> dict[str, Any]:
        m["joint_order"] = m["joint_order"][::-1]
        return m

    def control_dt(m: dict[str, Any]) -> dict[str, Any]:
        m["control_dt"] = 0.02
        return m

    def scaling(m: dict[str, Any]) -> dict[str, Any]:
        m["action"]["scaling"]["per_action"][3]["ctrl_high"] += 0.1
        return m

    name3 = EMB.action_names[3]
    for change, match in ((field_offset, "'fingertip_xyz' has offset"), (swap_actions, "action names differ: entry 0"),
                          (joint_order, "joint_order differs"), (control_dt, "control_dt"),
                          (scaling, f"action scaling of '{name3}': ctrl_high")):
        bad = rewrite_metadata(src, tmp_path / f"{change.__name__}.onnx", change)
        with pytest.raises(ContractError, match=match):
            Policy.load(bad, scene=scene, warmup=0)


def test_changed_graph_is_refused(tiny: dict[str, Path], tmp_path: Path) -> None:
    model = onnx.load_model(str(tiny["onnx"]))
    init = next(i for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT and len(i.raw_data) > 64)
    arr = onnx.numpy_helper.to_array(init).copy()
    arr.flat[0] += 1.0
    init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
    onnx.save_model(model, str(tmp_path / "changed.onnx"))
    with pytest.raises(ContractError, match="graph sha256"):
        Policy.load(tmp_path / "changed.onnx", scene=cached_scene("shadow"), warmup=0)


# ----------------------------------------------------------------------------------- bad files and inputs
def test_bad_files_give_clear_errors(tiny: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "text.onnx").write_text("this is not a model\n")
    (tmp_path / "random.onnx").write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / "empty.onnx").write_bytes(b"")
    torch.save({"x": torch.zeros(3)}, tmp_path / "torch.onnx")
    for name in ("text", "random", "empty", "torch"):
        with pytest.raises(PolicyFileError, match="not an ONNX model|invalid ONNX model"):
            Policy.load(tmp_path / f"{name}.onnx", warmup=0)
    with pytest.raises(PolicyFileError, match="no such policy file"):
        Policy.load(tmp_path / "missing.onnx")

    bare = onnx.load_model(str(tiny["onnx"]))
    del bare.metadata_props[:]
    onnx.save_model(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(PolicyFileError, match="without 'omnipianist.policy' metadata"):
        Policy.load(tmp_path / "bare.onnx")
    cases = ((lambda m: {**m, "schema": "omnipianist.policy/2"}, "schema 'omnipianist.policy/2'"),
             (lambda m: "{not json", "not valid JSON"),
             (lambda m: {k: v for k, v in m.items() if k != "observation_layout"}, r"lacks \['observation_layout'\]"),
             (lambda m: {**m, "kind": "mystery"}, "kind 'mystery'"))
    for i, (change, match) in enumerate(cases):
        with pytest.raises(PolicyFileError, match=match):
            Policy.read_metadata(rewrite_metadata(tiny["onnx"], tmp_path / f"meta{i}.onnx", change))
    with pytest.raises(PolicyFileError, match="not an omnipianist"):
        export_policy(tmp_path / "torch.onnx", tmp_path / "x.onnx")
    with pytest.raises(ValueError, match=r"\.onnx"):
        export_policy(tiny["ckpt"], tmp_path / "x.txt")


def test_bad_observations_are_refused_never_acted_on(tiny: dict[str, Path]) -> None:
    p = Policy.load(tiny["onnx"], scene=cached_scene("shadow"), warmup=0)
    ref = Policy.load(tiny["onnx"], scene=cached_scene("shadow"), warmup=0)
    obs = observations(4, seed=5)
    with pytest.raises(ValueError, match=r"observation has shape \(7,\)"):
        p.act(np.zeros(7))
    with pytest.raises(ValueError, match="observation has shape"):
        p.act(np.zeros((2, LAYOUT.size)))
    with pytest.raises(ValueError, match="not numeric"):
        p.act(np.array(["a"] * LAYOUT.size))
    p.reset()
    ref.reset()
    np.testing.assert_array_equal(p.act(obs[0]), ref.act(obs[0]))
    for bad_value, field in ((np.nan, "fingertip_xyz"), (np.inf, "hand_joints"), (-np.inf, "goal")):
        bad = obs[1].copy()
        bad[LAYOUT.field(field).offset] = bad_value
        assert p.act(bad) is None
        assert field in (p.last_refusal or "")
    assert p.refused_count == 3
    for o in obs[1:]:  # the refused observations never entered the history
        np.testing.assert_array_equal(p.act(o), ref.act(o))

    def broken_run() -> None:
        p._out[...] = np.nan

    p._run = broken_run  # type: ignore[method-assign]
    assert p.act(obs[0]) is None and p.refused_count == 4 and "non-finite actions" in (p.last_refusal or "")
    with pytest.raises(ValueError, match="graph input 'noise' has shape"):
        ref.run_graph(obs_hist=np.zeros((1, 2, LAYOUT.size)), noise=np.zeros((1, 3, EMB.action_dim)))


def test_export_refuses_a_graph_that_returns_nan(tmp_path: Path) -> None:
    ckpt = default_checkpoint(tmp_path / "run", config=TINY_FMT)
    state = torch.load(ckpt, weights_only=True)
    state["state_dict"]["head.bias"][0] = float("nan")
    torch.save(state, ckpt)
    with pytest.raises(ContractError, match="non-finite"):
        export_policy(ckpt, tmp_path / "nan.onnx", scene=cached_scene("shadow"))


# ----------------------------------------------------------------------------------- experts
def test_residual_expert_export_adds_the_prior_like_the_simulator(tmp_path: Path) -> None:
    scene = cached_scene("shadow")
    run = expert_checkpoint(tmp_path / "expert")
    r = export_policy(run, tmp_path / "expert.onnx", scene=scene)
    assert r["kind"] == "residual" and r["check_max_abs_diff"] <= 1e-5
    meta = read_metadata(tmp_path / "expert.onnx")
    assert meta["residual_scale"] == 0.1 and meta["prior_config"] == dataclasses.asdict(PriorConfig())
    assert meta["policy_input"]["obs_mode"] == "compact" and meta["graph"]["outputs"][0]["name"] == "residual"
    ort_p = Policy.load(tmp_path / "expert.onnx", scene=scene, warmup=1)
    torch_p = ExpertPolicy.load(run, scene=scene)
    env = PianoEnv("single_note", EMB, EnvConfig(clip_steps=None, random_start=False), scene=scene)
    obs, _ = env.reset(seed=0)
    ort_p.reset()
    torch_p.reset()
    moved = 0.0
    for _ in range(8):
        a, b = ort_p.act(obs), torch_p.act(obs)
        assert a is not None
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)
        moved = max(moved, float(np.abs(ort_p._out).max()))  # the residual the graph returned
        obs, *_ = env.step(b)
    env.close()
    assert moved > 0.05  # the residual is not trivially zero
    v = verify_parity(run, tmp_path / "expert.onnx", n_random=30, n_rollout=10, piece="single_note")
    assert v["ok"] and v["max_abs_diff"] <= 1e-4 and v["kind"] == "residual" and v["same_weights"]


def test_actor_without_prior_and_searched_prior_experts(tmp_path: Path) -> None:
    scene = cached_scene("shadow")
    run = expert_checkpoint(tmp_path / "noprior", obs_mode="full", with_prior=False)
    assert export_policy(run, tmp_path / "actor.onnx", scene=scene)["kind"] == "actor"
    ort_p = Policy.load(tmp_path / "actor.onnx", scene=scene, warmup=0)
    torch_p = ExpertPolicy.load(run, scene=scene)
    assert ort_p.prior is None
    for o in observations(3):
        np.testing.assert_allclose(ort_p.act(o), torch_p.act(o), atol=1e-4, rtol=0)

    folder = tmp_path / "searched"
    folder.mkdir()
    cfg = dataclasses.replace(PriorConfig(), press_depth_m=0.017)
    (folder / "best_prior.json").write_text(json.dumps(dataclasses.asdict(cfg)))
    (folder / "expert.json").write_text(json.dumps({"kind": "prior", "piece": "single_note", "embodiment": "shadow",
                                                    "action_set": "reduced", "forearm_z": False, "lookahead": 10,
                                                    "best_prior": "best_prior.json", "expert_f1": 0.9}))
    assert export_policy(folder, tmp_path / "prior.onnx", scene=scene)["kind"] == "prior"
    meta = read_metadata(tmp_path / "prior.onnx")
    assert meta["prior_config"]["press_depth_m"] == 0.017
    ort_p = Policy.load(tmp_path / "prior.onnx", scene=scene, warmup=0)
    prior = OTIKPrior(scene, cfg, 10)
    env = PianoEnv("single_note", EMB, EnvConfig(clip_steps=None, random_start=False), scene=scene)
    obs, _ = env.reset(seed=0)
    ort_p.reset()
    for _ in range(5):
        want = prior.act(obs)
        np.testing.assert_allclose(ort_p.act(obs), want, atol=1e-6, rtol=0)
        obs, *_ = env.step(want)
    env.close()


# ----------------------------------------------------------------------------------- CLI and benchmark
def test_cli_export_verify_and_bench(tiny: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cli.onnx"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main_export([str(tiny["ckpt"]), "--out", str(out), "--euler-steps", "2", "--verify", "--piece",
                            "single_note", "--n-random", "10", "--n-rollout", "5", "--json"])
    r = json.loads(buf.getvalue())
    assert code == 0 and r["kind"] == "generalist" and r["euler_steps"] == 2 and r["verify"]["ok"]
    assert read_metadata(out)["k_steps"] == 2

    b = run_inference_bench(InferenceBenchConfig(policy=str(out), ort_calls=30, torch_calls=6, rounds=2, warmup=2,
                                                 pin=False, int8=True, piece="single_note"))
    assert b.kind == "generalist" and b.ort_per_step["n"] == 30 and b.torch_eager_per_step is not None
    assert b.torch_eager_per_step["n"] == 6 and b.flops_per_call_torch_counter is not None
    assert b.flops_per_call > 0 and 0.3 < b.flops_per_call / b.flops_per_call_torch_counter < 1.5
    assert 0.0 < b.fraction_of_ceiling_ort < 1.0 and b.gemm_ceiling["flops_per_s"] > 1e9
    assert set(b.targets) == {"ort_p99_ms", "speedup_vs_torch_eager"} and isinstance(b.ok, bool)
    assert b.variants is not None and "f1_change" in b.variants["int8"]
    j = to_json(b)  # the keys of the dict this result replaced (a generalist: no torch_network_only)
    assert list(j)[:3] == ["benchmark", "policy", "kind"] and list(j)[-4:] == ["ort_graph_only", "variants", "targets",
                                                                                "ok"]
    assert "torch_network_only" not in j and j["targets"]["ort_p99_ms"]["target"] == 5.0
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main_bench_inference(["--ort-calls", "20", "--torch-calls", "4", "--rounds", "2", "--json"])
    d = json.loads(buf.getvalue())
    assert code == (0 if d["ok"] else 1) and d["params"]["total"] > 1_000_000  # the default FMTConfig
