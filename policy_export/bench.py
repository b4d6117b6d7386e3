"""``omnipianist bench inference``: latency per control step of an exported policy, ORT vs torch eager.

Measured in ONE run, on ONE core (the process is pinned to the idlest allowed core; 1 ORT intra-op
thread, ``torch.set_num_threads(1)``), interleaved in rounds so machine load hits both alike:

* ``ort``: :meth:`policy_export.runtime.Policy.act` per control step (history push, noise, graph,
  clip) — what the simulator evaluation and the ROS node pay;
* ``torch``: the same network in torch eager (:class:`~sim_training.imitation.policy.GeneralistPolicy`
  ``.act``, or the expert's torch policy), same observations;
* ``flops_per_call``: multiply-adds x 2 of every MatMul / Gemm in the graph (shape inference; constants
  folded at export), with torch's FLOP counter on one call as a cross-check;
* ``gemm_ceiling_flops_per_s``: the best single-core fp32 GEMM (torch and ORT, 512^2 and 1024^2) in the
  same run -> ``fraction_of_ceiling`` = FLOPs per call / p50 latency / ceiling.

Without ``--policy`` it times the real architecture: an untrained FMT with the default
:class:`~sim_training.imitation.model.FMTConfig` for the Shadow layout (weights perturbed from their
zero initialisation so no branch is trivially zero). Targets (the shipped generalist): ORT p99 <= 5 ms
and torch p50 / ORT p50 >= 3, per control step. For experts the p99 target applies to the network alone
(the OT/IK prior is the same Python code on both sides; per-step figures include it) and the speed-up
of their small MLP is reported without a target.

Variants (``--int8`` dynamic quantisation, ``--fp16``) are reported only with their F1 change on
``--piece`` against the fp32 graph (both through ORT).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from policy_export.metadata import attach_metadata, metadata_from_model
from policy_export.runtime import Policy, make_session
from policy_export.verify import load_torch_policy, random_observations
from sim_training.constants import CONTROL_DT_S
from sim_training.models.embodiment import get_embodiment

ORT_P99_TARGET_MS = 5.0
SPEEDUP_TARGET = 3.0


@dataclass(frozen=True)
class InferenceBenchConfig:
    """What to time and how long."""

    policy: str | None = None
    """Exported ``.onnx`` (or a checkpoint, exported on the fly); None: the default FMT, untrained."""
    checkpoint: str | None = None
    """Torch source of an ``.onnx`` policy (default: the path its metadata records)."""
    euler_steps: int | None = None
    """K for on-the-fly exports (default: the checkpoint's)."""
    ort_calls: int = field(default=1000, metadata={"help": "timed ORT steps"})
    torch_calls: int = field(default=200, metadata={"help": "timed torch steps"})
    rounds: int = 5
    """ORT and torch blocks alternate this many times."""
    warmup: int = field(default=20, metadata={"cli": False})
    pin: bool = field(default=True, metadata={"flags": ("--no-pin",), "action": "store_false",
                                              "help": "do not pin the process to one core"})
    """Pin the process to one core (the idlest allowed one) while timing."""
    int8: bool = field(default=False, metadata={
        "action": "store_true", "help": "also time the int8 (dynamic quantisation) variant, with its F1 change"})
    fp16: bool = field(default=False, metadata={"action": "store_true",
                                                "help": "also time the fp16 variant, with its F1 change"})
    piece: str = "twinkle"
    """Piece for the F1 change of the variants."""
    seed: int = field(default=0, metadata={"cli": False})


# ----------------------------------------------------------------------------------- helpers
def percentiles_ms(times_s: list[float]) -> dict[str, float]:
    ms = 1e3 * np.asarray(times_s)
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "max_ms": float(ms.max()), "n": int(ms.size)}


def _cpu_times() -> dict[int, tuple[int, int]]:
    """Per-core (busy, total) jiffies from /proc/stat ({} where unavailable)."""
    out: dict[int, tuple[int, int]] = {}
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("cpu") and line[3:4].isdigit():
                name, *vals = line.split()
                v = [int(x) for x in vals]
                idle = v[3] + (v[4] if len(v) > 4 else 0)
                out[int(name[3:])] = (sum(v) - idle, sum(v))
    except OSError:
        pass
    return out


def idlest_core(sample_s: float = 0.2) -> int:
    """The allowed core with the least busy time over ``sample_s`` seconds."""
    allowed = sorted(os.sched_getaffinity(0))
    a = _cpu_times()
    time.sleep(sample_s)
    b = _cpu_times()
    busy = {c: (b[c][0] - a[c][0]) / max(b[c][1] - a[c][1], 1) for c in allowed if c in a and c in b}
    return min(busy, key=busy.__getitem__) if busy else allowed[-1]


@contextlib.contextmanager
def one_core(pin: bool) -> Iterator[int | None]:
    """Pin this process to its idlest core and torch to one thread for the block; restores both."""
    import torch

    threads = torch.get_num_threads()
    before = os.sched_getaffinity(0)
    core = idlest_core() if pin else None
    try:
        torch.set_num_threads(1)
        if core is not None:
            os.sched_setaffinity(0, {core})
        yield core
    finally:
        os.sched_setaffinity(0, before)
        torch.set_num_threads(threads)


def onnx_matmul_flops(model: Any) -> int:
    """2 x multiply-adds of every MatMul / Gemm node, from the shapes one actual run gives.

    (Static shape inference cannot follow the Shape -> Reshape chains the tracer leaves, so every
    MatMul / Gemm operand is exposed as an extra output and the graph is run once on zeros, unoptimised.)
    """
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    g = probe.graph
    mm = [n for n in g.node if n.op_type in ("MatMul", "Gemm")]
    init = {i.name: list(i.dims) for i in g.initializer}
    outputs = {o.name for o in g.output}
    wanted = []
    for n in mm:
        for name in (n.input[0], n.output[0]):
            if name not in init and name not in outputs and name not in wanted:
                wanted.append(name)
    for name in wanted:
        g.output.append(onnx.ValueInfoProto(name=name))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(probe.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feeds = {i.name: np.zeros([d.dim_value for d in i.type.tensor_type.shape.dim], dtype=np.float32)
             for i in model.graph.input}
    names = [o.name for o in sess.get_outputs()]
    shapes = {**init, **{n: list(v.shape) for n, v in zip(names, sess.run(names, feeds), strict=True)}}
    total = 0
    for node in mm:
        a, out = shapes[node.input[0]], shapes[node.output[0]]
        trans_a = any(at.name == "transA" and at.i for at in node.attribute)
        k = a[-2] if (node.op_type == "Gemm" and trans_a) else a[-1]
        total += 2 * int(np.prod(out)) * int(k)
    return total


def gemm_ceiling(repeats: int = 5) -> dict[str, float]:
    """Best single-thread fp32 GEMM FLOP/s of torch and ORT (n = 512, 1024); call inside :func:`one_core`."""
    import torch
    from onnx import TensorProto, helper

    best: dict[str, float] = {"torch": 0.0, "ort": 0.0}
    for n in (512, 1024):
        flops = 2.0 * n**3
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.mm(a, b)
            best["torch"] = max(best["torch"], flops / (time.perf_counter() - t0))
        w = helper.make_tensor("w", TensorProto.FLOAT, [n, n], b.numpy().ravel().tolist())
        graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "gemm",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])], initializer=[w])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = min(model.ir_version, 10)
        sess = make_session(model.SerializeToString())
        x = {"x": a.numpy()}
        sess.run(None, x)
        for _ in range(repeats):
            t0 = time.perf_counter()
            sess.run(None, x)
            best["ort"] = max(best["ort"], flops / (time.perf_counter() - t0))
    return {"torch_flops_per_s": best["torch"], "ort_flops_per_s": best["ort"], "flops_per_s": max(best.values())}


def default_checkpoint(directory: Path, seed: int = 0, config: Any = None) -> Path:
    """An untrained FMT (default: the default FMTConfig) on the Shadow layout, saved as ``policy.pt`` in ``directory``.

    The weights are perturbed away from the zero initialisation of the adaLN and output layers, and the
    normaliser gets non-trivial statistics, so every part of the graph computes something.
    """
    import torch

    from sim_training.env.observation import ObservationLayout
    from sim_training.imitation.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_KIND, config_dict
    from sim_training.imitation.model import FlowMatchingTransformer, FMTConfig

    emb = get_embodiment("shadow")
    layout = ObservationLayout.for_embodiment(emb).to_dict()
    cfg = config if config is not None else FMTConfig()
    torch.manual_seed(seed)
    model = FlowMatchingTransformer(cfg, layout, emb.action_dim)
    with torch.no_grad():
        for p in model.parameters():  # leave the zero initialisation: every branch computes something
            p.add_(0.05 * torch.randn_like(p))
        norm = model.normalizer
        norm.obs_mean.copy_(0.1 * torch.randn_like(norm.obs_mean))
        norm.obs_std.uniform_(0.5, 2.0)
        norm.action_low.uniform_(-1.0, -0.5)
        norm.action_high.uniform_(0.5, 1.0)
    meta = {"format": CHECKPOINT_FORMAT, "kind": CHECKPOINT_KIND, "model": "fmt", "observation_layout": layout,
            "embodiment": emb.key, "embodiment_key": emb.key, "action_names": list(emb.action_names),
            "action_dim": emb.action_dim, "obs_dim": layout["size"], "control_dt": CONTROL_DT_S,
            "obs_horizon": cfg.obs_horizon, "pred_horizon": cfg.pred_horizon, "execute_horizon": 1,
            "k_steps": cfg.k_steps, "data_card_id": "untrained-fmt", "params": model.n_params()}
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "policy.pt"
    torch.save({"meta": meta, "model": {"kind": "fmt", "config": config_dict(cfg)}, "state_dict": model.state_dict()},
               path)
    return path


def _time_calls(fn: Callable[[np.ndarray], Any], observations: np.ndarray, n: int, start: int,
                cpu: list[float] | None = None) -> list[float]:
    """Wall time of ``n`` calls of ``fn`` on successive observations; their thread CPU time goes to ``cpu``."""
    out = []
    for i in range(n):
        o = observations[(start + i) % len(observations)]
        c0 = time.thread_time()
        t0 = time.perf_counter()
        fn(o)
        out.append(time.perf_counter() - t0)
        if cpu is not None:
            cpu.append(time.thread_time() - c0)
    return out


def _variant(src: Path, dst: Path, which: str) -> None:
    """Write the int8 (dynamic quantisation) or fp16 variant of ``src`` with its metadata re-attached."""
    import onnx

    meta = metadata_from_model(onnx.load_model(str(src)), str(src))
    if which == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
        model = onnx.load_model(str(dst))
    else:
        from onnxruntime.transformers.float16 import convert_float_to_float16
        from onnxruntime.transformers.onnx_model import OnnxModel

        model = convert_float_to_float16(onnx.load_model(str(src)), keep_io_types=True)
        wrapped = OnnxModel(model)
        wrapped.topological_sort()  # the converter appends its input casts after their consumers
        model = wrapped.model
    meta["variant"] = {"int8": "int8 dynamic quantisation (weights QInt8)", "fp16": "fp16 weights/activations, "
                       "fp32 inputs/outputs"}[which]
    attach_metadata(model, meta)
    onnx.save_model(model, str(dst))


# ----------------------------------------------------------------------------------- the bench
@dataclass(frozen=True)
class InferenceTarget:
    measured: float | None
    target: float | None
    """None: reported against no target (an expert's speed-up)."""
    ok: bool | None
    """None: not checked (no torch side, or no target)."""


@dataclass(frozen=True, kw_only=True)
class InferenceBenchResult:
    """``bench inference``'s result (``--json``). Latencies: :func:`percentiles_ms` dicts (p50_ms, p99_ms, mean_ms,
    max_ms, n); the torch ones None when no torch source was timed."""

    benchmark: str = "inference"
    policy: str
    """What was timed (the .onnx or checkpoint path, or the default untrained FMT)."""
    kind: str
    embodiment: str
    model: str
    params: dict[str, int]
    euler_steps: int
    opset: int
    threads: int = 1
    pinned_core: int | None
    load_avg_before: list[float]
    load_avg_after: list[float]
    cpus: int | None
    ort_per_step: dict[str, float]
    torch_eager_per_step: dict[str, float] | None
    ort_per_step_cpu_time: dict[str, float]
    torch_eager_per_step_cpu_time: dict[str, float] | None
    speedup_p50: float | None
    speedup_p99: float | None
    flops_per_call: int
    flops_per_call_torch_counter: int | None
    gemm_ceiling: dict[str, float]
    achieved_flops_per_s_ort: float
    fraction_of_ceiling_ort: float
    fraction_of_ceiling_torch: float | None
    versions: dict[str, str]
    note: str | None
    ort_graph_only: dict[str, float]
    torch_network: dict[str, dict[str, float] | None] = field(default_factory=dict, metadata={"flatten": True})
    """Experts only: ``{"torch_network_only": the actor alone in torch eager, or None}`` (the key is in the JSON
    for experts, null or not, and absent for generalists)."""
    variants: dict[str, dict[str, Any]] | None = field(default=None, metadata={"omit_none": True})
    """Per int8 / fp16 variant asked: its latency and F1 change, or its ``error``."""
    targets: dict[str, InferenceTarget]
    ok: bool

    @property
    def torch_network_only(self) -> dict[str, float] | None:
        return self.torch_network.get("torch_network_only")


def run_inference_bench(cfg: InferenceBenchConfig) -> InferenceBenchResult:
    """Run the benchmark; returns the JSON-able result (``ok`` False when a target is missed)."""
    import onnx
    import torch

    from policy_export.export import export_policy

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_inference_") as tmp_dir:
        tmp = Path(tmp_dir)
        note = None
        if cfg.policy is None:
            default = str(default_checkpoint(tmp / "default"))
            ckpt: str | None = default
            onnx_path = tmp / "default.onnx"
            export_policy(default, onnx_path, cfg.euler_steps)
            what = "untrained FMT, default FMTConfig, shadow layout"
        elif not str(cfg.policy).endswith(".onnx"):
            ckpt = cfg.policy
            onnx_path = tmp / "policy.onnx"
            export_policy(ckpt, onnx_path, cfg.euler_steps)
            what = str(cfg.policy)
        else:
            onnx_path = Path(cfg.policy)
            meta0 = Policy.read_metadata(onnx_path)
            src = cfg.checkpoint or meta0["source"].get("checkpoint")
            if meta0["kind"] == "prior":
                ckpt, note = None, "searched-prior expert: no network, nothing to compare with torch"
            elif src and Path(src).exists():
                ckpt = str(src)
            else:
                ckpt, note = None, f"torch source {src!r} not found: torch eager not timed (pass --checkpoint)"
            what = str(cfg.policy)
        policy = Policy.load(onnx_path, warmup=cfg.warmup)
        meta = policy.meta
        kind = meta["kind"]
        torch_policy = load_torch_policy(ckpt, kind, meta.get("k_steps")) if ckpt else None
        rng = np.random.default_rng(cfg.seed)
        observations = random_observations(meta["observation_layout"], 256, rng)
        model_proto = onnx.load_model(str(onnx_path))
        flops = onnx_matmul_flops(model_proto)
        flops_torch = _torch_flops(torch_policy, kind, meta) if torch_policy is not None else None

        with one_core(cfg.pin) as core:
            ceiling = gemm_ceiling()
            ort_t: list[float] = []
            torch_t: list[float] = []
            ort_cpu: list[float] = []
            torch_cpu: list[float] = []
            net_ort: list[float] = []
            net_torch: list[float] = []
            policy.reset()
            _time_calls(policy.act, observations, cfg.warmup, 0)
            if torch_policy is not None:
                torch_policy.reset()
                _time_calls(torch_policy.act, observations, max(cfg.warmup // 4, 2), 0)
            n_o, n_t = max(cfg.ort_calls // cfg.rounds, 1), max(cfg.torch_calls // cfg.rounds, 1)
            for r in range(cfg.rounds):
                for i in range(n_o):
                    ort_t += _time_calls(policy.act, observations, 1, r * n_o + i, ort_cpu)
                    net_ort.append(policy.last_inference_s)
                if torch_policy is not None:
                    torch_t += _time_calls(torch_policy.act, observations, n_t, r * n_t, torch_cpu)
                    if kind in ("residual", "actor"):
                        net_torch += _network_times_torch(torch_policy, meta, n_t)
            variants = _variants(cfg, onnx_path, policy, observations, tmp) if (cfg.int8 or cfg.fp16) else {}

    ort = percentiles_ms(ort_t)
    torch_r = percentiles_ms(torch_t) if torch_t else None
    speedup_p50 = (torch_r["p50_ms"] / ort["p50_ms"]) if torch_r else None
    net_o = percentiles_ms(net_ort)
    net_t = percentiles_ms(net_torch) if net_torch else None
    # targets: per control step for generalists; the network alone for experts (the prior is shared code)
    if kind == "generalist":
        p99, sp = ort["p99_ms"], speedup_p50
    else:
        p99, sp = net_o["p99_ms"], (net_t["p50_ms"] / net_o["p50_ms"]) if net_t else None
    # the 3x target is the generalist's (K Euler steps of a transformer, where eager overhead dominates); an
    # expert's small MLP is reported against no speed-up target
    sp_target = SPEEDUP_TARGET if kind == "generalist" else None
    targets = {"ort_p99_ms": InferenceTarget(measured=p99, target=ORT_P99_TARGET_MS, ok=bool(p99 <= ORT_P99_TARGET_MS)),
               "speedup_vs_torch_eager": InferenceTarget(
                   measured=sp, target=sp_target, ok=None if sp is None or sp_target is None else bool(sp >= sp_target))}
    return InferenceBenchResult(
        policy=what, kind=kind, embodiment=meta["embodiment"]["key"],
        model=meta["model"]["type"], params=meta["model"]["params"], euler_steps=meta["graph"]["euler_steps"],
        opset=meta["graph"]["opset"], threads=1, pinned_core=core,
        load_avg_before=list(load_before), load_avg_after=list(os.getloadavg()), cpus=os.cpu_count(),
        ort_per_step=ort, torch_eager_per_step=torch_r,
        ort_per_step_cpu_time=percentiles_ms(ort_cpu),
        torch_eager_per_step_cpu_time=percentiles_ms(torch_cpu) if torch_cpu else None,
        speedup_p50=speedup_p50,
        speedup_p99=(torch_r["p99_ms"] / ort["p99_ms"]) if torch_r else None,
        flops_per_call=flops, flops_per_call_torch_counter=flops_torch,
        gemm_ceiling=ceiling,
        achieved_flops_per_s_ort=flops / (ort["p50_ms"] * 1e-3),
        fraction_of_ceiling_ort=flops / (ort["p50_ms"] * 1e-3) / ceiling["flops_per_s"],
        fraction_of_ceiling_torch=(flops / (torch_r["p50_ms"] * 1e-3) / ceiling["flops_per_s"]) if torch_r else None,
        versions={"onnxruntime": _ort_version(), "torch": torch.__version__, "onnx": onnx.__version__},
        note=note,
        ort_graph_only=net_o,
        torch_network={} if kind == "generalist" else {"torch_network_only": net_t},
        variants=variants or None,
        targets=targets,
        ok=all(t.ok is not False for t in targets.values()),
    )


def _ort_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


def _torch_flops(torch_policy: Any, kind: str, meta: dict[str, Any]) -> int | None:
    """torch's FLOP counter on one call of the same network (cross-check of the graph count)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        if kind == "generalist":
            obs_shape = next(i["shape"] for i in meta["graph"]["inputs"] if i["name"] == "obs_hist")
            noise = torch.zeros(meta["noise"]["shape"])  # (obs ⊕ prior action for residual generalists)
            torch_policy.model.sample(torch.zeros(obs_shape), noise, torch_policy.k_steps)
        elif kind in ("residual", "actor"):
            torch_policy.actor.act_deterministic(torch.zeros(meta["graph"]["inputs"][0]["shape"]))
        else:
            return 0
    return int(counter.get_total_flops())


def _network_times_torch(torch_policy: Any, meta: dict[str, Any], n: int) -> list[float]:
    import torch

    x = np.zeros(meta["graph"]["inputs"][0]["shape"], dtype=np.float32)
    out = []
    with torch.no_grad():
        for _ in range(n):
            t0 = time.perf_counter()
            torch_policy.actor.act_deterministic(torch.from_numpy(torch_policy.obs_norm.normalize(x)))
            out.append(time.perf_counter() - t0)
    return out


def _variants(cfg: InferenceBenchConfig, onnx_path: Path, fp32: Any, observations: np.ndarray,
              tmp: Path) -> dict[str, Any]:
    """Latency and F1 change (vs the fp32 graph through ORT, on ``cfg.piece``) of each asked variant."""
    from sim_training.imitation.evaluate import evaluate_policy

    f1_fp32 = evaluate_policy(cfg.piece, fp32)
    out: dict[str, Any] = {}
    for which in [w for w, on in (("int8", cfg.int8), ("fp16", cfg.fp16)) if on]:
        path = tmp / f"{which}.onnx"
        try:
            _variant(onnx_path, path, which)
            pol = Policy.load(path, warmup=cfg.warmup)
        except Exception as exc:  # a variant the converter / runtime cannot build is reported, not fatal
            out[which] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        pol.reset()
        times = _time_calls(pol.act, observations, cfg.ort_calls // 2, 0)
        r = evaluate_policy(cfg.piece, pol)
        out[which] = {**percentiles_ms(times), "f1": r["f1"], "f1_fp32": f1_fp32["f1"],
                      "f1_change": r["f1"] - f1_fp32["f1"], "piece": cfg.piece, "bytes": path.stat().st_size}
    return out


def format_bench(r: InferenceBenchResult) -> str:
    """A few readable lines."""
    o, t = r.ort_per_step, r.torch_eager_per_step
    oc, tc = r.ort_per_step_cpu_time, r.torch_eager_per_step_cpu_time
    lines = [f"inference bench ({r.policy}; {r.kind}, K={r.euler_steps}, 1 thread, core {r.pinned_core}, "
             f"load {r.load_avg_before[0]:.1f} on {r.cpus} cpus):",
             f"  ORT    p50 {o['p50_ms']:.2f} ms  p99 {o['p99_ms']:.2f} ms  (thread CPU time p50 {oc['p50_ms']:.2f} "
             f"p99 {oc['p99_ms']:.2f})"]
    if t and tc:
        lines.append(f"  torch  p50 {t['p50_ms']:.2f} ms  p99 {t['p99_ms']:.2f} ms  (thread CPU time p50 {tc['p50_ms']:.2f} "
                     f"p99 {tc['p99_ms']:.2f})  -> ORT {r.speedup_p50:.1f}x faster")
    lines.append(f"  {r.flops_per_call / 1e6:.1f} MFLOP/call; GEMM ceiling {r.gemm_ceiling['flops_per_s'] / 1e9:.1f} "
                 f"GFLOP/s; ORT at {100 * r.fraction_of_ceiling_ort:.1f} % of it")
    for name, v in (r.variants or {}).items():
        lines.append(f"  {name}: " + (v["error"] if "error" in v else
                                      f"p50 {v['p50_ms']:.2f} ms p99 {v['p99_ms']:.2f} ms, F1 change {v['f1_change']:+.4f}"))
    def verdict(v: InferenceTarget) -> str:
        shown = v.measured if v.measured is None else round(v.measured, 2)
        return f"{shown} (target {v.target}) {'ok' if v.ok else 'MISSED' if v.ok is False else 'n/a'}"

    lines.append("  targets: " + ", ".join(f"{k} {verdict(v)}" for k, v in r.targets.items()))
    return "\n".join(lines)
