"""Can a student tell which of the planner's knob candidates win? A listwise critic on ``candidates.npz``.

The planner (:mod:`sim_training.experts.planner`) plays ~30 knob vectors per window of 10 steps from the
state the plan reached, scores each by the F1 of a 20-step horizon in the simulator, and keeps the best:
on corpus clips the best beats the default knobs by ~0.11 horizon F1 per window. The knob head regresses
the planner's choice and learns little (held-out MSE 0.93 of the mean knobs'). This module asks the
question one level down, with every candidate's score (``candidates.npz``): does the observation at the
window's first step predict *which* candidates win?

* :func:`candidate_windows`: each searched window's start observation (from the plan's replay,
  :func:`~sim_training.imitation.knobhead.plan_samples`) joined with its candidates and their scores.
* :class:`KnobCritic`: observation encoder + knob coordinates -> score; trained listwise (cross-entropy
  between the softmax of its scores and the softmax of the window's horizon F1 at temperature ``tau``),
  so that only the ranking within a window is learnt, not how hard the window is.
* :func:`pick_quality`: on held-out windows, the horizon F1 of the critic's pick among the window's own
  candidates minus the default knobs' F1, next to a random pick's (the candidates' mean) and the planner's
  (the best: an oracle with the simulator).
* :func:`neighbour_pick_quality`: the same pick by a predictor that has seen half of the window's
  candidates' outcomes (kernel regression onto the other half): how smooth the landscape is where the
  planner samples it.
* ``omnipianist bench knob-critic``: k folds over pieces, a critic with the observation and one without
  (knobs only: what is good everywhere); the target is a held-out pick that recovers at least half of
  the oracle's margin over a random pick. A critic that met it could run in an ONNX student (argmax over
  a fixed candidate table, the runtime's ``knobs`` contract unchanged); the measured answer is in
  ``models/generalist/CARD.md``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from omnipianist.command import Command, ok_or_1
from omnipianist.errors import ConfigError
from sim_training.experts.planner import PLAN_CANDIDATES
from sim_training.imitation.knobhead import KnobSamples, cached_plan_samples, plan_samples


# ----------------------------------------------------------------------------------- data
@dataclass
class CandidateWindows:
    """The searched windows of some plans: one start observation per window, every candidate it tried."""

    obs: np.ndarray
    """(W, D) float32: the observation at each window's first step (the state the planner planned from)."""
    piece: np.ndarray
    """(W,) piece id of each window."""
    step: np.ndarray
    """(W,) the window's first control step in its piece."""
    base: np.ndarray
    """(W,) horizon F1 of the default knobs in each window."""
    group: np.ndarray
    """(N,) int: the window each candidate row belongs to."""
    u: np.ndarray
    """(N, K) float32 knob unit coordinates of each candidate."""
    f1: np.ndarray
    """(N,) float32 horizon F1 of each candidate."""

    @property
    def n_windows(self) -> int:
        return int(self.obs.shape[0])

    @property
    def pieces(self) -> list[str]:
        return sorted(set(self.piece.tolist()))

    def rows(self, window: int) -> np.ndarray:
        return np.flatnonzero(self.group == window)


def candidate_windows(plan_dirs: Sequence[str | Path], samples: KnobSamples | None = None) -> CandidateWindows:
    """Join each plan's ``candidates.npz`` with its replayed window-start observations (``samples``: the
    plans' :func:`plan_samples`, replayed here when not given). Plans without candidates are skipped; a
    candidate window whose start step the replay never reached is an error (the files disagree)."""
    dirs = [Path(d) for d in plan_dirs if (Path(d) / PLAN_CANDIDATES).is_file()]
    if not dirs:
        raise ConfigError(f"no plan with {PLAN_CANDIDATES} among {len(plan_dirs)} folder(s)")
    if samples is None:
        samples = plan_samples(dirs)
    obs: list[np.ndarray] = []
    piece: list[str] = []
    steps: list[int] = []
    base: list[float] = []
    group: list[np.ndarray] = []
    u: list[np.ndarray] = []
    f1: list[np.ndarray] = []
    for d in dirs:
        name = str(json.loads((d / "plan.json").read_text())["piece"])
        at = (samples.piece == name) & samples.window_start
        start_obs = dict(zip(samples.step[at].tolist(), samples.obs[at], strict=True))
        with np.load(d / PLAN_CANDIDATES, allow_pickle=False) as z:
            c_win, c_step, c_u, c_f1, c_default = (z["window"], z["step"], z["u"], z["f1"], z["default"])
        for w in np.unique(c_win):
            m = c_win == w
            step = int(c_step[m][0])
            if step not in start_obs:
                raise ValueError(f"{d / PLAN_CANDIDATES}: window {int(w)} starts at step {step}, which the replay of "
                                 f"{name} never reached as a window start")
            dflt = c_default[m]
            obs.append(start_obs[step])
            piece.append(name)
            steps.append(step)
            base.append(float(c_f1[m][dflt].max()) if dflt.any() else float(c_f1[m].mean()))
            group.append(np.full(int(m.sum()), len(obs) - 1))
            u.append(c_u[m].astype(np.float32))
            f1.append(c_f1[m].astype(np.float32))
    return CandidateWindows(np.stack(obs).astype(np.float32), np.asarray(piece), np.asarray(steps), np.asarray(base),
                            np.concatenate(group), np.concatenate(u), np.concatenate(f1))


# ----------------------------------------------------------------------------------- model
@dataclass(frozen=True)
class CriticConfig:
    use_obs: bool = True
    """condition on the observation (False: knobs only, what is good in every window)"""
    encoder_width: int = 64
    hidden_width: int = 128
    dropout: float = 0.3
    steps: int = 3000
    windows_per_batch: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-2
    tau: float = 0.02
    """temperature [F1] of the target ranking (softmax of the window's horizon F1s)"""
    obs_clip: float = 10.0
    seed: int = 0


class KnobCritic(nn.Module):
    """(observation (B, D), knob coordinates (B, K)) -> score (B,); higher = predicted better horizon F1."""

    obs_mean: Tensor
    obs_std: Tensor

    def __init__(self, cfg: CriticConfig, obs_mean: np.ndarray, obs_std: np.ndarray, n_knobs: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("obs_mean", torch.as_tensor(obs_mean, dtype=torch.float32))
        self.register_buffer("obs_std", torch.as_tensor(obs_std, dtype=torch.float32))
        e = cfg.encoder_width if cfg.use_obs else 0
        self.encoder = nn.Sequential(nn.Linear(int(obs_mean.shape[0]), cfg.encoder_width),
                                     nn.LayerNorm(cfg.encoder_width), nn.GELU(), nn.Dropout(cfg.dropout))
        self.head = nn.Sequential(nn.Linear(e + n_knobs, cfg.hidden_width), nn.GELU(), nn.Dropout(cfg.dropout),
                                  nn.Linear(cfg.hidden_width, cfg.hidden_width), nn.GELU(),
                                  nn.Linear(cfg.hidden_width, 1))

    def forward(self, obs: Tensor, u: Tensor) -> Tensor:
        if not self.cfg.use_obs:
            return self.head(u)[:, 0]
        x = torch.clamp((obs - self.obs_mean) / self.obs_std, -self.cfg.obs_clip, self.cfg.obs_clip)
        return self.head(torch.cat([self.encoder(x), u], 1))[:, 0]


def fit_critic(data: CandidateWindows, windows: Sequence[int], cfg: CriticConfig = CriticConfig()) -> KnobCritic:
    """Train on ``windows`` (indices into ``data``) with the listwise loss; returns the critic in eval mode."""
    if not windows:
        raise ValueError("fit_critic: no training windows")
    torch.manual_seed(cfg.seed)
    idx = np.asarray(windows)
    mean = data.obs[idx].mean(0)
    std = data.obs[idx].std(0)
    std = np.where(std < 1e-6, 1.0, std)
    net = KnobCritic(cfg, mean, std, data.u.shape[1])
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    rows = [torch.as_tensor(data.rows(w)) for w in range(data.n_windows)]
    obs, u, f1 = torch.as_tensor(data.obs), torch.as_tensor(data.u), torch.as_tensor(data.f1)
    rng = np.random.default_rng(cfg.seed)
    net.train()
    for _ in range(cfg.steps):
        loss = torch.zeros(())
        picked = rng.choice(idx, size=cfg.windows_per_batch)
        for w in picked:
            r = rows[int(w)]
            scores = net(obs[int(w)].expand(len(r), -1), u[r])
            target = torch.softmax((f1[r] - f1[r].mean()) / cfg.tau, 0)
            loss = loss - (target * torch.log_softmax(scores, 0)).sum()
        loss = loss / cfg.windows_per_batch
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    net.eval()
    return net


@dataclass(frozen=True)
class PickQuality:
    """Mean over windows of (horizon F1 of a pick among the window's candidates) - (the default knobs')."""

    windows: int
    critic: float
    """the critic's argmax"""
    random: float
    """a uniformly random candidate (the candidates' mean)"""
    oracle: float
    """the best candidate: the planner's own pick, with the simulator"""
    critic_beats_random: float
    """fraction of windows where the critic's pick scored above the candidates' mean"""

    @property
    def recovered(self) -> float:
        """(critic - random) / (oracle - random): the share of the planner's margin over chance the critic keeps."""
        span = self.oracle - self.random
        return (self.critic - self.random) / span if span > 0 else float("nan")


def pick_quality(net: KnobCritic, data: CandidateWindows, windows: Sequence[int]) -> PickQuality:
    picks, rand, best, beats = [], [], [], []
    with torch.no_grad():
        for w in windows:
            r = data.rows(int(w))
            f = data.f1[r]
            s = net(torch.as_tensor(data.obs[int(w)]).expand(len(r), -1), torch.as_tensor(data.u[r])).numpy()
            b = float(data.base[int(w)])
            picks.append(float(f[int(np.argmax(s))]) - b)
            rand.append(float(f.mean()) - b)
            best.append(float(f.max()) - b)
            beats.append(picks[-1] > rand[-1])
    return PickQuality(len(picks), float(np.mean(picks)), float(np.mean(rand)), float(np.mean(best)),
                       float(np.mean(beats)))


def neighbour_pick_quality(data: CandidateWindows, bandwidth: float, seed: int = 0) -> PickQuality:
    """The pick of a predictor that has seen other candidates' outcomes *in the same state*: each window's
    candidates are split at random in halves; every candidate of the second half is scored by the
    Gaussian-kernel mean (``bandwidth`` in unit knob coordinates) of the first half's F1, and the pick,
    the random pick and the oracle are taken within the second half. A bound for any critic that relies
    on the landscape being smooth within a state at the planner's sampling density (the halves are
    independent, so an unstructured landscape gives a pick no better than random)."""
    rng = np.random.default_rng(seed)
    picks, rand, best, beats = [], [], [], []
    for w in range(data.n_windows):
        r = rng.permutation(data.rows(w))
        if len(r) < 4:
            continue
        seen, scored = r[: len(r) // 2], r[len(r) // 2:]
        f = data.f1[scored].astype(np.float64)
        d = np.linalg.norm(data.u[scored][:, None] - data.u[seen][None], axis=2)
        k = np.exp(-((d / bandwidth) ** 2))
        tot = k.sum(1)
        pred = np.where(tot > 1e-12, (k @ data.f1[seen].astype(np.float64)) / np.maximum(tot, 1e-12), 0.0)
        b = float(data.base[w])
        picks.append(float(f[int(np.argmax(pred))]) - b)
        rand.append(float(f.mean()) - b)
        best.append(float(f.max()) - b)
        beats.append(picks[-1] > rand[-1])
    return PickQuality(len(picks), float(np.mean(picks)), float(np.mean(rand)), float(np.mean(best)),
                       float(np.mean(beats)))


NEIGHBOUR_BANDWIDTHS = (0.05, 0.1, 0.2, 0.5)
"""Kernel bandwidths [unit knob coordinates] of the neighbour bound (0.05: only near-duplicates count)."""


@dataclass(frozen=True)
class KnobCriticBenchConfig:
    plans: str
    """folder of planner experts (<piece>/plan.json with candidates.npz), one embodiment"""
    samples: str = ""
    """cache of the plans' replayed samples (.npz, what `train-knob-head --samples` writes): read if present (plans
    missing from it are replayed and added), else written"""
    folds: int = 5
    """folds over pieces (each held out once)"""
    steps: int = CriticConfig.steps
    """optimiser steps per critic"""
    tau: float = CriticConfig.tau
    """temperature [F1] of the target ranking"""
    seed: int = 0
    threads: int = 1
    """torch threads"""
    target_recovered: float = 0.5
    """the target: held-out (critic - random) / (oracle - random) of the critic with the observation"""
    out: str = ""
    """also write the JSON result here"""


@dataclass(frozen=True)
class KnobCriticBenchResult:
    benchmark: str
    plans: int
    pieces: int
    windows: int
    candidates: int
    folds: list[dict[str, object]]
    """Per fold: held-out pieces, and for ``with_obs`` / ``knobs_only`` the held-out and training PickQuality."""
    held_out: dict[str, dict[str, float]]
    """Per critic, the held-out PickQuality pooled over folds (window-weighted) and its ``recovered``."""
    neighbours: dict[str, dict[str, float]]
    """Per kernel bandwidth, :func:`neighbour_pick_quality` over every window (no training: a bound; its oracle
    and random are those of the scored half, ~15 candidates)."""
    target_recovered: float
    ok: bool
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)


def _quality_dict(q: PickQuality) -> dict[str, float]:
    return {"windows": q.windows, "critic": q.critic, "random": q.random, "oracle": q.oracle,
            "critic_beats_random": q.critic_beats_random, "recovered": q.recovered}


def run_knob_critic_bench(cfg: KnobCriticBenchConfig) -> KnobCriticBenchResult:
    t0 = time.perf_counter()
    torch.set_num_threads(cfg.threads)
    plans = Path(cfg.plans)
    dirs = sorted(p.parent for p in plans.glob(f"*/{PLAN_CANDIDATES}") if (p.parent / "plan.json").is_file())
    if not dirs:
        raise ConfigError(f"{plans}: no plan folder with plan.json and {PLAN_CANDIDATES}")
    samples = cached_plan_samples(dirs, cfg.samples or None)
    data = candidate_windows(dirs, samples)
    pieces = np.asarray(data.pieces)
    if cfg.folds < 2 or cfg.folds > len(pieces):
        raise ConfigError(f"--folds must be between 2 and the number of pieces ({len(pieces)}), got {cfg.folds}")
    order = np.random.default_rng(cfg.seed).permutation(len(pieces))
    folds = []
    pooled: dict[str, list[PickQuality]] = {"with_obs": [], "knobs_only": []}
    for k in range(cfg.folds):
        held = set(pieces[order[k::cfg.folds]].tolist())
        val = [w for w in range(data.n_windows) if data.piece[w] in held]
        tr = [w for w in range(data.n_windows) if data.piece[w] not in held]
        row: dict[str, object] = {"held_out_pieces": sorted(held)}
        for name, use_obs in (("with_obs", True), ("knobs_only", False)):
            net = fit_critic(data, tr, CriticConfig(use_obs=use_obs, steps=cfg.steps, tau=cfg.tau, seed=cfg.seed + k))
            q_val, q_tr = pick_quality(net, data, val), pick_quality(net, data, tr)
            pooled[name].append(q_val)
            row[name] = {"held_out": _quality_dict(q_val), "train": _quality_dict(q_tr)}
        folds.append(row)
    held_out = {}
    for name, qs in pooled.items():
        n = sum(q.windows for q in qs)
        mean = {f: sum(getattr(q, f) * q.windows for q in qs) / n
                for f in ("critic", "random", "oracle", "critic_beats_random")}
        held_out[name] = _quality_dict(PickQuality(n, mean["critic"], mean["random"], mean["oracle"],
                                                   mean["critic_beats_random"]))
    neighbours = {f"{bw:g}": _quality_dict(neighbour_pick_quality(data, bw)) for bw in NEIGHBOUR_BANDWIDTHS}
    ok = bool(held_out["with_obs"]["recovered"] >= cfg.target_recovered)
    res = KnobCriticBenchResult("knob-critic", len(dirs), len(pieces), data.n_windows, int(data.f1.shape[0]), folds,
                                held_out, neighbours, cfg.target_recovered, ok, time.perf_counter() - t0)
    if cfg.out:
        from dataclasses import asdict

        Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.out).write_text(json.dumps(asdict(res), indent=1))
    return res


def format_knob_critic_bench(res: KnobCriticBenchResult) -> str:
    lines = [f"knob critic: {res.plans} plans, {res.windows} windows, {res.candidates} candidates, "
             f"{len(res.folds)} folds over {res.pieces} pieces ({res.wall_s:.0f} s)",
             "held-out pick among each window's candidates, horizon F1 minus the default knobs':"]
    for name, q in res.held_out.items():
        lines.append(f"  {name:10s}: critic {q['critic']:+.4f}  random {q['random']:+.4f}  oracle (planner) "
                     f"{q['oracle']:+.4f}  recovered {q['recovered']:.2f}  beats random in {q['critic_beats_random']:.0%}")
    for bw, q in res.neighbours.items():
        lines.append(f"  half the window's candidates seen, kernel {bw}: pick {q['critic']:+.4f}  random {q['random']:+.4f}  "
                     f"oracle {q['oracle']:+.4f}  recovered {q['recovered']:.2f}")
    lines.append(f"target: recovered >= {res.target_recovered:g} with the observation -> {'met' if res.ok else 'MISSED'}")
    return "\n".join(lines)


BENCH_KNOB_CRITIC: Command[KnobCriticBenchConfig, KnobCriticBenchResult] = Command(
    "knob-critic", "can a critic tell which of the planner's knob candidates win, from the observation?",
    KnobCriticBenchConfig, run_knob_critic_bench, format_knob_critic_bench, positionals=("plans",),
    exit_code=ok_or_1)
