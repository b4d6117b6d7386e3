"""Train one expert for one piece: DroQ residual on the OT/IK prior, resumable, keeps the best by F1.

Loop (one process, ``torch`` on one thread, the batched envs on ``n_threads``):

1. ``n_envs`` clip envs (RP1M: 550-step clips at random starts) each with its own stateful prior.
   Per step: prior action -> policy input -> residual ``a`` (uniform in [-1, 1] during warm-up, i.e.
   the prior plus noise of at most ``residual_scale``; without a prior, plain uniform actions) ->
   env action -> step; transitions ``(x, a, r, x', terminated)`` go to a preallocated numpy replay
   buffer of raw policy inputs. Envs that end are reset at once (new random start, prior reset).
2. After ``learning_starts`` env steps: one update round per ``update_every`` env steps
   (``utd`` critic steps, one actor + temperature step).
3. Every ``eval_every_steps`` env steps: play the WHOLE piece deterministically (one env, no clip)
   and record F1; the prior alone is played once at the start for reference. The best policy by
   F1 is written to ``best.pt`` (at step 0 that is the untrained residual, which IS the prior).
4. Every ``checkpoint_every_min`` minutes, at each eval and at the end: ``last.pt`` (agent,
   optimisers, normaliser, counters, RNG states, curve) and ``replay.npz`` (the most recent
   ``replay_checkpoint_size`` transitions), each written to a temporary file then ``os.replace``d,
   so a kill at any moment leaves a loadable checkpoint. Calling :func:`train_expert` again on the
   same ``out`` resumes from ``last.pt``; ``minutes`` and ``max_env_steps`` are totals over all
   sessions. Episodes in flight at a kill are lost (the envs restart at new random starts).

Outputs in ``out``: ``best.pt``, ``last.pt``, ``replay.npz``, ``curve.json``, ``curve.png``,
``result.json``, ``config.json``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from omnipianist.cliutil import progress
from omnipianist.fileio import atomic_write, save_json
from sim_training.constants import CLIP_STEPS
from sim_training.env.batched import BatchedPianoEnv
from sim_training.env.piano_env import EnvConfig, PianoEnv, load_roll
from sim_training.env.rollout import rollout
from sim_training.experts.droq import DroQAgent, DroQConfig
from sim_training.experts.residual import ObsMode, compose_action, observation_index, policy_input
from sim_training.fingering.prior import OTIKPrior, PriorConfig
from sim_training.models.embodiment import Embodiment, get_embodiment
from sim_training.models.scene import build_scene
from sim_training.torch_io import save_torch

CHECKPOINT_FORMAT = 1
BEST, LAST, REPLAY, CURVE = "best.pt", "last.pt", "replay.npz", "curve.json"


@dataclass(frozen=True)
class ExpertTrainConfig:
    """One expert run. ``minutes`` and ``max_env_steps`` are totals across resumed sessions."""

    piece: str
    """Built-in piece name or MIDI path."""
    out: str = "runs/expert"
    embodiment: str = "shadow"
    action_set: Literal["reduced", "full"] = "reduced"
    forearm_z: bool = False
    minutes: float = 30.0
    max_env_steps: int | None = None
    n_envs: int = 4
    n_threads: int = 2
    clip_steps: int = CLIP_STEPS
    stretch: float = 1.0
    random_start: bool = True
    eval_every_steps: int = 2500
    checkpoint_every_min: float = 2.0
    seed: int = 0
    use_prior: bool = field(default=True, metadata={"also": {
        "flags": ("--no-prior",), "action": "store_false",
        "help": "plain DroQ on the plain observation, no OT/IK prior (= --no-use-prior)"}})
    """Residual on the OT/IK prior; False (CLI --no-prior) = plain DroQ on the plain observation."""
    obs_mode: ObsMode = "compact"
    """Policy input: ``full`` env observation or ``compact`` (see sim_training.experts.residual)."""
    buffer_size: int = 200_000
    """Replay capacity in transitions (preallocated lazily: memory grows with use)."""
    replay_checkpoint_size: int = 10_000
    """Most recent transitions saved for resuming (the rest of the buffer is not)."""
    show_progress: bool = True
    log: bool = True
    """One line per evaluation on stderr."""
    droq: DroQConfig = field(default_factory=DroQConfig, metadata={"prefix": "droq_",
                                                                  "group": "DroQ (flags prefixed --droq-)"})
    prior: PriorConfig = field(default_factory=PriorConfig, metadata={
        "flags": ("--prior-config",), "type": Path, "convert": lambda p: load_prior_config_file(p),
        "help": "JSON object of PriorConfig fields (e.g. from a per-piece search)"})


# ----------------------------------------------------------------------------------- replay
class ReplayBuffer:
    """Preallocated ring buffer of raw policy inputs: obs/next_obs (C, D), action (C, A), reward, done (C,)."""

    def __init__(self, capacity: int, obs_dim: int, action_dim: int) -> None:
        self.capacity = capacity
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.action = np.zeros((capacity, action_dim), dtype=np.float32)
        self.reward = np.zeros(capacity, dtype=np.float32)
        self.done = np.zeros(capacity, dtype=np.float32)
        self.pos = 0
        self.size = 0

    def add(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray,
            done: np.ndarray) -> None:
        """Append N transitions (arrays with leading dimension N)."""
        idx = (self.pos + np.arange(len(reward))) % self.capacity
        self.obs[idx], self.action[idx], self.reward[idx] = obs, action, reward
        self.next_obs[idx], self.done[idx] = next_obs, done
        self.pos = int((idx[-1] + 1) % self.capacity)
        self.size = min(self.capacity, self.size + len(reward))

    def sample(self, rng: np.random.Generator, batch_size: int) -> tuple[np.ndarray, ...]:
        """(obs, action, reward, next_obs, done), drawn uniformly with replacement."""
        i = rng.integers(0, self.size, batch_size)
        return self.obs[i], self.action[i], self.reward[i], self.next_obs[i], self.done[i]

    def recent(self, n: int) -> dict[str, np.ndarray]:
        """The last min(n, size) transitions, oldest first."""
        n = min(n, self.size)
        idx = (self.pos - n + np.arange(n)) % self.capacity
        return {"obs": self.obs[idx], "action": self.action[idx], "reward": self.reward[idx],
                "next_obs": self.next_obs[idx], "done": self.done[idx]}

    def extend(self, d: dict[str, np.ndarray]) -> None:
        if len(d["reward"]):
            self.add(d["obs"], d["action"], d["reward"], d["next_obs"], d["done"])


# ----------------------------------------------------------------------------------- evaluation
def evaluate(env: PianoEnv, prior: OTIKPrior | None, agent: DroQAgent | None, index: np.ndarray,
             residual_scale: float) -> dict[str, float]:
    """Play the env's whole piece from step 0, deterministically; ``agent=None`` plays the prior alone.

    Returns ``env.episode_metrics()`` (f1, note_step_f1, precision, recall, do_nothing_f1, ...).
    """
    if prior is not None:
        prior.reset()

    def act(obs: np.ndarray) -> np.ndarray:
        prior_action = prior.act(obs) if prior is not None else None
        if agent is None:
            assert prior_action is not None, "evaluating the prior alone needs a prior"
            return prior_action
        residual = agent.act(policy_input(obs, prior_action, index), deterministic=True)
        return compose_action(prior_action, residual, residual_scale)

    rollout(env, act, seed=0, start_step=0)
    return {k: float(v) for k, v in env.episode_metrics().items()}


# ----------------------------------------------------------------------------------- checkpoints
_atomic = atomic_write
_save_torch = save_torch
_save_json = save_json


def _save_npz(arrays: dict[str, np.ndarray], path: Path) -> None:
    def write(p: Path) -> None:
        with p.open("wb") as f:
            np.savez(f, allow_pickle=True, **arrays)  # numpy's default, named: ``arrays`` are all **kwds
    _atomic(path, write)


from sim_training.fingering.knobs import prior_config_from_dict  # noqa: E402,F401 - re-exported (one home)


def load_prior_config_file(path: str | Path) -> PriorConfig:
    """``--prior-config FILE``: a JSON object of PriorConfig fields; SystemExit naming the file when it is not one."""
    try:
        return prior_config_from_dict(json.loads(Path(path).read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise SystemExit(f"{path}: not a PriorConfig JSON object ({exc})") from exc


def _embodiment(cfg: ExpertTrainConfig) -> Embodiment:
    return get_embodiment(cfg.embodiment, cfg.action_set, cfg.forearm_z)


_MUST_MATCH = ("piece", "embodiment", "action_set", "forearm_z", "use_prior", "obs_mode", "stretch", "droq", "prior")


def _check_resumable(saved: dict[str, Any], cfg: ExpertTrainConfig, path: Path) -> None:
    now = _config_dict(cfg)
    for key in _MUST_MATCH:
        if saved.get(key) != now[key]:
            raise ValueError(f"{path}: cannot resume, config field {key!r} was {saved.get(key)!r}, now {now[key]!r} "
                             f"(use a new --out or the same settings)")


def _config_dict(cfg: ExpertTrainConfig) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(cfg)))  # tuples -> lists, so saved and current compare equal


def plot_curve(curve: list[dict[str, Any]], path: Path, title: str) -> None:
    """PNG: evaluated F1 vs env steps and vs wall minutes; the prior's F1 dashed, do-nothing dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100, sharey=True)
    for ax, key, label in ((axes[0], "env_steps", "env steps"), (axes[1], "wall_min", "wall minutes")):
        xs = [c[key] for c in curve]
        ax.plot(xs, [c["f1"] for c in curve], "o-", label="policy F1")
        ax.plot(xs, [c["note_step_f1"] for c in curve], ".-", alpha=0.6, label="F1 on note steps")
        if curve and curve[0].get("prior_f1") is not None:
            ax.axhline(curve[0]["prior_f1"], ls="--", c="k", label="prior alone")
        if curve:
            ax.axhline(curve[0]["do_nothing_f1"], ls=":", c="grey", label="do nothing")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("F1 (whole piece)")
    axes[0].set_ylim(0, 1.02)
    axes[1].legend(loc="lower right", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _atomic(path, lambda p: fig.savefig(p, format="png"))
    plt.close(fig)


# ----------------------------------------------------------------------------------- training
def train_expert(cfg: ExpertTrainConfig) -> dict[str, Any]:
    """Train (or resume) the expert for ``cfg.piece`` in ``cfg.out``; returns the result dict (also result.json)."""
    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)  # one core updates; the batched envs use the other(s)
    try:
        return _train(cfg)
    finally:
        torch.set_num_threads(threads_before)


def _train(cfg: ExpertTrainConfig) -> dict[str, Any]:
    dq = cfg.droq
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    emb = _embodiment(cfg)
    scene = build_scene(emb)
    roll = load_roll(cfg.piece, cfg.stretch)
    with_prior = cfg.use_prior
    train_env_cfg = EnvConfig(clip_steps=cfg.clip_steps, random_start=cfg.random_start, stretch=cfg.stretch)
    benv = BatchedPianoEnv([PianoEnv(roll, emb, train_env_cfg, scene=scene) for _ in range(cfg.n_envs)],
                           cfg.n_threads)
    eval_env = PianoEnv(roll, emb, EnvConfig(clip_steps=None, random_start=False, stretch=cfg.stretch), scene=scene)
    lookahead = eval_env.config.lookahead
    priors = [OTIKPrior(scene, cfg.prior, lookahead) for _ in range(cfg.n_envs)] if with_prior else None
    eval_prior = OTIKPrior(scene, cfg.prior, lookahead)  # also plays the prior-alone reference
    index = observation_index(eval_env.layout, cfg.obs_mode)
    A = emb.action_dim
    obs_dim = int(index.size + (A if with_prior else 0))

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    agent = DroQAgent(obs_dim, A, dq)
    buffer = ReplayBuffer(cfg.buffer_size, obs_dim, A)
    meta = {
        "format": CHECKPOINT_FORMAT, "kind": "omnipianist-expert", "piece": cfg.piece,
        "embodiment": {"name": cfg.embodiment, "action_set": cfg.action_set, "forearm_z": cfg.forearm_z,
                       "key": emb.key},
        "with_prior": with_prior, "obs_mode": cfg.obs_mode, "residual_scale": dq.residual_scale,
        "policy_input_dim": obs_dim, "action_dim": A, "lookahead": lookahead,
        "observation_layout": eval_env.layout.to_dict(), "prior_config": asdict(cfg.prior),
        "droq": asdict(dq), "stretch": cfg.stretch,
    }
    c: dict[str, Any] = {"env_steps": 0, "updates": 0, "rounds": 0, "episodes": 0, "wall_s": 0.0,
                         "env_s": 0.0, "update_s": 0.0, "eval_s": 0.0, "best_f1": -1.0, "best_env_steps": 0,
                         "last_eval_steps": None, "prior_f1": None, "prior_metrics": None}
    curve: list[dict[str, Any]] = []
    resumed = (out / LAST).exists()
    if resumed:
        state = torch.load(out / LAST, weights_only=False)
        _check_resumable(state["config"], cfg, out / LAST)
        agent.load_state_dict(state["agent"])
        c.update(state["counters"])
        curve = state["curve"]
        rng.bit_generator.state = state["rng"]["numpy"]
        torch.set_rng_state(state["rng"]["torch"])
        if (out / REPLAY).exists():
            with np.load(out / REPLAY) as z:
                buffer.extend({k: z[k] for k in z.files})
    _save_json(_config_dict(cfg), out / "config.json")

    def save_last() -> None:
        c["wall_s"] = wall()
        _save_npz(buffer.recent(cfg.replay_checkpoint_size), out / REPLAY)
        _save_torch({"meta": meta, "config": _config_dict(cfg), "agent": agent.state_dict(), "counters": dict(c),
                     "curve": curve, "rng": {"numpy": rng.bit_generator.state, "torch": torch.get_rng_state()}},
                    out / LAST)

    t_session = time.perf_counter()
    wall0 = float(c["wall_s"])

    def wall() -> float:
        return wall0 + time.perf_counter() - t_session

    def run_eval(note: str = "") -> dict[str, Any]:
        t0 = time.perf_counter()
        if c["prior_metrics"] is None:
            pm = evaluate(eval_env, eval_prior, None, index, dq.residual_scale)
            c["prior_metrics"], c["prior_f1"] = pm, pm["f1"]
        m = evaluate(eval_env, eval_prior if with_prior else None, agent, index, dq.residual_scale)
        c["eval_s"] += time.perf_counter() - t0
        point = {"env_steps": c["env_steps"], "updates": c["updates"], "wall_min": wall() / 60.0,
                 "f1": m["f1"], "note_step_f1": m["note_step_f1"], "precision": m["precision"],
                 "recall": m["recall"], "prior_f1": c["prior_f1"], "do_nothing_f1": m["do_nothing_f1"],
                 "alpha": agent.alpha, "note": note}
        curve.append(point)
        c["last_eval_steps"] = c["env_steps"]
        if m["f1"] > c["best_f1"]:
            c["best_f1"], c["best_env_steps"] = m["f1"], c["env_steps"]
            _save_torch({"meta": meta, "actor": agent.actor.state_dict(), "obs_norm": agent.obs_norm.state_dict(),
                         "eval": m, "env_steps": c["env_steps"], "updates": c["updates"]}, out / BEST)
        _save_json(curve, out / CURVE)
        plot_curve(curve, out / "curve.png", f"{cfg.piece} ({emb.key}, {'residual' if with_prior else 'no prior'})")
        if cfg.log:
            w = max(wall(), 1e-9)
            print(f"[expert {cfg.piece}] steps {c['env_steps']:>8d} updates {c['updates']:>7d} "
                  f"F1 {m['f1']:.3f} (notes {m['note_step_f1']:.3f}) best {c['best_f1']:.3f} "
                  f"prior {c['prior_f1']:.3f} nothing {m['do_nothing_f1']:.3f} | {c['env_steps'] / w:.1f} env st/s "
                  f"{c['updates'] / w:.1f} upd/s alpha {agent.alpha:.3g}", file=sys.stderr, flush=True)
        return point

    if c["last_eval_steps"] is None:
        run_eval("start")
        save_last()

    # --------------------------------------------------------------------------- collection loop
    def reset_env(i: int) -> tuple[np.ndarray, np.ndarray | None]:
        o, _ = benv.envs[i].reset(seed=int(rng.integers(2**31)))
        if priors is None:
            return o, None
        priors[i].reset()
        return o, priors[i].act(o)

    first = [reset_env(i) for i in range(cfg.n_envs)]
    obs = np.stack([o for o, _ in first])
    prior_a = np.stack([p for _, p in first if p is not None]) if priors is not None else None  # all, with priors

    budget_s = cfg.minutes * 60.0
    last_ckpt = time.perf_counter()
    bar = progress(total=cfg.max_env_steps, desc=f"expert {cfg.piece}", disable=not cfg.show_progress)
    bar.update(c["env_steps"])
    info: dict[str, float] = {}
    while wall() < budget_s and (cfg.max_env_steps is None or c["env_steps"] < cfg.max_env_steps):
        t0 = time.perf_counter()
        x = policy_input(obs, prior_a, index)
        if c["env_steps"] < dq.learning_starts:
            a = rng.uniform(-1.0, 1.0, (cfg.n_envs, A)).astype(np.float32)
        else:
            a = agent.act(x)
        next_obs, reward, term, trunc, _ = benv.step(compose_action(prior_a, a, dq.residual_scale))
        next_prior = np.stack([p.act(o) for p, o in zip(priors, next_obs, strict=True)]) if priors else None
        buffer.add(x, a, reward, policy_input(next_obs, next_prior, index), term.astype(np.float32))
        agent.obs_norm.update(x)
        for i in np.flatnonzero(term | trunc):
            next_obs[i], p = reset_env(int(i))
            if next_prior is not None:
                next_prior[i] = p
            c["episodes"] += 1
        obs, prior_a = next_obs, next_prior
        c["env_steps"] += cfg.n_envs
        bar.update(cfg.n_envs)
        t1 = time.perf_counter()
        c["env_s"] += t1 - t0

        if c["env_steps"] >= dq.learning_starts:
            rounds_due = (c["env_steps"] - dq.learning_starts) // dq.update_every + 1
            while c["rounds"] < rounds_due:
                for g in range(dq.utd):
                    batch = agent.make_batch(*buffer.sample(rng, dq.batch_size))
                    info = agent.update(batch, update_actor=g == dq.utd - 1)
                    c["updates"] += 1
                c["rounds"] += 1
            c["update_s"] += time.perf_counter() - t1

        learning = c["env_steps"] >= dq.learning_starts  # no evals in warm-up: the policy has not changed
        if learning and c["env_steps"] - c["last_eval_steps"] >= cfg.eval_every_steps:
            run_eval()
            save_last()
            last_ckpt = time.perf_counter()
            bar.set_postfix(f1=f"{curve[-1]['f1']:.3f}", best=f"{c['best_f1']:.3f}",
                            ups=f"{c['updates'] / max(wall(), 1e-9):.1f}", alpha=f"{agent.alpha:.2g}")
        elif time.perf_counter() - last_ckpt >= cfg.checkpoint_every_min * 60.0:
            save_last()
            last_ckpt = time.perf_counter()
    bar.close()
    benv.close()

    if c["last_eval_steps"] != c["env_steps"]:
        run_eval("end")
    save_last()
    final = curve[-1]
    w = max(c["wall_s"], 1e-9)
    result = {
        "piece": cfg.piece, "embodiment": emb.key, "with_prior": with_prior, "obs_mode": cfg.obs_mode,
        "prior_f1": c["prior_f1"], "best_f1": c["best_f1"], "best_env_steps": c["best_env_steps"],
        "final_f1": final["f1"], "final_note_step_f1": final["note_step_f1"],
        "prior_note_step_f1": c["prior_metrics"]["note_step_f1"], "do_nothing_f1": final["do_nothing_f1"],
        "env_steps": c["env_steps"], "updates": c["updates"], "episodes": c["episodes"], "wall_s": c["wall_s"],
        "env_steps_per_s": c["env_steps"] / w, "updates_per_s": c["updates"] / w,
        "ms_per_update": 1e3 * c["update_s"] / max(c["updates"], 1),
        "ms_per_env_step": 1e3 * c["env_s"] / max(c["env_steps"], 1),
        "time_split_s": {"env": c["env_s"], "update": c["update_s"], "eval": c["eval_s"]},
        "alpha": agent.alpha, "last_losses": info, "resumed": resumed,
        "checkpoint": str(out / BEST), "last_checkpoint": str(out / LAST), "curve": str(out / CURVE),
    }
    _save_json(result, out / "result.json")
    return result


def config_replace(cfg: ExpertTrainConfig, **changes: Any) -> ExpertTrainConfig:
    """``dataclasses.replace`` that also accepts ``droq_<field>`` keys for the nested DroQConfig."""
    droq = {k[5:]: v for k, v in changes.items() if k.startswith("droq_")}
    rest = {k: v for k, v in changes.items() if not k.startswith("droq_")}
    if droq:
        rest["droq"] = dataclasses.replace(cfg.droq, **droq)
    return dataclasses.replace(cfg, **rest)

