"""The generalist: flow-matching math, the FMT model, data windows, training / resume, the policy and its evaluation."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from omnipianist.command import to_json
from omnipianist.errors import ModelError
from sim_training.env.observation import ObservationLayout, ObsField
from sim_training.imitation.bc import BCConfig, BCPolicyMLP
from sim_training.imitation.checkpoint import embodiment_from_meta, load_checkpoint
from sim_training.imitation.cli import (
    TRAIN_POLICY,
    add_train_policy_args,
    format_train_policy,
    main_evaluate,
    train_config_from_args,
)
from sim_training.imitation.data import EpisodeData, WindowSampler, open_store, split_episodes, write_store
from sim_training.imitation.evaluate import EVALUATION_KEYS, evaluate_policy
from sim_training.imitation.flow import euler_sample, flow_matching_loss, interpolate
from sim_training.imitation.model import FlowMatchingTransformer, FMTConfig, sampler_module
from sim_training.imitation.normalization import Normalizer
from sim_training.imitation.policy import GeneralistPolicy, load_policy
from sim_training.imitation.train import PolicyTrainConfig, train_policy
from sim_training.models.embodiment import get_embodiment

TINY_FMT = FMTConfig(d_model=32, n_heads=2, encoder_layers=1, decoder_layers=1)


# ----------------------------------------------------------------------------------- fixtures
def tiny_layout(n_tips: int = 2, n_joints: int = 3, rows: int = 3, width: int = 5, keys: int = 4) -> dict[str, Any]:
    """A small layout with the real field names (sizes free: the model must read them from here)."""
    specs = [("goal", (rows, width)), ("key_state", (keys,)), ("sustain_state", (1,)),
             ("fingertip_xyz", (n_tips, 3)), ("hand_joints", (n_joints,))]
    fields, offset = [], 0
    for name, shape in specs:
        f = ObsField(name, offset, shape, "test")
        fields.append(f)
        offset += f.size
    return ObservationLayout(tuple(fields), rows - 1, "test", tuple(f"j{i}" for i in range(n_joints)),
                             tuple(f"tip{i}" for i in range(n_tips))).to_dict()


def synthetic_data(layout: dict[str, Any], action_dim: int, pieces: tuple[str, ...] = ("p0", "p1", "p2"),
                   episodes_per_piece: int = 2, steps: int = 20, seed: int = 0, embodiment: Any = "test") -> EpisodeData:
    """Episodes of plausible observations; the label is a fixed smooth function of the observation."""
    rng = np.random.default_rng(seed)
    fields = {f["name"]: f for f in layout["fields"]}
    n_ep = len(pieces) * episodes_per_piece
    n = n_ep * steps
    obs = np.zeros((n, layout["size"]), dtype=np.float32)

    def put(name: str, values: np.ndarray) -> None:
        f = fields[name]
        obs[:, f["offset"]: f["offset"] + values.shape[1]] = values

    goal_size = int(np.prod(fields["goal"]["shape"]))
    put("goal", (rng.random((n, goal_size)) < 0.1).astype(np.float32))
    put("key_state", rng.random((n, int(np.prod(fields["key_state"]["shape"])))))
    put("sustain_state", (rng.random((n, 1)) < 0.3).astype(np.float32))
    put("fingertip_xyz", 0.3 + 0.05 * rng.standard_normal((n, int(np.prod(fields["fingertip_xyz"]["shape"])))))
    put("hand_joints", 0.3 * rng.standard_normal((n, int(np.prod(fields["hand_joints"]["shape"])))))
    w = rng.standard_normal((layout["size"], action_dim)) / np.sqrt(layout["size"])
    action = np.tanh(obs @ w).astype(np.float32)
    return EpisodeData(obs=obs, action=action, episode_ends=np.arange(1, n_ep + 1) * steps,
                       piece_id=np.repeat(np.asarray(pieces), episodes_per_piece), observation_layout=layout,
                       embodiment=embodiment, action_names=[f"a{i}" for i in range(action_dim)])


def shadow_data() -> EpisodeData:
    emb = get_embodiment("shadow")
    return synthetic_data(ObservationLayout.for_embodiment(emb).to_dict(), emb.action_dim, steps=12,
                          embodiment=emb.key)


def write_dataset_store(data: EpisodeData, path: Path) -> None:
    """Write shadow-layout episodes with the real DatasetWriter (what `omnipianist collect` produces)."""
    from sim_training.dataset import DatasetWriter, EpisodeMeta, StoreSchema

    schema = StoreSchema.for_embodiment(get_embodiment(data.embodiment))
    with DatasetWriter(path, schema) as writer:
        for i, (s, e) in enumerate(zip(data.episode_starts, data.episode_ends, strict=True)):
            writer.append_episode(data.obs[s:e], data.action[s:e], None, data.action[s:e], np.zeros(e - s),
                                  EpisodeMeta(piece_id=str(data.piece_id[i]), embodiment=data.embodiment, seed=i, f1=0.5))


def _train_cfg(store: Path, out: Path, **kw: Any) -> PolicyTrainConfig:
    base: dict[str, Any] = dict(store=str(store), out=str(out), minutes=5.0, max_steps=6, batch_size=16, eval_every=3,
                                val_windows=32, warmup_steps=2, threads=1, show_progress=False, log=False, fmt=TINY_FMT,
                                bc=BCConfig(hidden_width=32, hidden_layers=1))
    base.update(kw)
    return PolicyTrainConfig(**base)


# ----------------------------------------------------------------------------------- flow math
def test_loss_is_zero_for_the_perfect_velocity_field() -> None:
    """For a data distribution that is one point a1, u(a_t, t) = (a1 - a_t) / (1 - t) equals a1 - a0 on every path."""
    g = torch.Generator().manual_seed(0)
    a1 = torch.randn(64, 4, 3, generator=g, dtype=torch.float64)
    a0 = torch.randn(64, 4, 3, generator=g, dtype=torch.float64)
    t = 0.95 * torch.rand(64, generator=g, dtype=torch.float64)

    def perfect(a_t: torch.Tensor, tt: torch.Tensor) -> torch.Tensor:
        return (a1 - a_t) / (1.0 - tt)[:, None, None]

    assert float(flow_matching_loss(perfect, a1, a0, t)) == pytest.approx(0.0, abs=1e-24)
    assert float(flow_matching_loss(lambda a, tt: torch.zeros_like(a), a1, a0, t)) > 1.0
    assert torch.allclose(interpolate(a0, a1, torch.zeros(64, dtype=torch.float64)), a0)
    # Euler on the straight path is exact: K = 10 steps land on a1.
    assert torch.allclose(euler_sample(perfect, a0, 10), a1, atol=1e-12)


@pytest.mark.parametrize("flow_samples", [1, 3])
def test_model_loss_is_zero_when_its_velocity_is_perfect(flow_samples: int) -> None:
    """Through FlowMatchingTransformer.loss (normalisation included): a velocity returning a1 - a0 scores 0."""
    layout = tiny_layout()
    model = FlowMatchingTransformer(dataclasses.replace(TINY_FMT, flow_samples=flow_samples), layout, 3)
    model.normalizer.action_low.fill_(-2.0)
    model.normalizer.action_high.fill_(3.0)
    g = torch.Generator().manual_seed(1)
    n = 8 * flow_samples  # each observation is paired with flow_samples (noise, t) draws, sample-major
    actions = torch.rand(8, 4, 3, generator=g) * 5 - 2
    noise, t = torch.randn(n, 4, 3, generator=g), 0.9 * torch.rand(n, generator=g)
    a1 = model.normalizer.normalize_action(actions).repeat_interleave(flow_samples, dim=0)
    model.velocity = lambda a_t, tt, memory: (a1 - a_t) / (1.0 - tt)[:, None, None]  # type: ignore[method-assign]
    loss = model.loss(torch.randn(8, 2, layout["size"]), actions, noise=noise, t=t)
    assert float(loss) == pytest.approx(0.0, abs=1e-10)
    del model.velocity  # the real field: a finite loss with memory repeated per flow sample
    assert torch.isfinite(model.loss(torch.randn(8, 2, layout["size"]), actions, generator=g))


def test_fmt_fits_a_bimodal_distribution_where_bc_averages() -> None:
    """Actions +1 or -1 with equal probability, constant observation: FMT samples both modes, not their mean."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    layout = tiny_layout()
    fmt = FlowMatchingTransformer(TINY_FMT, layout, 1)
    bc = BCPolicyMLP(BCConfig(hidden_width=32, hidden_layers=1), layout, 1)
    opts = [torch.optim.AdamW(m.parameters(), lr=3e-3) for m in (fmt, bc)]
    g = torch.Generator().manual_seed(0)
    obs = torch.zeros(128, 2, layout["size"])
    t0 = time.perf_counter()
    for _ in range(350):
        chunk = torch.where(torch.rand(128, 1, 1, generator=g) < 0.5, -1.0, 1.0).expand(128, 4, 1)
        for model, opt in zip((fmt, bc), opts, strict=True):
            loss = model.loss(obs, chunk, generator=g)
            opt.zero_grad()
            loss.backward()
            opt.step()
    train_s = time.perf_counter() - t0
    with torch.no_grad():
        first = fmt.sample(torch.zeros(1000, 2, layout["size"]), torch.randn(1000, 4, 1, generator=g))[:, 0, 0]
        bc_pred = float(bc.predict(torch.zeros(1, 2, layout["size"]))[0, 0, 0])
    torch.set_num_threads(threads)
    positive = float((first > 0).float().mean())
    near_mean = float((first.abs() < 0.5).float().mean())
    print(f"bimodal: {positive:.3f} in the +1 mode, {near_mean:.3f} within 0.5 of the mean, "
          f"mean |a| {float(first.abs().mean()):.3f}; BC predicts {bc_pred:+.3f}; {train_s:.1f} s")
    assert 0.3 <= positive <= 0.7
    assert near_mean < 0.1
    assert abs(bc_pred) < 0.3  # the regression baseline sits between the modes


# ----------------------------------------------------------------------------------- model
def test_encode_velocity_sample_shapes_and_encode_runs_once() -> None:
    emb = get_embodiment("shadow")
    layout = ObservationLayout.for_embodiment(emb).to_dict()
    cfg = FMTConfig()
    model = FlowMatchingTransformer(cfg, layout, emb.action_dim).eval()
    b, d = 3, cfg.d_model
    obs = torch.randn(b, cfg.obs_horizon, layout["size"])
    n_tokens = 11 + 2 * cfg.obs_horizon  # 11 goal rows of the latest frame + (key, proprio) per frame
    assert model.tokenizer.n_tokens == n_tokens
    with torch.no_grad():
        mem = model.encode(model.normalizer.normalize_obs(obs))
        assert mem.tokens.shape == (b, n_tokens, d) and mem.final_context.shape == (b, 1, 2 * d)
        assert len(mem.keys) == len(mem.values) == len(mem.contexts) == cfg.decoder_layers
        assert mem.keys[0].shape == (b, cfg.n_heads, d // cfg.n_heads, n_tokens)  # transposed once, here
        assert mem.values[0].shape == (b, cfg.n_heads, n_tokens, d // cfg.n_heads)
        assert mem.contexts[0].shape == (b, 1, 6 * d)
        v = model.velocity(torch.randn(b, cfg.pred_horizon, emb.action_dim), torch.rand(b), mem)
        assert v.shape == (b, cfg.pred_horizon, emb.action_dim)
        calls = {"enc": 0, "dec": 0}
        model.encoder[0].register_forward_hook(lambda *_: calls.__setitem__("enc", calls["enc"] + 1))
        model.decoder[0].register_forward_hook(lambda *_: calls.__setitem__("dec", calls["dec"] + 1))
        out = model.sample(obs, torch.randn(b, cfg.pred_horizon, emb.action_dim))
    assert out.shape == (b, cfg.pred_horizon, emb.action_dim)
    assert calls == {"enc": 1, "dec": cfg.k_steps}
    # the fast path (time conditioning of all K steps batched) is exactly Euler on velocity()
    noise = torch.randn(b, cfg.pred_horizon, emb.action_dim)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))  # leave adaLN-Zero, so the check is not trivial
        mem = model.encode(model.normalizer.normalize_obs(obs))
        ref = model.normalizer.unnormalize_action(euler_sample(lambda a, t: model.velocity(a, t, mem), noise, 4))
        assert torch.allclose(model.sample(obs, noise, k_steps=4), ref, atol=1e-5)
        a_t, t = torch.randn(b, cfg.pred_horizon, emb.action_dim), torch.full((b,), 0.3)
        assert torch.allclose(model.velocity(a_t, t, mem), model.velocity(a_t, t[:1], mem), atol=1e-6)
    assert torch.count_nonzero(v) == 0  # untrained (adaLN-Zero, zero head): velocity 0
    with pytest.raises(ValueError, match="observation history"):
        model.encode(torch.zeros(1, 3, layout["size"]))
    params = model.n_params()
    assert params["total"] == params["encoder"] + params["decoder"] + 0  # no parameters outside the two halves
    assert params["total"] < 2_000_000


@pytest.mark.parametrize("n_tips,n_joints", [(2, 3), (5, 7)])
def test_tokenizer_splits_the_observation_by_the_layout(n_tips: int, n_joints: int) -> None:
    """Another fingertip count works, and each field lands in its own token (found by perturbing one entry)."""
    layout = tiny_layout(n_tips=n_tips, n_joints=n_joints)
    fields = {f["name"]: f for f in layout["fields"]}
    model = FlowMatchingTransformer(TINY_FMT, layout, 2).eval()
    tok = model.tokenizer
    rows = fields["goal"]["shape"][0]
    base = torch.randn(1, 2, layout["size"])
    ref = tok(base)

    def changed_tokens(frame: int, index: int) -> list[int]:
        x = base.clone()
        x[0, frame, index] += 1.0
        return torch.nonzero((tok(x) - ref).abs().sum(-1)[0] > 0).flatten().tolist()

    goal_off, width = fields["goal"]["offset"], fields["goal"]["shape"][1]
    assert changed_tokens(1, goal_off + 2 * width + 1) == [2]  # row 2 of the latest frame's goal
    assert changed_tokens(0, goal_off) == []  # the previous frame's goal is not tokenised (goal_history=False)
    # state tokens follow the goal rows: frame 0 (key, proprio), frame 1 (key, proprio)
    assert changed_tokens(0, fields["key_state"]["offset"]) == [rows]
    last_tip = fields["fingertip_xyz"]["offset"] + 3 * n_tips - 1
    assert changed_tokens(1, last_tip) == [rows + 3]
    assert changed_tokens(1, fields["hand_joints"]["offset"] + n_joints - 1) == [rows + 3]
    assert changed_tokens(1, fields["sustain_state"]["offset"]) == [rows + 3]
    with torch.no_grad():
        assert model.sample(base, torch.randn(1, 4, 2)).shape == (1, 4, 2)


def test_normalisation_round_trip_and_statistics() -> None:
    layout = tiny_layout()
    data = synthetic_data(layout, 3)
    data.action[:, 2] = 0.25  # an action entry that never moves
    norm = Normalizer(layout["size"], 3).fit(data.obs, data.action, layout)
    a = torch.from_numpy(data.action)
    na = norm.normalize_action(a)
    assert torch.allclose(norm.unnormalize_action(na), a, atol=1e-6)
    assert float(na[:, :2].min()) == pytest.approx(-1.0, abs=1e-5) and float(na[:, :2].max()) == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(na[:, 2], torch.zeros(len(a)), atol=1e-6)  # constant entry -> 0, not inf
    fields = {f["name"]: f for f in layout["fields"]}
    bounded = slice(0, fields["fingertip_xyz"]["offset"])  # goal, key state, sustain: left as they are
    assert torch.all(norm.obs_mean[bounded] == 0) and torch.all(norm.obs_std[bounded] == 1)
    no = norm.normalize_obs(torch.from_numpy(data.obs))
    std_part = no[:, fields["fingertip_xyz"]["offset"]:]
    assert torch.allclose(std_part.mean(0), torch.zeros(std_part.shape[1]), atol=1e-4)
    assert torch.allclose(std_part.std(0, unbiased=False), torch.ones(std_part.shape[1]), atol=1e-3)
    assert float(norm.normalize_obs(torch.full((1, layout["size"]), 1e6)).max()) == norm.obs_clip


# ----------------------------------------------------------------------------------- data
def test_windows_pad_at_episode_borders_and_never_cross() -> None:
    layout = tiny_layout()
    data = synthetic_data(layout, 1, pieces=("a",), episodes_per_piece=3, steps=4)
    data.obs[:, 0] = np.arange(len(data.obs))  # row index in column 0
    data.action[:, 0] = np.arange(len(data.action))
    sampler = WindowSampler(data, np.array([0, 2]), obs_horizon=2, pred_horizon=4)
    assert len(sampler) == 8 and sampler.rows().tolist() == [0, 1, 2, 3, 8, 9, 10, 11]
    obs, act = sampler.sample(np.random.default_rng(0), 500)
    assert obs.shape == (500, 2, layout["size"]) and act.shape == (500, 4, 1)
    rows_o, rows_a = obs[:, :, 0].astype(int), act[:, :, 0].astype(int)
    t = rows_a[:, 0]
    assert np.array_equal(rows_o[:, -1], t)  # the window's step: latest observation, first action
    start = np.where(t < 4, 0, 8)
    assert np.array_equal(rows_o, np.maximum(t[:, None] + np.array([-1, 0]), start[:, None]))
    assert np.array_equal(rows_a, np.minimum(t[:, None] + np.arange(4), start[:, None] + 3))
    assert set(t.tolist()) == set(sampler.rows().tolist())  # every step is drawn, episode 1 never


def test_split_by_piece_and_store_round_trip(tmp_path: Path) -> None:
    layout = tiny_layout()
    data = synthetic_data(layout, 2, pieces=("a", "b", "c", "d", "e"))
    write_store(data, tmp_path / "d.zarr")
    back = open_store(tmp_path / "d.zarr")
    assert np.array_equal(back.obs, data.obs) and back.piece_id.tolist() == data.piece_id.tolist()
    assert back.data_card_id() == data.data_card_id() and back.observation_layout == layout
    train, val, info = split_episodes(back, 0.2, seed=0)
    assert len(info["val_pieces"]) == 1 and not set(info["val_pieces"]) & set(info["train_pieces"])
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(10))
    train, val, info = split_episodes(back, 0.5, seed=0, train_pieces=("a", "b"))
    assert sorted(info["train_pieces"] + info["val_pieces"]) == ["a", "b"]
    one = synthetic_data(layout, 2, pieces=("solo",), episodes_per_piece=4)
    train, val, info = split_episodes(one, 0.25, seed=0)
    assert info["split"] == "episode" and len(val) == 1 and len(train) == 3
    with pytest.raises(KeyError, match="zzz"):
        split_episodes(back, 0.2, 0, train_pieces=("zzz",))


# ----------------------------------------------------------------------------------- training
@pytest.mark.parametrize("kind", ["fmt", "bc"])
def test_train_checkpoint_resume(tmp_path: Path, kind: str) -> None:
    """FMT on a store from the real DatasetWriter (shadow layout), BC on a bare contract store (tiny layout)."""
    if kind == "fmt":
        write_dataset_store(shadow_data(), tmp_path / "d.zarr")
    else:
        write_store(synthetic_data(tiny_layout(), 3), tmp_path / "d.zarr")
    out = tmp_path / "run"
    first = train_policy(_train_cfg(tmp_path / "d.zarr", out, model=kind))
    assert first["step"] == 6 and not first["resumed"] and first["val_pieces"] == 1
    for name in ("policy.pt", "last.pt", "loss.json", "loss.png", "result.json", "config.json"):
        assert (out / name).exists(), name
    (out / "last.pt.tmp").write_bytes(b"half-written by a killed run")
    second = TRAIN_POLICY.execute(_train_cfg(tmp_path / "d.zarr", out, model=kind, max_steps=10))  # the command
    assert second.resumed and second.step == 10 and second.sessions == 2
    assert second.wall_s > first["wall_s"]
    assert list(to_json(second)) == list(first) == list(json.loads((out / "result.json").read_text()))
    assert format_train_policy(second).startswith(f"{kind} ({second.params['total']:,} params): 10 steps in ")
    assert [p["step"] for p in json.loads((out / "loss.json").read_text())] == [0, 3, 6, 9, 10]
    with pytest.raises(ValueError, match="model_config"):
        train_policy(_train_cfg(tmp_path / "d.zarr", out, model=kind, max_steps=12,
                                fmt=FMTConfig(d_model=16, n_heads=2, encoder_layers=1, decoder_layers=1),
                                bc=BCConfig(hidden_width=16, hidden_layers=1)))
    model, meta, _ = load_checkpoint(out / "last.pt")  # weights_only load of the full training state
    assert meta["step"] == 10 and meta["model"] == kind and meta["data_card_id"] == second.data_card_id
    for key in ("observation_layout", "embodiment", "action_names", "control_dt", "obs_horizon", "pred_horizon",
                "k_steps"):
        assert key in meta, key
    policy_model, _, source = load_checkpoint(out)
    assert source.endswith("policy.pt")
    for (name, p), q in zip(model.state_dict().items(), policy_model.state_dict().values(), strict=True):
        assert torch.equal(p, q), name  # policy.pt holds the EMA weights of last.pt


def test_cli_flags_build_the_config(tmp_path: Path) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_train_policy_args(parser)
    args = parser.parse_args([str(tmp_path / "d.zarr"), "--model", "bc", "--fmt-d-model", "64", "--bc-hidden-width", "8",
                              "--max-steps", "3", "--train-pieces", "a,b"])
    cfg = train_config_from_args(args)
    assert cfg.model == "bc" and cfg.fmt.d_model == 64 and cfg.bc.hidden_width == 8 and cfg.max_steps == 3
    assert cfg.piece_filter == ("a", "b") and cfg.batch_size == 256 and cfg.threads == 2


# ----------------------------------------------------------------------------------- policy and evaluation
@pytest.fixture(scope="module")
def shadow_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("shadow")
    write_dataset_store(shadow_data(), tmp / "d.zarr")
    train_policy(_train_cfg(tmp / "d.zarr", tmp / "run", max_steps=2, eval_every=100))
    return tmp / "run"


def test_policy_act_shape_range_and_determinism(shadow_run: Path) -> None:
    emb = get_embodiment("shadow")
    policy = GeneralistPolicy.load(shadow_run)
    assert policy.embodiment == emb
    rng = np.random.default_rng(0)
    observations = [rng.normal(size=policy.obs_dim).astype(np.float32) * 3 for _ in range(5)]
    policy.reset()
    actions = [policy.act(o) for o in observations]
    for a in actions:
        assert a.shape == (emb.action_dim,) and a.dtype == np.float64
        assert np.all(np.abs(a) <= 1.0) and np.all(np.isfinite(a))
    again = load_policy(shadow_run / "policy.pt")
    again.reset()
    assert all(np.array_equal(a, again.act(o)) for a, o in zip(actions, observations, strict=True))
    chunked = GeneralistPolicy.load(shadow_run, execute=2, noise="random")
    chunked.reset()
    assert all(chunked.act(o).shape == (emb.action_dim,) for o in observations)
    with pytest.raises(ValueError, match="observation has shape"):
        policy.act(np.zeros(7))
    from policy_export.metadata import PolicyFileError

    with pytest.raises(PolicyFileError, match="no such policy file"):
        load_policy(shadow_run / "policy.onnx")


def test_evaluate_returns_the_prior_json_keys(shadow_run: Path) -> None:
    policy = GeneralistPolicy.load(shadow_run)
    r = evaluate_policy("single_note", policy)
    assert set(EVALUATION_KEYS) <= set(r) and r["steps"] == 11 and 0.0 <= r["f1"] <= 1.0
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main_evaluate(["single_note", "--policy", str(shadow_run), "--json"]) == 0
    out = json.loads(buf.getvalue())
    assert {"f1", "precision", "recall", "onset_f1", "steps", "note_step_f1", "do_nothing_f1"} <= set(out)
    assert list(out) == list(r)  # EvaluationResult keeps evaluate_policy's keys, in its order
    assert out["f1"] == r["f1"]  # fixed noise: the same play twice
    with pytest.raises(ModelError, match="embodiment"):
        embodiment_from_meta("test")
    assert embodiment_from_meta("leap-full-z").key == "leap-full-z"
    assert embodiment_from_meta({"name": "shadow", "action_set": "full"}).key == "shadow-full"


# ----------------------------------------------------------------------------------- ONNX (shape/parity check)
def export_sampler_onnx(model: torch.nn.Module, path: Path, obs_shape: tuple[int, ...],
                        noise_shape: tuple[int, ...]) -> None:
    """Quick export of ``sample(obs_hist, noise)`` (K Euler steps unrolled) for tests; the real exporter is policy_export."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(sampler_module(model.eval()), (torch.zeros(obs_shape), torch.zeros(noise_shape)), str(path),
                          input_names=["obs_hist", "noise"], output_names=["action_chunk"], opset_version=17,
                          dynamo=False)


def test_onnx_graph_matches_torch_and_is_fast(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    emb = get_embodiment("shadow")
    layout = ObservationLayout.for_embodiment(emb).to_dict()
    cfg = FMTConfig()
    torch.manual_seed(0)
    model = FlowMatchingTransformer(cfg, layout, emb.action_dim)
    with torch.no_grad():
        for p in model.parameters():  # leave the zero initialisation so the graph computes something
            p.add_(0.05 * torch.randn_like(p))
        model.normalizer.obs_mean.normal_()
        model.normalizer.obs_std.uniform_(0.5, 2.0)
        model.normalizer.action_low.fill_(-0.8)
        model.normalizer.action_high.fill_(0.6)
    obs_shape, noise_shape = (1, cfg.obs_horizon, layout["size"]), (1, cfg.pred_horizon, emb.action_dim)
    export_sampler_onnx(model, tmp_path / "fmt.onnx", obs_shape, noise_shape)
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(str(tmp_path / "fmt.onnx"), so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    obs = rng.normal(size=obs_shape).astype(np.float32)
    noise = rng.normal(size=noise_shape).astype(np.float32)
    (got,) = sess.run(None, {"obs_hist": obs, "noise": noise})
    with torch.no_grad():
        want = model.sample(torch.from_numpy(obs), torch.from_numpy(noise)).numpy()
    assert got.shape == noise_shape
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)  # normaliser buffers are in the graph
    for _ in range(20):
        sess.run(None, {"obs_hist": obs, "noise": noise})
    times = []
    for _ in range(200):
        t0 = time.perf_counter()
        sess.run(None, {"obs_hist": obs, "noise": noise})
        times.append(time.perf_counter() - t0)
    p50, p99 = (1e3 * float(np.percentile(times, q)) for q in (50, 99))
    print(f"ORT 1 thread, K={cfg.k_steps}, batch 1: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    # no latency assertion here: speed is a benchmark (`omnipianist bench inference`), not a test
