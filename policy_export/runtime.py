"""The exported policy at run time: ``Policy.load(path, embodiment)``, ``reset()``, ``act(obs) -> action | None``.

Shared by the simulator evaluation (``omnipianist evaluate --policy model.onnx`` via
:func:`sim_training.imitation.policy.load_policy`) and the ROS policy node. At load it

1. parses the file (not ONNX / no metadata / another schema -> :class:`PolicyFileError`),
2. checks the graph against its metadata (hash, input and output shapes) and the metadata against
   the embodiment, the observation builder's layout, the action order and the actuator ranges
   (:func:`policy_export.metadata.check_contract`: :class:`ContractError` naming the field),
3. opens an onnxruntime session set for flat latency on a shared core (:func:`session_options`: one
   intra-op thread, sequential execution, all graph optimisations, no spin-waiting),
4. preallocates the input / output buffers (bound once through an IOBinding) and warms up.

Per control step, ``act(obs)``:

* refuses an observation of the wrong shape (``ValueError``: a caller bug, never a silent action);
* refuses an observation with NaN / Inf: returns ``None``, increments :attr:`Policy.refused_count` and
  records :attr:`Policy.last_refusal` (the history is left untouched); a non-finite graph output is
  refused the same way;
* generalist: pushes the observation into the history (``obs_horizon`` frames, the first of an
  episode fills every slot), draws the noise (``fixed``: the same draw every call, from ``seed`` —
  the draw :class:`~sim_training.imitation.policy.GeneralistPolicy` makes, so ORT and torch agree;
  ``random``: a fresh draw per chunk, reseeded at ``reset``; ``zero``), runs the graph and returns the
  first action of the chunk (or the next queued one when ``execute`` > 1), clipped to [-1, 1];
* knob head (``kind: knobs``): every ``knob_window`` steps from ``reset`` runs the graph on the
  observation, decodes its unit coordinates with the code's knob table (refused at load unless it is
  the model's) and sets the prior's knobs (:class:`~sim_training.fingering.knobs.KnobPrior`); every
  step returns the prior's action, clipped;
* residual expert: computes the OT/IK prior with :class:`~sim_training.fingering.prior.OTIKPrior`
  and the metadata's prior config (the simulator's code), runs the graph on obs[index] ⊕ prior action
  and returns clip(prior + residual_scale * residual, -1, 1) (``actor``: clip(output); ``prior``:
  the clipped prior).

Actions are float64 (A,), in the embodiment's action order.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from omnipianist.errors import ContractError
from policy_export.metadata import (
    check_contract,
    check_graph,
    check_knob_table,
    embodiment_of,
    load_model_file,
    metadata_from_model,
    read_metadata,
)
from sim_training.models.embodiment import embodiment_from_meta
from sim_training.noise import fixed_noise, noise_generator

if TYPE_CHECKING:
    import onnxruntime as ort

    from sim_training.models.embodiment import Embodiment
    from sim_training.models.scene import Scene

NoiseMode = Literal["fixed", "random", "zero"]
DEFAULT_WARMUP = 5


def session_options(threads: int = 1) -> ort.SessionOptions:
    """ORT settings that keep latency flat on a shared core.

    ``threads`` intra-op threads (1 by default), 1 inter-op thread, sequential execution, all graph
    optimisations (constant folding, node fusions), and no spin-waiting (a spinning thread burns the core
    it shares with the simulator or the ROS executor and shows up as p99 jitter).
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    so.log_severity_level = 3  # errors only (no per-session warnings on stderr)
    return so


def make_session(model: str | Path | bytes, threads: int = 1) -> ort.InferenceSession:
    """A CPU session of ``model`` (path or serialized bytes) with :func:`session_options`."""
    import onnxruntime as ort

    src = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(src, session_options(threads), providers=["CPUExecutionProvider"])


def _to_embodiment(value: str | Embodiment | None, meta: dict[str, Any]) -> Embodiment:
    if value is None:
        return embodiment_of(meta)

    return embodiment_from_meta(value)


class _NonFinite(Exception):
    """The knob head's graph returned NaN / Inf (refused like a non-finite action)."""


class Policy:
    """ORT runtime of an exported policy; see the module docstring. Build it with :meth:`load`."""

    def __init__(self, model_bytes: bytes, meta: dict[str, Any], embodiment: Embodiment, source: str = "",
                 scene: Scene | None = None, noise: NoiseMode = "fixed", seed: int = 0, execute: int | None = None,
                 threads: int = 1, warmup: int = DEFAULT_WARMUP) -> None:
        if noise not in ("fixed", "random", "zero"):
            raise ValueError(f"noise must be 'fixed', 'random' or 'zero', got {noise!r}")
        self.meta = meta
        self.source = source
        self.kind: str = meta["kind"]
        self._embodiment = embodiment
        self.noise_mode: NoiseMode = noise
        self.seed = int(seed)
        self.refused_count = 0
        """Observations (or graph outputs) refused because of NaN / Inf."""
        self.last_refusal: str | None = None
        self.calls = 0
        self.last_inference_s = 0.0
        """Wall time of the last graph run (the ROS node reports it on /diagnostics)."""
        layout = meta["observation_layout"]
        self.obs_dim = int(layout["size"])
        self._fields = [(f["name"], int(f["offset"]), int(np.prod(f["shape"]))) for f in layout["fields"]]
        self.action_dim = int(meta["action"]["dim"])
        self.obs_horizon = int(meta["obs_horizon"])
        self.pred_horizon = int(meta["pred_horizon"])
        self.execute = int(execute if execute is not None else meta.get("execute_horizon", 1))
        if not 1 <= self.execute <= self.pred_horizon:
            raise ValueError(f"execute must be in 1..{self.pred_horizon}, got {self.execute}")
        self.threads = int(threads)
        self.session = make_session(model_bytes, threads)
        self._inputs = {i["name"]: i for i in meta["graph"]["inputs"]}
        self._output = meta["graph"]["outputs"][0]
        self._buffers = {name: np.zeros(i["shape"], dtype=np.float32) for name, i in self._inputs.items()}
        self._out = np.zeros(self._output["shape"], dtype=np.float32)
        self._bind()

        self._queue: list[np.ndarray] = []
        self.last_chunk: np.ndarray | None = None
        """Generalists: the last sampled chunk (H, A) as executed actions (prior added for residual
        policies), row 0 first; the ROS policy node publishes it as a JointTrajectory."""
        self._fresh = True
        self.prior = None
        self.residual_on_prior = bool(meta.get("residual_on_prior")) and self.kind == "generalist"
        if self.kind == "generalist":
            self._init_noise()
            if self.residual_on_prior:
                from sim_training.fingering.knobs import prior_config_from_dict
                from sim_training.fingering.prior import OTIKPrior
                from sim_training.models.scene import build_scene

                scene = scene if scene is not None else build_scene(embodiment)
                self.prior = OTIKPrior(scene, prior_config_from_dict(meta.get("prior_config") or {}),
                                       int(meta["lookahead"]))
        elif self.kind == "knobs":
            self._init_knobs(scene)
        else:
            self._init_expert(scene)
        for _ in range(max(int(warmup), 0)):
            self._run()
        self.reset()

    # ------------------------------------------------------------------------------ construction
    @classmethod
    def load(cls, path: str | Path, embodiment: str | Embodiment | None = None, *, noise: NoiseMode = "fixed",
             seed: int = 0, execute: int | None = None, k_steps: int | None = None, threads: int = 1,
             warmup: int = DEFAULT_WARMUP, scene: Scene | None = None, lookahead: int | None = None) -> Policy:
        """Load ``path``, check its contract against ``embodiment`` (default: the one it names), open the session.

        ``scene`` (default: built for the embodiment) checks the actuator ranges and runs the prior of
        residual experts; ``lookahead`` is the observation builder's (default: the metadata's).
        ``k_steps`` must equal the Euler steps inside the graph (they are fixed at export).
        Raises PolicyFileError (file), ContractError (metadata vs this side, naming the field).
        """
        from sim_training.models.scene import build_scene

        path = Path(path)
        model = load_model_file(path)
        meta = metadata_from_model(model, str(path))
        check_graph(model, meta, str(path))
        emb = _to_embodiment(embodiment, meta)
        if scene is None:
            scene = build_scene(emb)
        check_contract(meta, emb, scene, lookahead, where=str(path))
        if k_steps is not None and meta["kind"] == "generalist" and int(k_steps) != int(meta["k_steps"]):
            raise ContractError(f"{path}: the graph holds {meta['k_steps']} Euler steps, {k_steps} were asked "
                                f"(re-export with --euler-steps {k_steps})")
        return cls(model.SerializeToString(), meta, emb, str(path), scene, noise, seed, execute, threads, warmup)

    @staticmethod
    def read_metadata(path: str | Path) -> dict[str, Any]:
        """The metadata dict of ``path`` (schema-checked; nothing else is loaded)."""
        return read_metadata(path)

    def _bind(self) -> None:
        import onnxruntime as ort

        self._binding = self.session.io_binding()
        self._ort_values = []  # keep the OrtValues (views of the numpy buffers) alive
        for name, buf in self._buffers.items():
            v = ort.OrtValue.ortvalue_from_numpy(buf)
            self._ort_values.append(v)
            self._binding.bind_ortvalue_input(name, v)
        out = ort.OrtValue.ortvalue_from_numpy(self._out)
        self._ort_values.append(out)
        self._binding.bind_ortvalue_output(self._output["name"], out)

    def _init_noise(self) -> None:
        shape = tuple(self.meta["noise"]["shape"])
        self._fixed_noise = fixed_noise(shape, self.seed)
        self._gen = noise_generator(self.seed)
        self._has_noise = "noise" in self._buffers

    def _init_expert(self, scene: Scene | None) -> None:
        from sim_training.fingering.knobs import prior_config_from_dict
        from sim_training.fingering.prior import OTIKPrior
        from sim_training.models.scene import build_scene

        pin = self.meta["policy_input"]
        self._index = np.asarray(pin["observation_index"], dtype=np.int64)
        self._input_name = self.meta["graph"]["inputs"][0]["name"]
        self.residual_scale = float(self.meta.get("residual_scale", 0.0))
        if self.kind in ("residual", "prior"):
            scene = scene if scene is not None else build_scene(self._embodiment)
            self.prior = OTIKPrior(scene, prior_config_from_dict(self.meta["prior_config"]), int(self.meta["lookahead"]))

    def _init_knobs(self, scene: Scene | None) -> None:
        from sim_training.experts.planner import SPACES
        from sim_training.fingering.knobs import KnobPrior, prior_config_from_dict
        from sim_training.fingering.prior import OTIKPrior
        from sim_training.models.scene import build_scene

        check_knob_table(self.meta, self.source)  # decoded with the code's table: it must be the model's
        scene = scene if scene is not None else build_scene(self._embodiment)
        base = prior_config_from_dict(self.meta["prior_config"])
        self.prior = OTIKPrior(scene, base, int(self.meta["lookahead"]))
        self._input_name = self.meta["graph"]["inputs"][0]["name"]
        self.knob_runner = KnobPrior(self.prior, base, SPACES[self.meta["knob_space"]], int(self.meta["knob_window"]),
                                     self._choose_knobs)

    def _choose_knobs(self, obs: np.ndarray) -> np.ndarray:
        self._buffers[self._input_name][0] = obs
        self._run()
        u = self._out[0].astype(np.float64)
        if not np.isfinite(u).all():
            raise _NonFinite
        return u

    # ------------------------------------------------------------------------------ interface
    @property
    def embodiment(self) -> Embodiment:
        """The embodiment this policy was checked against."""
        return self._embodiment

    @property
    def observation_layout(self) -> dict[str, Any]:
        """The observation layout the policy was trained on (``ObservationLayout.to_dict()`` form)."""
        return self.meta["observation_layout"]

    def reset(self) -> None:
        """Call at the start of every episode: clears the history and the queue, reseeds noise, resets the prior."""
        self._fresh = True
        self._queue.clear()
        self.last_chunk = None
        if self.kind == "generalist":
            self._gen = noise_generator(self.seed)
        if self.kind == "knobs":
            self.knob_runner.reset()
        elif self.prior is not None:
            self.prior.reset()

    def act(self, obs: np.ndarray) -> np.ndarray | None:
        """Observation (D,) -> action (A,) float64 in [-1, 1], or None when refused (NaN / Inf; counted)."""
        x = self._check(obs)
        if x is None:
            return None
        if self.kind == "generalist":
            prior_action = None
            if self.prior is not None:  # residual generalist: the prior steps every call, the graph sees obs ⊕ prior
                prior_action = np.asarray(self.prior.act(obs), dtype=np.float64)
                x = np.concatenate([x, prior_action.astype(np.float32)])
            if self._queue:
                self._push(x)
                out = self._queue.pop(0)
            else:
                chunk = self._chunk(x)
                if chunk is None:
                    return None
                self.last_chunk = chunk if prior_action is None else np.clip(prior_action[None] + chunk, -1.0, 1.0)
                self._queue = list(chunk[: self.execute])
                out = self._queue.pop(0)
            return out if prior_action is None else np.clip(prior_action + out, -1.0, 1.0)
        if self.kind == "knobs":
            try:
                return np.clip(np.asarray(self.knob_runner.act(x), dtype=np.float64), -1.0, 1.0)
            except _NonFinite:
                self._refuse("the graph returned non-finite knob coordinates")
                return None
        return self._act_expert(x)

    def act_chunk(self, obs: np.ndarray) -> np.ndarray | None:
        """Generalist: push ``obs`` and return the whole chunk (H, A), float64, clipped; None when refused."""
        if self.kind != "generalist":
            raise TypeError(f"{self.source}: act_chunk is for generalist policies (this one is {self.kind!r})")
        x = self._check(obs)
        if x is None:
            return None
        if self.prior is None:
            return self._chunk(x)
        prior_action = np.asarray(self.prior.act(obs), dtype=np.float64)
        chunk = self._chunk(np.concatenate([x, prior_action.astype(np.float32)]))
        return None if chunk is None else np.clip(prior_action[None] + chunk, -1.0, 1.0)

    def run_graph(self, **inputs: np.ndarray) -> np.ndarray:
        """The raw graph on explicit inputs (names as in ``meta['graph']['inputs']``; shapes as declared)."""
        for name, spec in self._inputs.items():
            if name not in inputs:
                raise ValueError(f"{self.source}: graph input {name!r} missing")
            arr = np.asarray(inputs[name], dtype=np.float32)
            if list(arr.shape) != list(spec["shape"]):
                raise ValueError(f"{self.source}: graph input {name!r} has shape {list(arr.shape)}, "
                                 f"expected {spec['shape']}")
            self._buffers[name][...] = arr
        self._run()
        return self._out.copy()

    # ------------------------------------------------------------------------------ internals
    def _check(self, obs: np.ndarray) -> np.ndarray | None:
        try:
            x = np.asarray(obs, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{self.source}: observation is not numeric ({exc})") from exc
        if x.shape != (self.obs_dim,):
            raise ValueError(f"{self.source}: observation has shape {tuple(x.shape)}, the policy expects "
                             f"({self.obs_dim},)")
        if not np.isfinite(x).all():
            bad = np.flatnonzero(~np.isfinite(x))
            field = next((n for n, off, size in self._fields if off <= bad[0] < off + size), "?")
            self._refuse(f"observation has {bad.size} non-finite value(s), first at index {int(bad[0])} "
                         f"(field {field!r})")
            return None
        return x if self.kind == "generalist" else np.asarray(obs)

    def _refuse(self, reason: str) -> None:
        self.refused_count += 1
        self.last_refusal = reason
        self._queue.clear()

    def _push(self, x: np.ndarray) -> None:
        hist = self._buffers["obs_hist"][0]
        if self._fresh:
            hist[:] = x
            self._fresh = False
        else:
            hist[:-1] = hist[1:].copy()
            hist[-1] = x

    def _run(self) -> None:
        t0 = time.perf_counter()
        self.session.run_with_iobinding(self._binding)
        self.last_inference_s = time.perf_counter() - t0
        self.calls += 1

    def _chunk(self, x: np.ndarray) -> np.ndarray | None:
        self._push(x)
        if self._has_noise:
            noise = self._buffers["noise"]
            if self.noise_mode == "fixed":
                noise[...] = self._fixed_noise
            elif self.noise_mode == "zero":
                noise.fill(0.0)
            else:
                noise[...] = self._gen.standard_normal(noise.shape, dtype=np.float32)
        self._run()
        chunk = self._out[0]
        if not np.isfinite(chunk).all():
            self._refuse("the graph returned non-finite actions")
            return None
        return np.clip(chunk.astype(np.float64), -1.0, 1.0)

    def _act_expert(self, obs: np.ndarray) -> np.ndarray | None:
        from sim_training.experts.residual import compose_action, policy_input

        prior_action = self.prior.act(obs) if self.prior is not None else None
        buf = self._buffers[self._input_name]
        if self.kind == "prior":
            buf[0] = prior_action
        else:
            buf[0] = policy_input(obs, prior_action, self._index)
        self._run()
        out = self._out[0]
        if not np.isfinite(out).all():
            self._refuse("the graph returned non-finite actions")
            return None
        if self.kind == "residual":
            return compose_action(prior_action, out, self.residual_scale)
        return np.clip(out.astype(np.float64), -1.0, 1.0)
