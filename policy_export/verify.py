"""ORT vs torch parity of an exported policy: ``verify_parity(ckpt, onnx)``.

Two measures, both against the torch policy the file was exported from:

* **max |delta action|** over ``n_random`` random inputs (plausible per field, plus a fifth drawn far
  out of range so the normaliser's clip is exercised) and ``n_rollout`` inputs from a real play of
  ``piece`` by the torch policy; each generalist input gets its own N(0, I) noise, the SAME for both.
  Compared is the graph's whole output (every row of the action chunk, before the runtime's clip; for
  experts the residual, before ``residual_scale``), so the figure bounds the executed action's error.
* **F1** of ``piece``: the torch policy and the ORT :class:`~policy_export.runtime.Policy` each play
  it from the start (``fixed`` noise, seed 0, for generalists), scored by
  :func:`sim_training.imitation.evaluate.evaluate_policy`.

Targets: max |delta| <= :data:`ACTION_TOLERANCE`, |F1 torch - F1 ORT| <= :data:`F1_TOLERANCE`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from omnipianist.command import Command, command_main, ok_or_1
from policy_export.metadata import state_dict_sha256
from policy_export.runtime import Policy
from sim_training.experts.pipeline import ActingExpert, load_expert

if TYPE_CHECKING:
    from sim_training.imitation.policy import ActingPolicy
    from sim_training.models.embodiment import Embodiment

ACTION_TOLERANCE = 1e-4
F1_TOLERANCE = 0.01
JITTER = 1e-6
"""Action noise of the sensitivity play run when the F1 gap exceeds its tolerance."""
OUT_OF_RANGE_FRACTION = 0.2
"""Fraction of the random inputs drawn N(0, 3^2) everywhere (far outside the data: the clip path)."""


# ----------------------------------------------------------------------------------- inputs
def random_observations(layout: dict[str, Any], n: int, rng: np.random.Generator,
                        reference: np.ndarray | None = None) -> np.ndarray:
    """(n, D) float32 observations: goal / sustain bits, key depressions in [0, 1], and the continuous
    fields around ``reference`` rows (mean +- 2 std per entry; N(0, 0.3^2) without a reference). The last
    :data:`OUT_OF_RANGE_FRACTION` of the rows are N(0, 3^2) in every entry."""
    d = int(layout["size"])
    obs = np.zeros((n, d), dtype=np.float32)
    if reference is not None and len(reference):
        mu, sd = reference.mean(axis=0), reference.std(axis=0) + 1e-3
    else:
        mu, sd = np.zeros(d), np.full(d, 0.3)
    for f in layout["fields"]:
        lo, size = int(f["offset"]), int(np.prod(f["shape"]))
        sl = slice(lo, lo + size)
        if f["name"] in ("goal", "sustain_state"):
            obs[:, sl] = rng.random((n, size)) < 0.08
        elif f["name"] == "key_state":
            obs[:, sl] = rng.random((n, size)) * (rng.random((n, size)) < 0.1)
        else:
            obs[:, sl] = mu[sl] + 2.0 * sd[sl] * rng.uniform(-1.0, 1.0, (n, size))
    n_far = int(round(OUT_OF_RANGE_FRACTION * n))
    if n_far:
        obs[n - n_far:] = 3.0 * rng.standard_normal((n_far, d))
    return obs


def histories(obs_seq: np.ndarray, obs_horizon: int) -> np.ndarray:
    """(T, D) observations of one episode -> (T, To, D) the histories a policy saw (first frame repeated)."""
    t = np.arange(len(obs_seq))[:, None] - (obs_horizon - 1) + np.arange(obs_horizon)[None, :]
    return obs_seq[np.maximum(t, 0)]


def _pick(n_total: int, n: int) -> np.ndarray:
    """Up to ``n`` indices spread evenly over ``range(n_total)``."""
    if n >= n_total:
        return np.arange(n_total)
    return np.unique(np.linspace(0, n_total - 1, n).round().astype(int))


class _Recorder:
    """Wraps a policy for :func:`evaluate_policy` and records every observation it is given."""

    def __init__(self, policy: ActingPolicy) -> None:
        self.policy = policy
        self.meta = policy.meta
        self.source = policy.source
        self.obs: list[np.ndarray] = []

    @property
    def embodiment(self) -> Embodiment:
        return self.policy.embodiment

    def reset(self) -> None:
        self.obs.clear()
        self.policy.reset()

    def act(self, obs: np.ndarray) -> np.ndarray | None:
        self.obs.append(np.array(obs, copy=True))
        return self.policy.act(obs)


class _Jitter(_Recorder):
    """Adds N(0, eps^2) to every action (clipped): how sensitive is the closed loop to float-level changes?"""

    def __init__(self, policy: Any, eps: float, seed: int = 0) -> None:
        super().__init__(policy)
        self.eps = eps
        self.rng = np.random.default_rng(seed)

    def act(self, obs: np.ndarray) -> np.ndarray:
        a = np.asarray(self.policy.act(obs), dtype=np.float64)
        return np.clip(a + self.eps * self.rng.standard_normal(a.shape), -1.0, 1.0)


# ----------------------------------------------------------------------------------- torch side
def load_torch_policy(ckpt: str | Path, kind: str, k_steps: int | None = None) -> Any:
    """The torch policy of ``ckpt`` (a generalist runs ``k_steps`` Euler steps: the exported graph's)."""
    if kind == "generalist":
        from sim_training.imitation.policy import GeneralistPolicy

        return GeneralistPolicy.load(ckpt, noise="fixed", seed=0, k_steps=k_steps)
    if kind == "knobs":
        from sim_training.imitation.knobhead import KnobHeadPolicy

        return KnobHeadPolicy(ckpt)
    from policy_export.export import source_kind

    if source_kind(ckpt) == "expert-dir":
        e = load_expert(ckpt)
        return e if hasattr(e, "meta") else ActingExpert(e)
    from sim_training.experts.policy import ExpertPolicy

    return ExpertPolicy.load(ckpt)


def _source_sha256(torch_policy: Any, kind: str) -> str | None:
    """The weights hash the exporter records, computed from the torch policy (None: no network)."""
    if kind == "generalist":
        return state_dict_sha256(torch_policy.model.state_dict())
    if kind == "prior":
        return None
    if kind == "knobs":
        return state_dict_sha256(torch_policy.net.state_dict())
    norm = torch_policy.obs_norm
    return state_dict_sha256({**{f"actor.{k}": v for k, v in torch_policy.actor.state_dict().items()},
                              "norm.mean": norm.mean, "norm.var": norm.var})


def _torch_outputs(torch_policy: Any, kind: str, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The torch network's output for a batch of graph inputs (N, ...)."""
    import torch

    with torch.no_grad():
        if kind == "generalist":
            model = torch_policy.model
            outs = []
            noise = inputs.get("noise")
            for s in range(0, len(inputs["obs_hist"]), 64):
                nz = None if noise is None else torch.from_numpy(noise[s: s + 64])
                outs.append(model.sample(torch.from_numpy(inputs["obs_hist"][s: s + 64]), nz,
                                         torch_policy.k_steps).numpy())
            return np.concatenate(outs)
        if kind == "prior":
            return np.clip(inputs["prior_action"], -1.0, 1.0)
        if kind == "knobs":
            return torch_policy.net(torch.from_numpy(inputs["observation"].astype(np.float32))).numpy()
        x = torch_policy.obs_norm.normalize(inputs["policy_input"])
        return torch_policy.actor.act_deterministic(torch.from_numpy(x)).numpy()


def _ort_outputs(policy: Any, inputs: dict[str, np.ndarray]) -> np.ndarray:
    n = len(next(iter(inputs.values())))
    return np.stack([policy.run_graph(**{k: v[i: i + 1] for k, v in inputs.items()})[0] for i in range(n)])


def _expert_inputs(meta: dict[str, Any], obs: np.ndarray, prior_actions: np.ndarray) -> dict[str, np.ndarray]:
    from sim_training.experts.residual import policy_input

    name = meta["graph"]["inputs"][0]["name"]
    if meta["kind"] == "prior":
        return {name: prior_actions.astype(np.float32)}
    index = np.asarray(meta["policy_input"]["observation_index"], dtype=np.int64)
    return {name: policy_input(obs, prior_actions if meta["policy_input"]["with_prior"] else None, index)}


def _replay_prior(policy: Any, obs_seq: np.ndarray) -> np.ndarray:
    """The prior's actions along a recorded episode (the torch policy's own prior, reset, replayed in order)."""
    prior = policy.prior
    prior.reset()
    out = np.stack([prior.act(o) for o in obs_seq])
    prior.reset()
    return out


# ----------------------------------------------------------------------------------- parity
def verify_parity(ckpt: str | Path, onnx_path: str | Path, n_random: int = 500, n_rollout: int = 500,
                  piece: str = "twinkle", seed: int = 0, f1: bool = True, stretch: float = 1.0) -> dict[str, Any]:
    """Compare the exported ``onnx_path`` with the torch policy of ``ckpt`` (see the module docstring).

    Returns ``max_abs_diff`` (and per source ``_random`` / ``_rollout``), ``n_random``, ``n_rollout``
    (the numbers actually compared), ``f1_torch``, ``f1_ort``, ``f1_diff``, ``do_nothing_f1``, the
    tolerances, ``parity_ok``, ``f1_ok`` and ``ok``.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the torch side as the runtime runs it (and no thread fight on a shared machine)
    try:
        return _verify(ckpt, onnx_path, n_random, n_rollout, piece, seed, f1, stretch)
    finally:
        torch.set_num_threads(threads)


def _verify(ckpt: str | Path, onnx_path: str | Path, n_random: int, n_rollout: int, piece: str, seed: int,
            f1: bool, stretch: float) -> dict[str, Any]:
    from sim_training.imitation.evaluate import evaluate_policy

    t0 = time.perf_counter()
    ort_policy = Policy.load(onnx_path, warmup=1)
    meta = ort_policy.meta
    kind = meta["kind"]
    torch_policy = load_torch_policy(ckpt, kind, meta.get("k_steps"))
    same_weights = _source_sha256(torch_policy, kind) == meta["model"]["sha256"]
    rng = np.random.default_rng(seed)

    # real rollout: the torch policy plays the piece (its F1 and its observations)
    rec = _Recorder(torch_policy)
    r_torch = evaluate_policy(piece, rec, stretch=stretch)
    obs_seq = np.stack(rec.obs).astype(np.float32)
    r_ort = evaluate_policy(piece, ort_policy, stretch=stretch) if f1 else None

    layout = meta["observation_layout"]
    rand_obs = random_observations(layout, n_random, rng, reference=obs_seq)
    pick = _pick(len(obs_seq), n_rollout)
    if kind == "generalist":
        to = int(meta["obs_horizon"])
        earlier = [random_observations(layout, n_random, rng, reference=obs_seq) for _ in range(to - 1)]
        rand_hist = np.stack([*earlier, rand_obs], axis=1)
        roll_obs = obs_seq
        if meta.get("residual_on_prior"):  # graph rows are obs ⊕ prior action
            a = int(meta["action"]["dim"])
            rand_hist = np.concatenate([rand_hist, rng.uniform(-1.0, 1.0, (*rand_hist.shape[:2], a))], axis=-1)
            roll_obs = np.concatenate([obs_seq, _replay_prior(torch_policy.residual, obs_seq)], axis=-1)
        rand_hist = rand_hist.astype(np.float32)
        roll_hist = histories(roll_obs.astype(np.float32), to)[pick]
        sets = {"random": {"obs_hist": rand_hist}, "rollout": {"obs_hist": roll_hist}}
        if meta["noise"].get("used", True):
            shape = meta["noise"]["shape"][1:]
            for v in sets.values():
                v["noise"] = rng.standard_normal((len(v["obs_hist"]), *shape)).astype(np.float32)
    elif kind == "knobs":
        sets = {"random": {"observation": rand_obs.astype(np.float32)},
                "rollout": {"observation": obs_seq[pick].astype(np.float32)}}
    else:
        a = int(meta["action"]["dim"])
        rand_prior = rng.uniform(-1.0, 1.0, (n_random, a))
        has_prior = getattr(torch_policy, "prior", None) is not None
        roll_prior = _replay_prior(torch_policy, obs_seq)[pick] if has_prior else np.zeros((len(pick), a))
        sets = {"random": _expert_inputs(meta, rand_obs, rand_prior),
                "rollout": _expert_inputs(meta, obs_seq[pick], roll_prior)}

    diffs: dict[str, float] = {}
    counts: dict[str, int] = {}
    for name, inputs in sets.items():
        n = len(next(iter(inputs.values())))
        counts[name] = n
        if n == 0:
            diffs[name] = 0.0
            continue
        got = _ort_outputs(ort_policy, inputs)
        want = _torch_outputs(torch_policy, kind, inputs)
        diffs[name] = float(np.max(np.abs(got - want)))
    max_abs = max(diffs.values())
    result: dict[str, Any] = {
        "onnx": str(onnx_path), "checkpoint": str(ckpt), "kind": kind, "piece": piece,
        "same_weights": same_weights,
        "n_random": counts["random"], "n_rollout": counts["rollout"],
        "max_abs_diff": max_abs, "max_abs_diff_random": diffs["random"], "max_abs_diff_rollout": diffs["rollout"],
        "tolerance": ACTION_TOLERANCE, "parity_ok": bool(max_abs <= ACTION_TOLERANCE),
        "f1_torch": r_torch["f1"], "note_step_f1_torch": r_torch["note_step_f1"],
        "do_nothing_f1": r_torch["do_nothing_f1"], "steps": r_torch["steps"],
        "act_ms_p50_torch": r_torch["act_ms_p50"],
    }
    if r_ort is not None:
        f1_diff = abs(r_ort["f1"] - r_torch["f1"])
        result.update({"f1_ort": r_ort["f1"], "note_step_f1_ort": r_ort["note_step_f1"], "f1_diff": f1_diff,
                       "f1_tolerance": F1_TOLERANCE, "f1_ok": bool(f1_diff <= F1_TOLERANCE),
                       "act_ms_p50_ort": r_ort["act_ms_p50"], "refused_ort": ort_policy.refused_count})
        if f1_diff > F1_TOLERANCE:  # is the gap the closed loop's own sensitivity? (torch with 1e-6 action noise)
            jit = evaluate_policy(piece, _Jitter(torch_policy, JITTER), stretch=stretch)
            result["f1_torch_jitter"] = {"eps": JITTER, "f1": jit["f1"], "f1_diff": abs(jit["f1"] - r_torch["f1"])}
    else:
        result.update({"f1_ort": None, "f1_diff": None, "f1_ok": None})
    result["ok"] = bool(result["parity_ok"] and result["f1_ok"] is not False)
    result["wall_s"] = time.perf_counter() - t0
    return result


@dataclass(frozen=True, kw_only=True)
class VerifyResult:
    """``python -m policy_export.verify``'s result: :func:`verify_parity`'s dict, its keys in its order.

    The fields after ``act_ms_p50_torch`` come from the ORT play of the piece: without it (``f1=False``)
    ``f1_ort``, ``f1_diff`` and ``f1_ok`` are None and the other ORT fields are left out of the JSON;
    ``f1_torch_jitter`` is there only when the F1 gap exceeded its tolerance."""

    onnx: str
    checkpoint: str
    kind: str
    piece: str
    same_weights: bool
    n_random: int
    n_rollout: int
    max_abs_diff: float
    max_abs_diff_random: float
    max_abs_diff_rollout: float
    tolerance: float
    parity_ok: bool
    f1_torch: float
    note_step_f1_torch: float
    do_nothing_f1: float
    steps: int
    act_ms_p50_torch: float
    f1_ort: float | None
    note_step_f1_ort: float | None = field(default=None, metadata={"omit_none": True})
    f1_diff: float | None
    f1_tolerance: float | None = field(default=None, metadata={"omit_none": True})
    f1_ok: bool | None
    act_ms_p50_ort: float | None = field(default=None, metadata={"omit_none": True})
    refused_ort: int | None = field(default=None, metadata={"omit_none": True})
    f1_torch_jitter: dict[str, float] | None = field(default=None, metadata={"omit_none": True})
    """``eps``, ``f1`` and ``f1_diff`` of the torch play with :data:`JITTER` action noise."""
    ok: bool
    wall_s: float

    @classmethod
    def of(cls, r: dict[str, Any]) -> VerifyResult:
        """From :func:`verify_parity`'s dict (a key without a field fails loudly)."""
        return cls(**r)


def format_parity(r: VerifyResult | dict[str, Any]) -> str:
    """One readable line (of a :class:`VerifyResult`, or :func:`verify_parity`'s dict as ``export --verify`` has it)."""
    v = r if isinstance(r, VerifyResult) else VerifyResult.of(r)
    f1 = (f"F1 torch {v.f1_torch:.4f} vs ORT {v.f1_ort:.4f} (|delta| {v.f1_diff:.4f}, tol {v.f1_tolerance}; "
          f"do-nothing {v.do_nothing_f1:.3f})" if v.f1_ort is not None else f"F1 torch {v.f1_torch:.4f}")
    if v.f1_torch_jitter is not None:
        j = v.f1_torch_jitter
        f1 += (f"; torch alone with {j['eps']:.0e} action noise moves F1 by {j['f1_diff']:.4f} "
               f"(the closed loop amplifies float-level differences)")
    return (f"parity {v.kind} on {v.piece}: max |delta action| {v.max_abs_diff:.2e} over "
            f"{v.n_random} random + {v.n_rollout} rollout inputs (tol {v.tolerance:.0e}); {f1} -> "
            f"{'OK' if v.ok else 'FAILED'}")


@dataclass(frozen=True)
class VerifyConfig:
    """``python -m policy_export.verify CKPT ONNX``: :func:`verify_parity`'s arguments."""

    checkpoint: str
    """the torch source (checkpoint, run directory or expert folder)"""
    onnx: str
    """the exported .onnx"""
    piece: str = "twinkle"
    """piece for the F1 comparison"""
    n_random: int = 500
    """random inputs"""
    n_rollout: int = 500
    """rollout inputs"""


def run_verify(cfg: VerifyConfig) -> VerifyResult:
    return VerifyResult.of(verify_parity(cfg.checkpoint, cfg.onnx, cfg.n_random, cfg.n_rollout, cfg.piece))


VERIFY: Command[VerifyConfig, VerifyResult] = Command(
    "verify", "ORT vs torch parity of an exported policy (exit 1 when it fails)", VerifyConfig, run_verify,
    format_parity, positionals=("checkpoint", "onnx"), exit_code=ok_or_1)


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - thin wrapper
    return command_main(VERIFY, argv, prog="python -m policy_export.verify")


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
