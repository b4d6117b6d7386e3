"""Checkpoint -> one ONNX file with its contract: ``export_policy(src, out, euler_steps=None, opset=17)``.

Sources (told apart by what the path holds):

* a **generalist** checkpoint (``policy.pt``, ``last.pt`` or a run directory;
  :func:`sim_training.imitation.checkpoint.load_checkpoint`). Graph: ``obs_hist`` (1, To, D) raw,
  ``noise`` (1, H, A) -> ``action_chunk`` (1, H, A) raw. Normalisation, the observation encoder (run
  ONCE per call: :meth:`FlowMatchingTransformer.sample` encodes, then only the decoder repeats) and the
  K Euler steps (unrolled; their time conditioning folds into constants) are inside the graph.
  A BC-MLP checkpoint exports the same way without the ``noise`` input.
* a **residual expert** (a ``train_expert`` run directory / ``best.pt`` / ``last.pt``, or a
  ``train_piece_expert`` folder whose ``expert.json`` says ``residual``). Graph: ``policy_input``
  (1, P) raw = obs[observation_index] ⊕ prior action -> ``residual`` (1, A) = tanh(mean), the input
  normaliser inside the graph. Metadata ``kind: residual`` with ``residual_scale`` and ``prior_config``;
  the runtime computes the prior with :class:`~sim_training.fingering.prior.OTIKPrior` and returns
  clip(prior + residual_scale * residual). An expert trained without a prior exports as ``kind: actor``.
* a **searched-prior expert** (``expert.json`` says ``prior``): no network; the graph only clips the
  prior's action (``prior_action`` -> ``action``) and the metadata carries the searched prior config,
  so the same runtime plays it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from omnipianist.errors import ContractError
from policy_export import __version__
from policy_export.metadata import (
    SCHEMA,
    PolicyFileError,
    action_dict,
    attach_metadata,
    check_contract,
    embodiment_dict,
    floats,
    state_dict_sha256,
)
from policy_export.runtime import make_session
from sim_training.constants import CONTROL_DT_S, LOOKAHEAD_STEPS
from sim_training.experts.pipeline import EXPERT_JSON, RESIDUAL_DIR
from sim_training.imitation.checkpoint import config_dict, embodiment_from_meta, load_checkpoint
from sim_training.imitation.model import sampler_module
from sim_training.imitation.residual import PRIOR_FIELD, base_layout
from sim_training.models.embodiment import get_embodiment

if TYPE_CHECKING:
    import onnx

    from sim_training.experts.policy import ExpertPolicy
    from sim_training.models.embodiment import Embodiment
    from sim_training.models.scene import Scene

DEFAULT_OPSET = 17
"""LayerNormalization is a single op from opset 17 (fewer nodes per Euler step than its decomposition)."""
MIN_OPSET = 17


# ----------------------------------------------------------------------------------- graphs
class ResidualActorGraph(nn.Module):
    """Raw policy input (B, P) -> deterministic residual tanh(mean) (B, A), the input normaliser inside."""

    mean: Tensor
    std: Tensor

    def __init__(self, actor: nn.Module, mean: np.ndarray, std: np.ndarray, clip: float) -> None:
        super().__init__()
        self.actor = actor.eval()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        self.clip = float(clip)

    def forward(self, policy_input: Tensor) -> Tensor:
        z = torch.clamp((policy_input - self.mean) / self.std, -self.clip, self.clip)
        return torch.tanh(self.actor(z)[0])


def export_info() -> dict[str, Any]:
    """Tool and library versions, and the time, for the ``export`` entry."""
    import datetime

    import onnx
    import torch

    return {"tool": "omnipianist.policy_export", "version": __version__, "torch": torch.__version__,
            "onnx": onnx.__version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}  # noqa: UP017 - py3.10


def _trace(module: nn.Module, args: tuple[Tensor, ...], input_names: list[str], output_names: list[str],
           opset: int) -> onnx.ModelProto:
    """Legacy (TorchScript) exporter, static shapes, constants folded; returns the parsed model."""
    import onnx

    with tempfile.TemporaryDirectory(prefix="omnipianist_export_") as tmp:  # torch.onnx.export takes a path
        path = str(Path(tmp) / "traced.onnx")
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module.eval(), args, path, input_names=input_names, output_names=output_names,
                              opset_version=opset, do_constant_folding=True, dynamo=False)
        return onnx.load_model(path)


def _clip_graph(action_dim: int, opset: int) -> onnx.ModelProto:
    """``prior_action`` (1, A) -> ``action`` = clip(prior_action, -1, 1) (the searched-prior expert)."""
    import onnx
    from onnx import TensorProto, helper

    lo = helper.make_tensor("lo", TensorProto.FLOAT, [], [-1.0])
    hi = helper.make_tensor("hi", TensorProto.FLOAT, [], [1.0])
    graph = helper.make_graph(
        [helper.make_node("Clip", ["prior_action", "lo", "hi"], ["action"])], "searched_prior",
        [helper.make_tensor_value_info("prior_action", TensorProto.FLOAT, [1, action_dim])],
        [helper.make_tensor_value_info("action", TensorProto.FLOAT, [1, action_dim])], initializer=[lo, hi])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 10)  # readable by onnxruntime builds a few releases old
    onnx.checker.check_model(model)
    return model


def _io(name: str, shape: list[int], meaning: str) -> dict[str, Any]:
    return {"name": name, "shape": shape, "dtype": "float32", "meaning": meaning}


def _declared_io(model: onnx.ModelProto, declared: list[dict[str, Any]], which: str) -> list[dict[str, Any]]:
    """The declared inputs / outputs the traced graph kept (the BC exporter drops the unused noise input)."""
    names = {v.name for v in (model.graph.input if which == "input" else model.graph.output)}
    return [d for d in declared if d["name"] in names]


def _save(model: onnx.ModelProto, out: Path) -> None:
    import onnx

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    onnx.save_model(model, str(tmp))
    os.replace(tmp, out)


def _producer(model: onnx.ModelProto, doc: str) -> None:
    model.producer_name = "omnipianist.policy_export"
    model.producer_version = __version__
    model.doc_string = doc


# ----------------------------------------------------------------------------------- generalist
def export_generalist(src: str | Path, out: str | Path, euler_steps: int | None = None, opset: int = DEFAULT_OPSET,
                      scene: Scene | None = None) -> dict[str, Any]:
    """Export a generalist checkpoint; returns the stored metadata."""
    from sim_training.models.scene import build_scene

    model, meta, file = load_checkpoint(src)
    emb = embodiment_from_meta(meta.get("embodiment_key") or meta["embodiment"])
    scene = scene if scene is not None else build_scene(emb)
    residual = bool(meta.get("residual_on_prior"))
    layout = base_layout(meta["observation_layout"])  # the environment's (what the observation builder makes)
    k = int(euler_steps or meta["k_steps"])
    if k < 1:
        raise ValueError(f"euler_steps must be >= 1, got {k}")
    to, h = int(meta["obs_horizon"]), int(meta["pred_horizon"])
    d, a = int(meta["obs_dim"]), int(meta["action_dim"])
    proto = _trace(sampler_module(model, k), (torch.zeros(1, to, d), torch.zeros(1, h, a)),
                   ["obs_hist", "noise"], ["action_chunk"], opset)
    norm = model.normalizer
    model_type = str(meta.get("model") or getattr(model, "kind", "fmt"))
    obs_meaning = ("raw observations (layout units), oldest first; at an episode start the first observation "
                   "fills every slot")
    if residual:
        obs_meaning += f"; each row is obs ⊕ {PRIOR_FIELD} (the OT/IK prior's action at that step, A values)"
    inputs = [_io("obs_hist", [1, to, d], obs_meaning),
              _io("noise", [1, h, a], "initial flow noise, standard normal")]
    out_meta: dict[str, Any] = {
        "schema": SCHEMA, "kind": "generalist",
        "model": {"type": model_type, "config": config_dict(model.config), "params": model.n_params(),
                  "sha256": state_dict_sha256(model.state_dict())},
        "graph": {"inputs": _declared_io(proto, inputs, "input"),
                  "outputs": [_io("action_chunk", [1, h, a], "raw action chunk (env action units, before the "
                                                             "runtime's clip to [-1, 1]); row 0 executes first")],
                  "opset": opset, "euler_steps": k if model_type == "fmt" else 0,
                  "observation_encodings_per_call": 1},
        "embodiment": embodiment_dict(emb),
        "observation_layout": layout,
        "joint_order": list(emb.all_joint_names), "fingertip_order": list(emb.fingertip_names),
        "action": action_dict(emb, scene),
        "normalization": {
            "applied": "inside the graph",
            "observation": {"formula": "clip((obs - mean) / std, -clip, clip)", "mean": floats(norm.obs_mean),
                            "std": floats(norm.obs_std), "clip": norm.obs_clip},
            "action": {"formula": "raw = low + (a + 1) / 2 * (high - low)", "low": floats(norm.action_low),
                       "high": floats(norm.action_high)},
        },
        "control_dt": float(meta["control_dt"]), "lookahead": int(layout["lookahead"]),
        "obs_horizon": to, "pred_horizon": h, "execute_horizon": int(meta.get("execute_horizon", 1)), "k_steps": k,
        "noise": {"shape": [1, h, a], "distribution": "standard normal", "default_mode": "fixed", "default_seed": 0,
                  "fixed_draw": "sim_training.noise.fixed_noise(shape, seed) (numpy PCG64)",
                  "used": any(i["name"] == "noise" for i in _declared_io(proto, inputs, "input"))},
        "residual_on_prior": residual,
        "data_card_id": meta.get("data_card_id"),
        "source": {"checkpoint": str(Path(file).resolve()), "store": meta.get("store"), "step": meta.get("step"),
                   "train_pieces": len(meta.get("train_pieces") or []),
                   "train_piece_ids": list(meta.get("train_pieces") or []), "model": meta.get("model")},
        "export": export_info(),
    }
    if residual:
        out_meta["prior_config"] = dict(meta.get("prior_config") or {})
        out_meta["action_formula"] = ("clip(prior(obs) + action_chunk[0, j], -1, 1), prior = OTIKPrior(prior_config) "
                                      "stepped once per control step by the runtime")
    check_contract(out_meta, emb, scene, where=f"{file} (export)")
    _producer(proto, f"omnipianist generalist ({model_type}, K={k}) for {emb.key}")
    stored = attach_metadata(proto, out_meta)
    _save(proto, Path(out))
    return stored


# ----------------------------------------------------------------------------------- experts
def _expert_common(emb: Embodiment, scene: Scene, layout: dict[str, Any], lookahead: int) -> dict[str, Any]:
    return {
        "schema": SCHEMA, "embodiment": embodiment_dict(emb), "observation_layout": layout,
        "joint_order": list(emb.all_joint_names), "fingertip_order": list(emb.fingertip_names),
        "action": action_dict(emb, scene), "control_dt": _control_dt(), "lookahead": lookahead,
        "obs_horizon": 1, "pred_horizon": 1, "execute_horizon": 1, "data_card_id": None, "export": export_info(),
    }


def _control_dt() -> float:
    return CONTROL_DT_S


def export_residual_expert(policy: ExpertPolicy, out: str | Path, opset: int = DEFAULT_OPSET) -> dict[str, Any]:
    """Export a loaded :class:`~sim_training.experts.policy.ExpertPolicy` (residual DroQ actor); returns the metadata."""
    emb, meta = policy.embodiment, policy.meta
    p, a = int(meta["policy_input_dim"]), int(meta["action_dim"])
    norm = policy.obs_norm
    if norm.count > 0:
        mean, std = norm.mean, np.sqrt(norm.var + 1e-8)
    else:  # RunningNorm before any update is the identity (then the clip)
        mean, std = np.zeros(p), np.ones(p)
    graph = ResidualActorGraph(policy.actor, mean, std, norm.clip)
    proto = _trace(graph, (torch.zeros(1, p),), ["policy_input"], ["residual"], opset)
    with_prior = bool(meta["with_prior"])
    kind = "residual" if with_prior else "actor"
    out_meta = _expert_common(emb, policy.scene, meta["observation_layout"], policy.layout.lookahead)
    out_meta.update({
        "kind": kind,
        "model": {"type": "droq-actor", "config": meta["droq"], "params": sum(q.numel() for q in policy.actor.parameters()),
                  "sha256": state_dict_sha256({**{f"actor.{k}": v for k, v in policy.actor.state_dict().items()},
                                               "norm.mean": norm.mean, "norm.var": norm.var})},
        "graph": {"inputs": [_io("policy_input", [1, p], "raw obs[observation_index]" + (" ⊕ prior action" if with_prior
                                                                                          else ""))],
                  "outputs": [_io("residual", [1, a], "tanh(actor mean): the deterministic "
                                                      + ("residual" if with_prior else "action"))],
                  "opset": opset, "euler_steps": 0, "observation_encodings_per_call": 1},
        "normalization": {"applied": "inside the graph",
                          "policy_input": {"formula": "clip((x - mean) / std, -clip, clip), std = sqrt(var + 1e-8)",
                                           "mean": floats(mean), "std": floats(std), "clip": norm.clip,
                                           "count": norm.count}},
        "policy_input": {"obs_mode": meta["obs_mode"], "with_prior": with_prior,
                         "observation_index": [int(i) for i in policy.index],
                         "layout": "obs[observation_index] ⊕ prior_action" if with_prior else "obs[observation_index]"},
        "source": {"checkpoint": str(Path(policy.source).resolve()), "piece": meta.get("piece"),
                   "stretch": meta.get("stretch")},
    })
    if with_prior:
        out_meta["residual_scale"] = float(meta["residual_scale"])
        out_meta["prior_config"] = meta["prior_config"]
        out_meta["action_formula"] = "clip(prior(obs) + residual_scale * residual, -1, 1)"
    else:
        out_meta["action_formula"] = "clip(residual, -1, 1)"
    check_contract(out_meta, emb, policy.scene, where=f"{policy.source} (export)")
    _producer(proto, f"omnipianist {kind} expert ({meta.get('piece')}) for {emb.key}")
    stored = attach_metadata(proto, out_meta)
    _save(proto, Path(out))
    return stored


def export_prior_expert(expert_dir: Path, expert_json: dict[str, Any], out: str | Path, opset: int = DEFAULT_OPSET,
                        scene: Scene | None = None) -> dict[str, Any]:
    """Export a searched-prior expert (no network): the runtime computes the prior, the graph clips it."""
    from sim_training.env.observation import ObservationLayout
    from sim_training.experts.search import load_prior_config
    from sim_training.models.scene import build_scene

    emb = get_embodiment(expert_json["embodiment"], expert_json.get("action_set", "reduced"),
                         bool(expert_json.get("forearm_z", False)))
    scene = scene if scene is not None else build_scene(emb)
    lookahead = int(expert_json.get("lookahead") or LOOKAHEAD_STEPS)
    config = load_prior_config(expert_dir / expert_json.get("best_prior", "best_prior.json"))
    a = emb.action_dim
    proto = _clip_graph(a, opset)
    out_meta = _expert_common(emb, scene, ObservationLayout.for_embodiment(emb, lookahead).to_dict(), lookahead)
    out_meta.update({
        "kind": "prior",
        "model": {"type": "none", "config": {}, "params": 0, "sha256": None},
        "graph": {"inputs": [_io("prior_action", [1, a], "the OT/IK prior's action")],
                  "outputs": [_io("action", [1, a], "clip(prior_action, -1, 1)")], "opset": opset, "euler_steps": 0,
                  "observation_encodings_per_call": 0},
        "normalization": {},
        "policy_input": {"obs_mode": None, "with_prior": True, "observation_index": [], "layout": "prior_action"},
        "prior_config": dataclasses.asdict(config),
        "action_formula": "clip(prior(obs), -1, 1)",
        "source": {"checkpoint": str((expert_dir / "expert.json").resolve()), "piece": expert_json.get("piece"),
                   "stretch": expert_json.get("stretch"), "expert_f1": expert_json.get("expert_f1")},
    })
    check_contract(out_meta, emb, scene, where=f"{expert_dir} (export)")
    _producer(proto, f"omnipianist searched-prior expert ({expert_json.get('piece')}) for {emb.key}")
    stored = attach_metadata(proto, out_meta)
    _save(proto, Path(out))
    return stored


# ----------------------------------------------------------------------------------- knob head
def export_knob_head(src: str | Path, out: str | Path, opset: int = DEFAULT_OPSET,
                     scene: Scene | None = None) -> dict[str, Any]:
    """Export a knob-head checkpoint (:mod:`sim_training.imitation.knobhead`): the graph maps the raw
    observation to the knobs' unit coordinates; the runtime decodes them with the code's knob table and
    runs the prior with them. Returns the stored metadata."""
    from sim_training.experts.planner import SPACES
    from sim_training.fingering.knobs import table_mismatch
    from sim_training.imitation.knobhead import load_knob_head
    from sim_training.models.scene import build_scene

    net, meta = load_knob_head(src)
    emb = embodiment_from_meta(meta["embodiment"])
    scene = scene if scene is not None else build_scene(emb)
    table = list(meta["knob_table"])
    names = [n for n, sp in SPACES.items() if not table_mismatch(table, sp)]
    if not names:
        raise ContractError(f"{src}: its knob table matches none of this code's ({sorted(SPACES)}): "
                            f"{table_mismatch(table, SPACES['reach'])}")
    d, k = int(meta["obs_dim"]), len(table)
    proto = _trace(net, (torch.zeros(1, d),), ["observation"], ["knob_coordinates"], opset)
    layout = meta["observation_layout"]
    out_meta: dict[str, Any] = {
        "schema": SCHEMA, "kind": "knobs",
        "model": {"type": "knob-mlp", "config": dict(meta["model"]), "params": net.n_params(),
                  "sha256": state_dict_sha256(net.state_dict())},
        "graph": {"inputs": [_io("observation", [1, d], "the raw observation (layout units)")],
                  "outputs": [_io("knob_coordinates", [1, k], "each knob's unit coordinate in [0, 1], in knob_table "
                                                              "order: value = low + u * (high - low), ints rounded")],
                  "opset": opset, "euler_steps": 0, "observation_encodings_per_call": 1},
        "embodiment": embodiment_dict(emb), "observation_layout": layout,
        "joint_order": list(emb.all_joint_names), "fingertip_order": list(emb.fingertip_names),
        "action": action_dict(emb, scene),
        "normalization": {"applied": "inside the graph",
                          "observation": {"formula": "clip((obs - mean) / std, -clip, clip)",
                                          "mean": floats(net.obs_mean.numpy()), "std": floats(net.obs_std.numpy()),
                                          "clip": float(net.config.obs_clip)}},
        "control_dt": _control_dt(), "lookahead": int(layout["lookahead"]),
        "obs_horizon": 1, "pred_horizon": 1, "execute_horizon": 1,
        "prior_config": dict(meta["base_prior"]), "knob_space": names[0], "knob_table": table,
        "knob_window": int(meta["window"]),
        "action_formula": ("every knob_window steps from reset: knobs = decode(graph(obs)) on prior_config; every step: "
                           "clip(prior(obs), -1, 1), prior = OTIKPrior(prior_config with the knobs)"),
        "data_card_id": meta.get("data_card_id"),
        "source": {"checkpoint": str(Path(src).resolve()), "train_pieces": len(meta.get("train_pieces") or []),
                   "train_piece_ids": list(meta.get("train_pieces") or []), "samples": meta.get("samples"),
                   "steps": meta.get("steps"), "labels": meta.get("labels", "planner")},
        "export": export_info(),
    }
    check_contract(out_meta, emb, scene, where=f"{src} (export)")
    _producer(proto, f"omnipianist knob head ({names[0]} knobs, window {meta['window']}) for {emb.key}")
    stored = attach_metadata(proto, out_meta)
    _save(proto, Path(out))
    return stored


# ----------------------------------------------------------------------------------- dispatch
def source_kind(src: str | Path) -> str:
    """``generalist``, ``expert`` (a DroQ checkpoint / run directory), ``knobs`` (a knob-head checkpoint or
    its folder) or ``expert-dir`` (``expert.json`` folder).

    Raises PolicyFileError naming the path when it is none of them.
    """
    path = Path(src)
    if not path.exists():
        raise PolicyFileError(f"{path}: no such checkpoint or directory")
    if path.is_dir():
        if (path / EXPERT_JSON).is_file():
            return "expert-dir"
        if (path / "knobhead.pt").is_file():
            return "knobs"
        if any((path / n).is_file() for n in ("policy.pt",)):
            return "generalist"
        if (path / "best.pt").is_file():
            return "expert"
        if (path / "last.pt").is_file():
            return _file_kind(path / "last.pt")
        raise PolicyFileError(f"{path}: no policy.pt / best.pt / last.pt / expert.json in this directory")
    return _file_kind(path)


def _file_kind(path: Path) -> str:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # expert last.pt holds numpy RNG states (not weights-only loadable)
        if path.name == "last.pt":
            return "expert"
        raise PolicyFileError(f"{path}: not a torch checkpoint ({type(exc).__name__}: {exc})") from exc
    kind = (state.get("meta") or {}).get("kind") if isinstance(state, dict) else None
    if kind == "omnipianist-generalist":
        return "generalist"
    if kind == "omnipianist-expert":
        return "expert"
    if kind == "omnipianist-knob-head":
        return "knobs"
    raise PolicyFileError(f"{path}: not an omnipianist generalist or expert checkpoint (meta kind {kind!r})")


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """``omnipianist export``: what to export, where, and the optional parity check."""

    checkpoint: str = dataclasses.field(metadata={"help": "generalist checkpoint (policy.pt, last.pt or run dir), or "
                                                          "an expert (train_expert run dir / best.pt, or a "
                                                          "train_piece_expert folder)"})
    out: str = dataclasses.field(metadata={"help": "output file (.onnx)"})
    euler_steps: int | None = None
    """Euler steps inside the graph (default: the checkpoint's k_steps)"""
    opset: int = DEFAULT_OPSET
    """ONNX opset"""
    verify: bool = dataclasses.field(default=False, metadata={"action": "store_true"})
    """check ORT vs torch parity (max |delta action|, F1 of --piece); exit 1 when it fails"""
    piece: str = "twinkle"
    """piece for --verify"""
    n_random: int = 500
    """random inputs for --verify"""
    n_rollout: int = 500
    """rollout inputs for --verify"""


def export_policy(src: str | Path, out: str | Path, euler_steps: int | None = None, opset: int = DEFAULT_OPSET,
                  scene: Scene | None = None) -> dict[str, Any]:
    """Export any supported source (see the module docstring) to ``out``; returns a summary dict.

    Keys: ``out``, ``kind``, ``source``, ``embodiment``, ``euler_steps``, ``opset``, ``bytes``, ``nodes``,
    ``export_s``, ``graph_sha256``, ``model_sha256``, ``check_max_abs_diff`` (ORT vs torch on one random input).
    """
    if opset < MIN_OPSET:
        raise ValueError(f"opset {opset} is too old: LayerNormalization needs >= {MIN_OPSET}")
    out = Path(out)
    if out.suffix != ".onnx":
        raise ValueError(f"{out}: the output file must end in .onnx")
    t0 = time.perf_counter()
    kind = source_kind(src)
    expert = None
    knob_net = None
    if kind == "generalist":
        meta = export_generalist(src, out, euler_steps, opset, scene)
    elif kind == "knobs":
        from sim_training.imitation.knobhead import load_knob_head

        meta = export_knob_head(src, out, opset, scene)
        knob_net = load_knob_head(src)[0]
    elif kind == "expert":
        from sim_training.experts.policy import ExpertPolicy

        expert = ExpertPolicy.load(src, scene)
        meta = export_residual_expert(expert, out, opset)
    else:
        d = Path(src)
        ej = json.loads((d / EXPERT_JSON).read_text())
        if ej.get("kind") == "residual":
            from sim_training.experts.policy import ExpertPolicy

            expert = ExpertPolicy.load(d / (ej.get("residual_dir") or RESIDUAL_DIR), scene)
            meta = export_residual_expert(expert, out, opset)
        elif ej.get("kind") == "prior":
            meta = export_prior_expert(d, ej, out, opset, scene)
        else:
            raise PolicyFileError(f"{d / EXPERT_JSON}: unknown expert kind {ej.get('kind')!r}")
    export_s = time.perf_counter() - t0
    import onnx

    proto = onnx.load_model(str(out))
    return {"out": str(out), "kind": meta["kind"], "source": meta["source"]["checkpoint"],
            "embodiment": meta["embodiment"]["key"], "euler_steps": meta["graph"]["euler_steps"], "opset": opset,
            "bytes": out.stat().st_size, "nodes": len(proto.graph.node), "export_s": export_s,
            "graph_sha256": meta["graph"]["sha256"], "model_sha256": meta["model"]["sha256"],
            "check_max_abs_diff": _quick_check(out, src if kind == "generalist" else None, expert, meta, knob_net)}


def _quick_check(out: Path, generalist_src: str | Path | None, expert: ExpertPolicy | None,
                 meta: dict[str, Any], knob_net: nn.Module | None = None) -> float | None:
    """ORT vs torch on one random input (a smoke test of the file just written; :mod:`verify` does the real one)."""
    sess = make_session(out)
    rng = np.random.default_rng(0)
    feeds = {i["name"]: rng.standard_normal(i["shape"]).astype(np.float32) for i in meta["graph"]["inputs"]}
    (got,) = sess.run(None, feeds)
    if not np.all(np.isfinite(got)):
        raise ContractError(f"{out}: the exported graph returns non-finite values on a random input")
    with torch.no_grad():
        if generalist_src is not None:
            model = load_checkpoint(generalist_src)[0]
            noise = torch.from_numpy(feeds["noise"]) if "noise" in feeds else None
            want = model.sample(torch.from_numpy(feeds["obs_hist"]), noise, meta["k_steps"]).numpy()
        elif knob_net is not None:
            want = knob_net(torch.from_numpy(feeds["observation"])).numpy()
        elif expert is not None:
            x = expert.obs_norm.normalize(feeds["policy_input"].astype(np.float64))
            want = expert.actor.act_deterministic(torch.from_numpy(x)).numpy()
        else:
            want = np.clip(feeds["prior_action"], -1.0, 1.0)
    return float(np.max(np.abs(got - want)))
