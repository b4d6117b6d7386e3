"""The contract an exported policy carries: schema ``omnipianist.policy/1`` in the ONNX ``metadata_props``.

One entry, key :data:`METADATA_KEY`, value a JSON object. Keys (all kinds):

==========================  ===========================================================================
``schema``                  ``"omnipianist.policy/1"`` (a reader refuses any other)
``kind``                    ``generalist`` (obs history + noise -> action chunk), ``residual`` (policy
                            input -> residual added to the OT/IK prior), ``actor`` (a DroQ actor without
                            prior), ``prior`` (the searched prior alone; the graph only clips) or
                            ``knobs`` (observation -> the prior's knobs in unit coordinates, set once
                            every ``knob_window`` steps; the runtime's prior acts)
``model``                   ``type`` (fmt | bc | droq-actor | none), ``config``, ``params``, ``sha256``
                            (of the source weights)
``graph``                   ``inputs`` / ``outputs`` (name, shape, dtype, meaning), ``opset``,
                            ``euler_steps``, ``sha256`` (of the graph itself, checked at load)
``embodiment``              ``key``, ``name``, ``action_set``, ``forearm_z``
``observation_layout``      :meth:`ObservationLayout.to_dict` (field names, offsets, shapes, units)
``joint_order``             the observation's hand-joint order; ``fingertip_order`` likewise
``action``                  ``names`` (order), ``dim``, ``clip``, ``scaling`` (actuator range per entry:
                            ``ctrl = low + (a + 1) / 2 * (high - low)``; sustain threshold)
``normalization``           statistics applied INSIDE the graph (recorded for readers without the graph)
``control_dt``, ``lookahead``, ``obs_horizon``, ``pred_horizon``, ``execute_horizon``
``noise``                   generalist only: shape, distribution and how the default ``fixed`` draw is made
``residual_scale``,         residual only: env action = clip(prior(obs) + residual_scale * residual, -1, 1);
``prior_config``            the prior's :class:`~sim_training.fingering.prior.PriorConfig` (dict)
``knob_space``,             knobs only: the name of the code's knob table the network was trained on
``knob_table``,             (``sim_training.experts.planner.SPACES``) and the table itself (name, low,
``knob_window``             high, kind per knob, in output order; refused unless equal to the code's);
                            the steps between two knob choices
``policy_input``            residual / actor / prior: ``obs_mode``, ``observation_index``, ``with_prior``
``data_card_id``, ``source``, ``export`` (tool, version, torch / onnx versions, time)
==========================  ===========================================================================

:func:`check_contract` is what a runtime runs at start-up: the metadata against the embodiment, the
observation builder's layout, the action order and the actuator ranges; a mismatch raises
:class:`~omnipianist.errors.ContractError` naming the field.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from omnipianist.errors import ContractError, OmnipianistError
from sim_training.constants import CONTROL_DT_S, SUSTAIN_ACTIVE_THRESHOLD
from sim_training.models.embodiment import Embodiment, get_embodiment

if TYPE_CHECKING:
    import onnx

    from sim_training.models.scene import Scene

SCHEMA = "omnipianist.policy/1"
"""Versioned schema of the metadata; bump the number on any incompatible change."""
METADATA_KEY = "omnipianist.policy"
"""The ``metadata_props`` key holding the JSON object."""
KINDS: tuple[str, ...] = ("generalist", "residual", "actor", "prior", "knobs")
COMMON_KEYS: tuple[str, ...] = (
    "schema", "kind", "model", "graph", "embodiment", "observation_layout", "joint_order", "action",
    "normalization", "control_dt", "lookahead", "obs_horizon", "pred_horizon", "execute_horizon", "export")
KIND_KEYS: dict[str, tuple[str, ...]] = {
    "generalist": ("noise", "k_steps"),
    "residual": ("residual_scale", "prior_config", "policy_input"),
    "actor": ("policy_input",),
    "prior": ("prior_config", "policy_input"),
    "knobs": ("prior_config", "knob_space", "knob_table", "knob_window"),
}
ACTION_SCALE_ATOL = 1e-9
"""Tolerance on actuator ranges (metres / radians) between the metadata and the scene."""


class PolicyFileError(OmnipianistError, ValueError):
    """A policy file that cannot be used: missing, not ONNX, no (or unreadable) omnipianist metadata."""


# ----------------------------------------------------------------------------------- hashes
def state_dict_sha256(state: Mapping[str, Any]) -> str:
    """sha256 (hex) of named tensors / arrays: names sorted, each name + dtype + shape + bytes."""
    h = hashlib.sha256()
    for name in sorted(state):
        value = state[name]
        arr = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        arr = np.ascontiguousarray(arr)
        h.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def graph_sha256(model: onnx.ModelProto) -> str:
    """sha256 (hex) of the graph (nodes, weights, inputs, outputs) and the opset imports; metadata excluded."""
    h = hashlib.sha256(model.graph.SerializeToString(deterministic=True))
    for imp in model.opset_import:
        h.update(f"|{imp.domain}:{imp.version}".encode())
    return h.hexdigest()


# ----------------------------------------------------------------------------------- building blocks
def embodiment_dict(emb: Embodiment) -> dict[str, Any]:
    return {"key": emb.key, "name": emb.name, "action_set": emb.action_set, "forearm_z": emb.forearm_z}


def action_scaling(emb: Embodiment, scene: Scene) -> dict[str, Any]:
    """How the action in [-1, 1] becomes actuator commands: per entry its actuator range (scene units)."""
    names = emb.action_names
    per = [{"name": n, "ctrl_low": float(lo), "ctrl_high": float(hi)}
           for n, lo, hi in zip(names[:-1], scene.action_ctrl_low, scene.action_ctrl_high, strict=True)]
    return {
        "formula": "ctrl = ctrl_low + (a + 1) / 2 * (ctrl_high - ctrl_low), a clipped to [-1, 1]",
        "units": "m (forearm slides) | rad (hinges)",
        "per_action": per,
        "sustain": {"name": names[-1], "pressed_when": f"(a + 1) / 2 >= {SUSTAIN_ACTIVE_THRESHOLD}"},
    }


def action_dict(emb: Embodiment, scene: Scene) -> dict[str, Any]:
    return {"names": list(emb.action_names), "dim": emb.action_dim, "clip": [-1.0, 1.0],
            "scaling": action_scaling(emb, scene)}


def floats(x: Any) -> list[float]:
    """A tensor / array as a flat list of Python floats (JSON)."""
    arr = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    return [float(v) for v in np.ravel(arr)]



# ----------------------------------------------------------------------------------- write / read
def attach_metadata(model: onnx.ModelProto, meta: dict[str, Any]) -> dict[str, Any]:
    """Write ``meta`` (after filling ``graph.sha256``) into ``model.metadata_props``; returns the stored dict."""
    meta = dict(meta)
    meta["graph"] = {**meta.get("graph", {}), "sha256": graph_sha256(model)}
    validate_metadata(meta, "export")
    for prop in list(model.metadata_props):
        if prop.key == METADATA_KEY:
            model.metadata_props.remove(prop)
    entry = model.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps(meta, separators=(",", ":"))
    return meta


def load_model_file(path: str | Path) -> onnx.ModelProto:
    """Parse ``path`` as an ONNX model; PolicyFileError (naming the path) for a missing file or anything not ONNX."""
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.is_file():
        raise PolicyFileError(f"{path}: no such policy file")
    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as exc:
        raise PolicyFileError(f"{path}: not an ONNX model ({type(exc).__name__}: {exc})") from exc
    if model.ir_version <= 0 or not model.graph.node or not model.opset_import:
        raise PolicyFileError(f"{path}: not an ONNX model (no graph nodes / IR version / opset in the file)")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise PolicyFileError(f"{path}: invalid ONNX model: {str(exc).splitlines()[0]}") from exc
    return model


def metadata_from_model(model: onnx.ModelProto, where: str = "policy") -> dict[str, Any]:
    """The validated metadata dict of a parsed model (PolicyFileError when absent or unreadable)."""
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props:
        raise PolicyFileError(f"{where}: ONNX model without {METADATA_KEY!r} metadata (keys: {sorted(props)}); "
                              f"export it with `omnipianist export CHECKPOINT --out FILE.onnx`")
    try:
        meta = json.loads(props[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise PolicyFileError(f"{where}: {METADATA_KEY!r} metadata is not valid JSON ({exc})") from exc
    validate_metadata(meta, where)
    return meta


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata dict of an exported policy file (validated against the schema)."""
    return metadata_from_model(load_model_file(path), str(path))


def validate_metadata(meta: Any, where: str = "policy") -> None:
    """Schema, kind and required keys; PolicyFileError naming what is wrong."""
    if not isinstance(meta, dict):
        raise PolicyFileError(f"{where}: metadata is a {type(meta).__name__}, expected a JSON object")
    if meta.get("schema") != SCHEMA:
        raise PolicyFileError(f"{where}: metadata schema {meta.get('schema')!r}, this runtime reads {SCHEMA!r}")
    kind = meta.get("kind")
    if kind not in KINDS:
        raise PolicyFileError(f"{where}: metadata kind {kind!r}, expected one of {list(KINDS)}")
    missing = [k for k in COMMON_KEYS + KIND_KEYS[kind] if k not in meta]
    if missing:
        raise PolicyFileError(f"{where}: metadata lacks {missing} (schema {SCHEMA}, kind {kind!r})")


# ----------------------------------------------------------------------------------- contract
def embodiment_of(meta: Mapping[str, Any]) -> Embodiment:
    """The embodiment the metadata names."""
    e = meta["embodiment"]
    return get_embodiment(e["name"], e.get("action_set", "reduced"), bool(e.get("forearm_z", False)))


def _first_difference(ours: list[Any], theirs: list[Any]) -> str:
    for i, (a, b) in enumerate(zip(theirs, ours, strict=False)):
        if a != b:
            return f"entry {i} is {a!r}, expected {b!r}"
    return f"length {len(theirs)}, expected {len(ours)}"


def check_contract(meta: Mapping[str, Any], embodiment: Embodiment, scene: Scene | None = None,
                   lookahead: int | None = None, where: str = "policy metadata") -> None:
    """Raise ContractError naming the first field where ``meta`` disagrees with this side.

    Checked: embodiment key; observation layout (``ObservationLayout.for_embodiment(embodiment,
    lookahead)`` — what the observation builder produces — field by field); joint and fingertip order;
    action names (order); control dt; horizons against the graph; and, when ``scene`` is given, the
    actuator range behind every action entry. A ``knobs`` policy: its knob table equals the code's
    table of the same name, knob by knob (the runtime decodes the network's outputs with the code's).
    """
    from sim_training.env.observation import ObservationLayout

    if meta.get("kind") == "knobs":
        check_knob_table(meta, where)

    key = meta["embodiment"].get("key")
    if key != embodiment.key:
        raise ContractError(f"{where}: embodiment is {key!r}, this embodiment is {embodiment.key!r}")
    lay_meta = meta["observation_layout"]
    if lookahead is not None and int(meta["lookahead"]) != lookahead:
        raise ContractError(f"{where}: lookahead is {meta['lookahead']!r}, the observation builder uses {lookahead!r}")
    layout = ObservationLayout.for_embodiment(embodiment, int(lookahead if lookahead is not None else meta["lookahead"]))
    layout.check_matches(lay_meta, where=f"{where} observation_layout")
    if list(meta["joint_order"]) != list(embodiment.all_joint_names):
        raise ContractError(f"{where}: joint_order differs: "
                            f"{_first_difference(list(embodiment.all_joint_names), list(meta['joint_order']))}")
    if "fingertip_order" in meta and list(meta["fingertip_order"]) != list(embodiment.fingertip_names):
        raise ContractError(f"{where}: fingertip_order differs: "
                            f"{_first_difference(list(embodiment.fingertip_names), list(meta['fingertip_order']))}")
    names = list(meta["action"]["names"])
    if names != list(embodiment.action_names):
        raise ContractError(f"{where}: action names differ: {_first_difference(list(embodiment.action_names), names)}")
    if int(meta["action"]["dim"]) != embodiment.action_dim:
        raise ContractError(f"{where}: action dim is {meta['action']['dim']}, this embodiment has {embodiment.action_dim}")
    if not np.isclose(float(meta["control_dt"]), CONTROL_DT_S, rtol=0.0, atol=1e-9):
        raise ContractError(f"{where}: control_dt is {meta['control_dt']!r} s, the controller runs at {CONTROL_DT_S} s")
    if scene is not None:
        if scene.embodiment != embodiment:
            raise ContractError(f"{where}: scene is for {scene.embodiment.key!r}, not {embodiment.key!r}")
        per = meta["action"]["scaling"]["per_action"]
        want = list(zip(embodiment.action_names[:-1], scene.action_ctrl_low, scene.action_ctrl_high, strict=True))
        if len(per) != len(want):
            raise ContractError(f"{where}: action scaling has {len(per)} entries, the scene has {len(want)}")
        for p, (name, lo, hi) in zip(per, want, strict=True):
            if p["name"] != name:
                raise ContractError(f"{where}: action scaling entry {p['name']!r}, expected {name!r}")
            for label, got, ref in (("ctrl_low", p["ctrl_low"], lo), ("ctrl_high", p["ctrl_high"], hi)):
                if abs(float(got) - float(ref)) > ACTION_SCALE_ATOL:
                    raise ContractError(f"{where}: action scaling of {name!r}: {label} is {got!r}, "
                                        f"the actuator's range says {float(ref)!r}")


def check_knob_table(meta: Mapping[str, Any], where: str = "policy metadata") -> None:
    """The ``knobs`` policy's knob table is this code's table ``knob_space``; ContractError otherwise."""
    from sim_training.experts.planner import SPACES
    from sim_training.fingering.knobs import table_mismatch

    name = meta.get("knob_space")
    if name not in SPACES:
        raise ContractError(f"{where}: knob_space {name!r} is not one of this code's knob tables {sorted(SPACES)}")
    why = table_mismatch(list(meta["knob_table"]), SPACES[name])
    if why:
        raise ContractError(f"{where}: knob_table: {why} (the model was trained on other knobs; retrain or use "
                            f"the code it was exported with)")
    if int(meta["knob_window"]) < 1:
        raise ContractError(f"{where}: knob_window is {meta['knob_window']!r}; it must be >= 1 step")


def check_graph(model: onnx.ModelProto, meta: Mapping[str, Any], where: str = "policy") -> None:
    """The graph is the one the metadata describes: its hash, and its input / output names and shapes."""
    want = meta["graph"].get("sha256")
    got = graph_sha256(model)
    if want != got:
        raise ContractError(f"{where}: graph sha256 is {got[:16]}..., the metadata says {str(want)[:16]}... "
                            f"(the graph was changed after export, or the metadata belongs to another graph)")
    for label, values, declared in (("input", model.graph.input, meta["graph"]["inputs"]),
                                    ("output", model.graph.output, meta["graph"]["outputs"])):
        actual = {v.name: [d.dim_value if d.HasField("dim_value") else d.dim_param
                           for d in v.type.tensor_type.shape.dim] for v in values}
        for d in declared:
            if d["name"] not in actual:
                raise ContractError(f"{where}: graph has no {label} {d['name']!r} (it has {sorted(actual)})")
            if list(actual[d["name"]]) != list(d["shape"]):
                raise ContractError(f"{where}: graph {label} {d['name']!r} has shape {actual[d['name']]}, "
                                    f"the metadata says {d['shape']}")
