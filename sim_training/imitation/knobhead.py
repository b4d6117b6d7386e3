"""The knob head: a network that chooses the OT/IK prior's knobs from the observation.

The planner (:mod:`sim_training.experts.planner`) plays a piece as the prior whose knobs it re-chooses
every window of ``window`` control steps, by searching with the simulator. This student learns that
choice: observation at a window's first step -> the knobs' unit coordinates (each knob's range mapped
to [0, 1], :data:`~sim_training.experts.planner.REACH_SPACE`). At run time the prior itself still acts
every step (OT fingering, IK); the network only sets its knobs, once per window. What it predicts is
13 numbers in a bounded box whose worst case is a valid prior, where the residual head predicts a
correction to 40+ joint targets at every step.

* :func:`plan_samples`: replay each plan (:class:`~sim_training.experts.planner.PlanExpert`) in the
  env and keep (observation, knob coordinates) at every step of every window (the label is the
  window's choice; its first step is the state the planner planned from).
* :class:`KnobHeadNet`: normaliser + MLP + sigmoid (the normaliser lives in the module, so the ONNX
  graph takes raw observations).
* :func:`train_knob_head`: MSE on the unit coordinates, validation on held-out pieces, checkpoint.
* :class:`KnobHeadPolicy`: the torch student in the simulator (the ONNX runtime does the same,
  :mod:`policy_export.runtime`, kind ``knobs``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sim_training.fingering.knobs import (
    Knob,
    KnobPrior,
    knob_table,
    prior_config_from_dict,
    space_from_table,
    table_mismatch,
)
from sim_training.fingering.prior import OTIKPrior, PriorConfig

KNOB_HEAD_KIND = "omnipianist-knob-head"
CHECKPOINT = "knobhead.pt"


# ----------------------------------------------------------------------------------- data
@dataclass
class KnobSamples:
    """(observation, knob coordinates) pairs from planner rollouts, with where each came from."""

    obs: np.ndarray
    """(N, D) float32 raw observations."""
    u: np.ndarray
    """(N, K) float32 knob unit coordinates of the window the step lies in."""
    piece: np.ndarray
    """(N,) piece id of each sample."""
    step: np.ndarray
    """(N,) control step within the piece."""
    window_start: np.ndarray
    """(N,) bool: the step is a window's first (the state the planner planned from)."""
    gain: np.ndarray
    """(N,) the window's horizon F1 under the chosen knobs minus under the default ones (what the choice bought)."""
    space: tuple[Knob, ...]
    window: int
    embodiment: str
    plan_f1: dict[str, float] = field(default_factory=dict)
    prior_f1: dict[str, float] = field(default_factory=dict)
    observation_layout: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, obs=self.obs, u=self.u, piece=self.piece, step=self.step,
                            window_start=self.window_start, gain=self.gain,
                            meta=json.dumps({"space": knob_table(self.space), "window": self.window,
                                             "embodiment": self.embodiment, "plan_f1": self.plan_f1,
                                             "prior_f1": self.prior_f1,
                                             "observation_layout": self.observation_layout}))

    @classmethod
    def load(cls, path: str | Path) -> KnobSamples:
        z = np.load(path, allow_pickle=False)
        meta = json.loads(str(z["meta"]))
        return cls(z["obs"], z["u"], z["piece"], z["step"], z["window_start"],
                   z["gain"] if "gain" in z else np.zeros(len(z["step"])), space_from_table(meta["space"]),
                   int(meta["window"]), meta["embodiment"], meta["plan_f1"], meta["prior_f1"],
                   meta.get("observation_layout") or {})

    def select(self, pieces: Sequence[str]) -> KnobSamples:
        m = np.isin(self.piece, np.asarray(list(pieces)))
        return self._take(m)

    def _take(self, m: np.ndarray) -> KnobSamples:
        return KnobSamples(self.obs[m], self.u[m], self.piece[m], self.step[m], self.window_start[m], self.gain[m],
                           self.space,
                           self.window, self.embodiment, self.plan_f1, self.prior_f1, self.observation_layout)

    @staticmethod
    def concat(parts: Sequence[KnobSamples]) -> KnobSamples:
        """One sample set from several of the same knob table and window (later parts' F1 records win)."""
        first = parts[0]
        for p in parts[1:]:
            why = table_mismatch(knob_table(p.space), first.space)
            if why or p.window != first.window or p.embodiment != first.embodiment:
                raise ValueError("samples of different knob tables, windows or embodiments cannot be joined"
                                 + (f" ({why})" if why else ""))
        plan_f1: dict[str, float] = {}
        prior_f1: dict[str, float] = {}
        for p in parts:
            plan_f1.update(p.plan_f1)
            prior_f1.update(p.prior_f1)
        cat = np.concatenate
        return KnobSamples(cat([p.obs for p in parts]), cat([p.u for p in parts]), cat([p.piece for p in parts]),
                           cat([p.step for p in parts]), cat([p.window_start for p in parts]),
                           cat([p.gain for p in parts]), first.space, first.window, first.embodiment, plan_f1, prior_f1,
                           first.observation_layout or next((p.observation_layout for p in parts), {}))

    @property
    def pieces(self) -> list[str]:
        return sorted(set(self.piece.tolist()))


class _Recorder:
    """Acts as the plan and keeps each step's observation with its window's knob coordinates."""

    def __init__(self, expert: Any, schedule: list[tuple[int, np.ndarray]], gains: list[float]) -> None:
        self.expert, self.schedule, self.window_gains = expert, schedule, gains
        self.gains: list[float] = []
        self.obs: list[np.ndarray] = []
        self.u: list[np.ndarray] = []
        self.steps: list[int] = []
        self.starts: list[bool] = []
        self._t = 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        due = [j for j, (s, _) in enumerate(self.schedule) if s <= self._t]
        if due:
            s, u = self.schedule[due[-1]]
            self.obs.append(np.asarray(obs, dtype=np.float32))
            self.u.append(u)
            self.steps.append(self._t)
            self.starts.append(s == self._t)
            self.gains.append(self.window_gains[due[-1]])
        self._t += 1
        return np.asarray(self.expert.act(obs))


def plan_samples(plan_dirs: Sequence[str | Path], progress: Callable[[str], None] | None = None) -> KnobSamples:
    """Replay each plan in ``plan_dirs`` (folders with ``plan.json``; one embodiment) in the env and
    keep every step's observation with its window's knob coordinates."""
    from sim_training.dataset.labellers import resolve_piece
    from sim_training.env.piano_env import EnvConfig, PianoEnv
    from sim_training.env.rollout import rollout
    from sim_training.experts.planner import SPACES, load_plan_expert
    from sim_training.fingering.knobs import encode

    obs_l: list[np.ndarray] = []
    u_l: list[np.ndarray] = []
    piece_l: list[str] = []
    step_l: list[int] = []
    start_l: list[bool] = []
    gain_l: list[float] = []
    plan_f1: dict[str, float] = {}
    prior_f1: dict[str, float] = {}
    scene = None
    space: tuple[Knob, ...] | None = None
    window = 0
    emb_key = ""
    layout: dict[str, Any] = {}
    for d in plan_dirs:
        expert = load_plan_expert(d, scene)
        scene = expert.scene
        doc = expert.meta
        if emb_key and doc["embodiment"] != emb_key:
            raise ValueError(f"{d}: plan for {doc['embodiment']!r}, the others are for {emb_key!r}")
        emb_key = doc["embodiment"]
        sp = SPACES[doc["planner"].get("space", "prior")]
        if space is not None and sp != space:
            raise ValueError(f"{d}: planned in another knob space than the plans before it")
        space, window = sp, int(doc["planner"]["window"])
        if any("right_knobs" in w for w in doc["windows"]):
            raise ValueError(f"{d}: a per-hand plan (right_knobs); the knob head learns one set for both hands")
        piece = str(doc["piece"])
        env = PianoEnv(resolve_piece(piece).source, expert.embodiment,
                       EnvConfig(clip_steps=None, random_start=False, stretch=float(doc.get("stretch", 1.0))),
                       scene=scene)
        layout = env.layout.to_dict()
        sched = [(int(step), encode(cfg, space).astype(np.float32))
                 for step, cfg, _ in expert.schedule]
        gains = [float(w.get("horizon_f1", 0.0)) - float(w.get("default_horizon_f1", 0.0)) if w.get("searched")
                 else 0.0 for w in doc["windows"]]
        rec = _Recorder(expert, sched, gains)
        try:
            expert.reset()
            ep = rollout(env, rec.act, seed=0, start_step=int(doc["start_step"]))
        finally:
            env.close()
        obs_l += rec.obs
        u_l += rec.u
        step_l += rec.steps
        start_l += rec.starts
        gain_l += rec.gains
        piece_l += [piece] * len(rec.obs)
        plan_f1[piece] = float(ep.metrics["f1"])
        prior_f1[piece] = float(doc.get("prior_f1", np.nan))
        if progress is not None:
            progress(f"{piece}: replayed F1 {plan_f1[piece]:.3f} (plan.json {float(doc['f1']):.3f})")
    if space is None:
        raise ValueError("no plans given")
    return KnobSamples(np.stack(obs_l), np.stack(u_l), np.asarray(piece_l), np.asarray(step_l, dtype=np.int64),
                       np.asarray(start_l), np.asarray(gain_l), space, window, emb_key, plan_f1, prior_f1, layout)


def cached_plan_samples(plan_dirs: Sequence[str | Path], cache: str | Path | None = None) -> KnobSamples:
    """:func:`plan_samples` of ``plan_dirs`` through the cache file ``cache`` (.npz): plans it does not
    hold yet are replayed and added (the cache is rewritten), and only the pieces of ``plan_dirs`` are
    returned, so a cache follows a plans folder that grows between runs."""
    dirs = [Path(d) for d in plan_dirs]
    names = [str(json.loads((d / "plan.json").read_text())["piece"]) for d in dirs]
    if cache is None:
        return plan_samples(dirs)
    path = Path(cache)
    if not path.is_file():
        samples = plan_samples(dirs)
        path.parent.mkdir(parents=True, exist_ok=True)
        samples.save(path)
        return samples
    samples = KnobSamples.load(path)
    known = set(samples.pieces)
    new = [d for d, n in zip(dirs, names, strict=True) if n not in known]
    if new:
        samples = KnobSamples.concat([samples, plan_samples(new)])
        samples.save(path)
    return samples.select(names)


# ----------------------------------------------------------------------------------- relabelling
class _PlannerRelabel:
    """Acts as the student; at each window start the planner chooses knobs from the student's state
    (the env's and the student prior's memory) and that choice is the label of the step's observation."""

    def __init__(self, student: Any, env: Any, planner: Any) -> None:
        self.student, self.env, self.planner = student, env, planner
        self.window = int(planner.cfg.window)
        self.obs: list[np.ndarray] = []
        self.u: list[np.ndarray] = []
        self.steps: list[int] = []
        self.gains: list[float] = []
        self._warm: np.ndarray | None = None
        self._t = 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        import dataclasses

        from sim_training.experts.planner import Snapshot

        if self._t % self.window == 0 and self.env.step_index < self.planner.n_steps:
            state = dataclasses.replace(self.env.get_state(), end=self.planner.n_steps)
            choice = self.planner.plan_window(Snapshot(state, self.student.runner.prior.state()), self._warm)
            self._warm = choice.u
            self.obs.append(np.asarray(obs, dtype=np.float32))
            self.u.append(np.asarray(choice.u, dtype=np.float32))
            self.steps.append(self._t)
            self.gains.append(float(choice.f1 - choice.default_f1) if choice.searched else 0.0)
        self._t += 1
        return np.asarray(self.student.act(obs))


def relabel_samples(student: Any, pieces: Sequence[str], planner_config: Any = None,
                    progress: Callable[[str], None] | None = None) -> tuple[KnobSamples, dict[str, float]]:
    """RP1M++ / DAgger with the planner as the labeller: the knob-head ``student`` (a
    :class:`KnobHeadPolicy`) plays each piece; at every window start the planner chooses the knobs
    from the state the student is in, and (observation, choice) becomes a sample. Returns the samples
    (window starts only) and the student's F1 per piece (as it played, with its own knobs)."""
    from sim_training.dataset.labellers import resolve_piece
    from sim_training.env.piano_env import EnvConfig, PianoEnv
    from sim_training.env.rollout import rollout
    from sim_training.experts.planner import SPACES, Planner, PlannerConfig

    cfg = planner_config if planner_config is not None else PlannerConfig()
    space = SPACES[cfg.space]
    why = table_mismatch(knob_table(student.runner.space), space)
    if why:
        raise ValueError(f"the student's knob table is not the planner's {cfg.space!r} table: {why}")
    if int(cfg.window) != int(student.runner.window):
        raise ValueError(f"the planner's window ({cfg.window}) is not the student's ({student.runner.window})")
    parts: list[KnobSamples] = []
    f1s: dict[str, float] = {}
    for piece in pieces:
        src = resolve_piece(piece).source
        env = PianoEnv(src, student.embodiment, EnvConfig(clip_steps=None, random_start=False), scene=student.scene)
        with Planner(src, student.embodiment, cfg, scene=student.scene, base=student.runner.base) as planner:
            rec = _PlannerRelabel(student, env, planner)
            try:
                student.reset()
                ep = rollout(env, rec.act, seed=0, start_step=0)
            finally:
                env.close()
        f1s[piece] = float(ep.metrics["f1"])
        n = len(rec.obs)
        parts.append(KnobSamples(np.stack(rec.obs), np.stack(rec.u), np.asarray([piece] * n),
                                 np.asarray(rec.steps, dtype=np.int64), np.ones(n, bool), np.asarray(rec.gains),
                                 space, int(cfg.window), student.embodiment.key,
                                 observation_layout=env.layout.to_dict()))
        if progress is not None:
            progress(f"{piece}: student F1 {f1s[piece]:.3f}, {n} windows relabelled")
    return KnobSamples.concat(parts), f1s


def relabel_rounds(samples: KnobSamples, pieces: Sequence[str], out: str | Path, rounds: int,
                   train_config: KnobTrainConfig | None = None, planner_config: Any = None,
                   progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train, let the student play ``pieces``, relabel its states with the planner, add them, retrain
    (``rounds`` times); ``out/round<k>/`` holds each round's student (round 0: the planner's own
    rollouts only). Returns per round the student's F1 per piece, the labels added and the student."""
    cfg = train_config if train_config is not None else KnobTrainConfig()
    out = Path(out)
    data = samples
    log: list[dict[str, Any]] = []
    for r in range(rounds + 1):
        d = out / f"round{r}"
        result = train_knob_head(data, d, cfg)
        student = KnobHeadPolicy(d)
        new, f1s = relabel_samples(student, pieces, planner_config, progress) if r < rounds else (None, {})
        if r == rounds:  # the last student is only measured
            from sim_training.dataset.labellers import resolve_piece
            from sim_training.imitation.evaluate import evaluate_policy

            f1s = {p: float(evaluate_policy(resolve_piece(p).source, student, student.embodiment)["f1"])
                   for p in pieces}
        log.append({"round": r, "student": str(d), "samples": int(data.obs.shape[0]), "student_f1": f1s,
                    "student_f1_mean": float(np.mean(list(f1s.values()))) if f1s else float("nan"),
                    "labels_added": 0 if new is None else int(new.obs.shape[0]),
                    "labels": None if new is None else new.u.tolist(),
                    "final_val_mse": (result.get("final") or {}).get("val_mse")})
        if progress is not None:
            progress(f"round {r}: student F1 {log[-1]['student_f1_mean']:.3f} on {len(pieces)} pieces")
        if new is not None:
            data = KnobSamples.concat([data, new])
    summary = {"rounds": log, "pieces": list(pieces)}
    (out / "relabel.json").write_text(json.dumps(summary, indent=1))
    return summary


# ----------------------------------------------------------------------------------- model
@dataclass(frozen=True)
class KnobHeadConfig:
    """Defaults: the shipped heads (a sweep over width, depth, dropout, weight decay and inputs on 99
    Shadow plans: the held-out-piece MSE was lowest, 0.91 of the mean knobs', with the full observation,
    every step, width 256, dropout 0.5, after ~500 steps; longer training overfits)."""

    hidden_width: int = 256
    hidden_layers: int = 2
    dropout: float = 0.5
    obs_clip: float = 10.0


class KnobHeadNet(nn.Module):
    """Raw observation (B, D) -> knob unit coordinates (B, K) in (0, 1)."""

    def __init__(self, config: KnobHeadConfig, obs_mean: np.ndarray, obs_std: np.ndarray, n_knobs: int) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("obs_mean", torch.as_tensor(obs_mean, dtype=torch.float32))
        self.register_buffer("obs_std", torch.as_tensor(obs_std, dtype=torch.float32))
        d = int(obs_mean.shape[0])
        layers: list[nn.Module] = []
        width = d
        for _ in range(config.hidden_layers):
            layers += [nn.Linear(width, config.hidden_width), nn.LayerNorm(config.hidden_width), nn.GELU(),
                       nn.Dropout(config.dropout)]
            width = config.hidden_width
        layers.append(nn.Linear(width, n_knobs))
        self.mlp = nn.Sequential(*layers)

    obs_mean: Tensor
    obs_std: Tensor

    def forward(self, obs: Tensor) -> Tensor:
        x = torch.clamp((obs - self.obs_mean) / self.obs_std, -self.config.obs_clip, self.config.obs_clip)
        return torch.sigmoid(self.mlp(x))

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


@dataclass(frozen=True)
class KnobTrainConfig:
    steps: int = 500
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    window_starts_only: bool = False
    """Train only on the states the planner planned from (else every step, labelled with its window's knobs)."""
    weighting: str = "none"
    """``none``: every sample alike; ``gain``: weighted by what the window's choice bought over the default
    knobs (max(gain, 0) + ``gain_floor``): windows where the knobs did not matter carry little."""
    gain_floor: float = 0.01
    val_fraction: float = 0.1
    seed: int = 0
    threads: int = 1
    eval_every: int = 50
    model: KnobHeadConfig = KnobHeadConfig()


def _split_pieces(pieces: Sequence[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    order = list(pieces)
    rng.shuffle(order)
    n_val = max(1, int(round(val_fraction * len(order)))) if len(order) > 1 and val_fraction > 0 else 0
    return sorted(order[n_val:]), sorted(order[:n_val])


def train_knob_head(samples: KnobSamples, out: str | Path, cfg: KnobTrainConfig = KnobTrainConfig(),
                    base_prior: PriorConfig | None = None, show_progress: bool = False) -> dict[str, Any]:
    """Train on ``samples`` (validation: whole held-out pieces) and write ``out/knobhead.pt`` and
    ``out/result.json``; returns the result (losses per evaluation, wall time, pieces)."""
    from omnipianist.cliutil import progress

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train_p, val_p = _split_pieces(samples.pieces, cfg.val_fraction, cfg.seed)
    tr, va = samples.select(train_p), samples.select(val_p)
    if cfg.window_starts_only:
        tr = tr._take(tr.window_start)
    mean = tr.obs.mean(0)
    std = tr.obs.std(0)
    std = np.where(std < 1e-6, 1.0, std)
    net = KnobHeadNet(cfg.model, mean, std, tr.u.shape[1])
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    x_tr, y_tr = torch.as_tensor(tr.obs), torch.as_tensor(tr.u)
    if cfg.weighting == "gain":
        w = np.maximum(tr.gain, 0.0) + cfg.gain_floor
    elif cfg.weighting == "none":
        w = np.ones(len(tr.gain))
    else:
        raise ValueError(f"weighting must be 'none' or 'gain', got {cfg.weighting!r}")
    w_tr = torch.as_tensor(w / w.mean(), dtype=torch.float32)
    vs = va.window_start if va.obs.shape[0] else np.zeros(0, bool)
    x_va, y_va = torch.as_tensor(va.obs[vs]), torch.as_tensor(va.u[vs])
    # the constant that minimises the training MSE: what a head that ignores the observation predicts
    const = y_tr.mean(0, keepdim=True)
    gen = torch.Generator().manual_seed(cfg.seed)
    curve: list[dict[str, float]] = []
    t0 = time.perf_counter()
    bar = progress(range(cfg.steps), desc="train knob head", disable=not show_progress)
    running = 0.0
    for step in bar:
        net.train()
        idx = torch.randint(0, x_tr.shape[0], (cfg.batch_size,), generator=gen)
        loss = torch.mean(w_tr[idx, None] * (net(x_tr[idx]) - y_tr[idx]) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running = 0.98 * running + 0.02 * loss.item() if step else loss.item()
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            net.eval()
            with torch.no_grad():
                val = float(torch.mean((net(x_va) - y_va) ** 2)) if x_va.shape[0] else float("nan")
                val_const = float(torch.mean((const - y_va) ** 2)) if x_va.shape[0] else float("nan")
            curve.append({"step": step + 1, "train_mse": running, "val_mse": val, "val_mse_constant": val_const,
                          "wall_s": time.perf_counter() - t0})
            bar.set_postfix(train=f"{running:.4f}", val=f"{val:.4f}", const=f"{val_const:.4f}")
    wall = time.perf_counter() - t0
    meta = {"kind": KNOB_HEAD_KIND, "embodiment": samples.embodiment, "knob_table": knob_table(samples.space),
            "window": samples.window, "observation_layout": samples.observation_layout,
            "base_prior": asdict(base_prior if base_prior is not None else PriorConfig()),
            "model": asdict(cfg.model), "train": {k: v for k, v in asdict(cfg).items() if k != "model"},
            "train_pieces": train_p, "val_pieces": val_p, "samples": int(x_tr.shape[0]), "steps": cfg.steps,
            "obs_dim": int(mean.shape[0]), "params": net.n_params(), "wall_s": wall}
    torch.save({"meta": meta, "state_dict": net.state_dict()}, out / CHECKPOINT)
    result = {**meta, "curve": curve, "final": curve[-1] if curve else {}}
    (out / "result.json").write_text(json.dumps(result, indent=1))
    _plot_curve(curve, out / "loss.png")
    return result


def _plot_curve(curve: list[dict[str, float]], path: Path) -> None:
    if not curve:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    s = [c["step"] for c in curve]
    ax.plot(s, [c["train_mse"] for c in curve], label="train MSE")
    ax.plot(s, [c["val_mse"] for c in curve], label="val MSE (held-out pieces, window starts)")
    ax.plot(s, [c["val_mse_constant"] for c in curve], "--", label="val MSE of the mean knobs")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("MSE (unit knob coordinates)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def load_knob_head(path: str | Path) -> tuple[KnobHeadNet, dict[str, Any]]:
    p = Path(path)
    f = p / CHECKPOINT if p.is_dir() else p
    state = torch.load(f, map_location="cpu", weights_only=False)
    meta = state.get("meta") or {}
    if meta.get("kind") != KNOB_HEAD_KIND:
        raise ValueError(f"{f}: not a knob-head checkpoint (meta kind {meta.get('kind')!r})")
    sd = state["state_dict"]
    net = KnobHeadNet(KnobHeadConfig(**meta["model"]), sd["obs_mean"].numpy(), sd["obs_std"].numpy(),
                      len(meta["knob_table"]))
    net.load_state_dict(sd)
    net.eval()
    return net, meta


# ----------------------------------------------------------------------------------- policy
class KnobHeadPolicy:
    """A trained knob head playing in the simulator (torch); ``act(obs) -> action``."""

    def __init__(self, path: str | Path, scene: Any = None, constant: np.ndarray | None = None) -> None:
        from sim_training.models.embodiment import embodiment_from_meta
        from sim_training.models.scene import build_scene

        self.net, self.meta = load_knob_head(path)
        self.source = str(path) if constant is None else f"{path} (constant knobs)"
        self.embodiment = embodiment_from_meta(self.meta["embodiment"])
        self.scene = scene if scene is not None else build_scene(self.embodiment)
        base = prior_config_from_dict(self.meta["base_prior"])
        space = space_from_table(self.meta["knob_table"])

        def choose(obs: np.ndarray) -> np.ndarray:
            if constant is not None:
                return constant
            with torch.no_grad():
                return self.net(torch.as_tensor(np.asarray(obs, dtype=np.float32))[None])[0].numpy()

        self.runner = KnobPrior(OTIKPrior(self.scene, base), base, space, int(self.meta["window"]), choose)
        self.reset()

    def reset(self) -> None:
        self.runner.reset()

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.runner.act(obs)
