"""The expert: receding-horizon search over the OT/IK prior's knobs, with the simulator as the model.

The prior's misses are local (a leap, a black-key passage, a fast run), so one knob setting per
piece is a compromise. The planner picks the knobs **per window** of ``window`` control steps::

    for each window:
        snapshot = env.get_state() (mj_getState, integration state) + prior.state()
        candidates = {last window's knobs (warm start), the default knobs}   # always tried
        if the better of the two plays the horizon perfectly: commit it (adaptive: nothing to search)
        for it in 1..iterations:  # CEM (or MPPI) in unit knob space
            sample more knobs ~ N(mu, sigma); play each for `horizon` steps from the snapshot;
            score = mean step F1 over those steps; mu <- elites' mean (MPPI: softmax-weighted); sigma *= decay
        commit the best candidate's first `window` steps: its state at step `window` becomes the
        next snapshot (no replay), its actions the plan's

Properties the tests hold it to:

* **Never worse than the default prior over the horizon**: the default knobs are played from every
  snapshot and a candidate only wins with a strictly higher score (ties keep the earlier of warm
  start, default, samples).
* **Deterministic for a seed, whatever the worker count**: the window's random numbers come from
  ``default_rng([seed, step])``; candidates are sampled in this process, played by a pool of workers
  (each holding its own env and prior) and gathered by index.
* **Labels at any state** (:class:`PlannerLabeller`): from any (env, prior) state at a window
  boundary, :meth:`Planner.plan_window` gives that window's knobs; the label of each visited state
  is the prior's action under them. On the planner's own trajectory the labels are the committed
  actions, bit for bit.

Robust scoring (``noisy_plays`` > 0): each candidate is also played with Gaussian action noise (the
same draws for every candidate of a window) and scored by its mean F1, so that a window keeps knobs that
are good around the planned trajectory, not only on it; the committed steps stay the noise-free play's.

Knobs: :data:`PLANNER_SPACE` (the per-piece search's table, :data:`~sim_training.experts.search.SEARCH_SPACE`,
plus the press lead in steps). The output is a :class:`Plan`: per-window knobs and F1 (next to the
default prior's on the same steps), the committed actions and the whole-piece metrics; ``save``
writes ``plan.json`` + ``actions.npy`` (+ ``plan.png`` with ``--plot``), an expert directory that
:func:`load_plan_expert` plays back (the prior following the plan's knob schedule).

CLI: ``omnipianist plan PIECE --budget B --out DIR [--embodiment E] [--workers N] [--plot] [--json]``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from omnipianist.cliutil import progress
from omnipianist.command import Command
from omnipianist.errors import OmnipianistError
from omnipianist.media import write_video
from sim_training.constants import CONTROL_DT_S
from sim_training.env.observation import ObservationLayout
from sim_training.env.piano_env import EnvConfig, EnvState, PianoEnv, load_roll
from sim_training.fingering.knobs import (
    SEARCH_SPACE,
    Knob,
    decode,
    encode,
    knob_values,
    prior_config_from_dict,
    prior_config_to_json,
)
from sim_training.fingering.prior import OTIKPrior, PriorConfig, PriorState
from sim_training.metrics import onset_prf
from sim_training.metrics.f1 import step_prf
from sim_training.models.embodiment import ActionSet, Embodiment, embodiment_from_meta, get_embodiment
from sim_training.models.scene import Scene, build_scene
from sim_training.workers import single_threaded_children

if TYPE_CHECKING:
    from sim_training.music import PianoRoll, Score

PLAN_JSON, PLAN_ACTIONS, PLAN_PNG = "plan.json", "actions.npy", "plan.png"
PLAN_CANDIDATES = "candidates.npz"
PLAN_FORMAT = 1

PLANNER_SPACE: tuple[Knob, ...] = (
    *SEARCH_SPACE,
    Knob("lead_steps", 0, 2, "int", doc="press keys this many steps before they are due"),
)
"""The planner's knobs: the per-piece search's table plus the press lead (harmful for a whole piece,
measured, but a window may want it)."""

REACH_SPACE: tuple[Knob, ...] = (
    *PLANNER_SPACE,
    Knob("forward_gain", 0.0, 1.5, doc="forearm reach into the piano for the keys due (black keys lie further in)"),
)
"""``space="reach"``: the planner's knobs plus the forearm's reach into the piano (``forward_gain``;
the default prior keeps the forearm's y slide at 0, so its fingers never reach most black keys) and
black-key targets nearer the front."""

REACH_SEED: dict[str, Any] = {"forward_gain": 1.0, "black_forward_m": -0.01}
"""``space="reach"``: knobs also played from every snapshot (like the default): the prior reaching
in (measured: prior F1 0.716 -> 0.763 on 12 test clips, 0.690 -> 0.704 on 12 validation clips, Shadow)."""

SPACES: dict[str, tuple[Knob, ...]] = {"prior": PLANNER_SPACE, "reach": REACH_SPACE}

SHARED_KNOBS = ("plan_steps", "lead_steps")
"""Knobs both hands share (the rows of the score the prior looks at); the rest can differ per hand."""

Noise = tuple[float, tuple[int, ...]]
"""Action noise of a play: (std in normalised action units, the seed of its draws)."""

Knobs = tuple[PriorConfig, "PriorConfig | None"]
"""What a candidate plays: the prior's config and, when planning per hand, the right hand's."""


class PlannerError(OmnipianistError, ValueError):
    """A planner setting or piece that cannot be planned (says which and why)."""


@dataclass(frozen=True)
class PlannerConfig:
    """Receding-horizon search settings (defaults: the measured prototype, W10 H20 N12 x 2 rounds)."""

    budget: int = 24
    """Candidate plays per window at most (warm start and default included), split over ``iterations``."""
    window: int = 10
    """Control steps committed per planning round (W)."""
    horizon: int = 20
    """Control steps each candidate is played and scored over (H >= W)."""
    iterations: int = 2
    """Sampling rounds per window (CEM / MPPI updates)."""
    method: Literal["cem", "mppi"] = "cem"
    init_std: float = 0.15
    """Sampling std in unit knob space (each knob's range mapped to [0, 1]) at a window's first round."""
    std_decay: float = 0.6
    """sigma is multiplied by this after each round."""
    elite_frac: float = 0.25
    """CEM: the top fraction whose mean becomes mu."""
    mppi_temperature: float = 0.02
    """MPPI: softmax temperature on the window F1."""
    adaptive: bool = True
    """Skip the search where warm start or default already plays the horizon perfectly; give
    ``hard_scale`` times the budget where the best of them scores below ``hard_f1``."""
    hard_f1: float = 0.8
    hard_scale: float = 1.5
    space: Literal["prior", "reach"] = "reach"
    """Knob table: ``reach`` (:data:`REACH_SPACE`: the forearm's reach into the piano, seeded with
    :data:`REACH_SEED`; measured on 28 test clips, Shadow: F1 0.849 vs 0.823 with ``prior``, better
    on 24, 8 % less CPU) or ``prior`` (:data:`PLANNER_SPACE`, the per-piece search's knobs)."""
    per_hand: bool = False
    """Search the hand knobs of each hand separately (the shared ones once): each candidate is scored
    per hand as well (keys left / right of the midpoint between the carriages), the CEM update of
    each hand's knobs uses that hand's score, and each round also plays the best left half with the
    best right half."""
    noisy_plays: int = 0
    """Robust scoring: each candidate is also played this many times with Gaussian action noise of std
    ``play_noise`` (the same draws for every candidate of a window) and scored by its mean F1 over the
    noise-free play and these; the committed steps are the noise-free play's. Measured: half of the
    noise-free planner's gain over the prior is gone under action noise of std 0.02 (``bench
    plan-noise``). CPU x (1 + noisy_plays)."""
    play_noise: float = 0.02
    """Std of the noisy plays' action noise (normalised action units)."""
    seed: int = 0
    workers: int = 0
    """Processes playing candidates (0: in this process, what a one-CPU Ray task wants)."""

    def check(self) -> None:
        """Raise PlannerError naming the bad field."""
        if self.budget < 1:
            raise PlannerError(f"budget must be >= 1 candidate play per window, got {self.budget}")
        if self.window < 1:
            raise PlannerError(f"window must be >= 1 control step, got {self.window}")
        if self.horizon < self.window:
            raise PlannerError(f"horizon ({self.horizon}) must be >= window ({self.window}): a window is "
                               "committed from a play at least that long")
        if self.iterations < 1:
            raise PlannerError(f"iterations must be >= 1, got {self.iterations}")
        if self.method not in ("cem", "mppi"):
            raise PlannerError(f"method must be 'cem' or 'mppi', got {self.method!r}")
        if not 0.0 < self.elite_frac <= 1.0:
            raise PlannerError(f"elite_frac must be in (0, 1], got {self.elite_frac}")
        if self.space not in SPACES:
            raise PlannerError(f"space must be one of {sorted(SPACES)}, got {self.space!r}")
        if self.workers < 0:
            raise PlannerError(f"workers must be >= 0, got {self.workers}")
        if self.noisy_plays < 0:
            raise PlannerError(f"noisy_plays must be >= 0, got {self.noisy_plays}")
        if self.noisy_plays and not (math.isfinite(self.play_noise) and self.play_noise > 0):
            raise PlannerError(f"play_noise must be a positive number with noisy_plays, got {self.play_noise}")
        for name in ("init_std", "std_decay", "mppi_temperature"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise PlannerError(f"{name} must be a positive number, got {v}")


# ----------------------------------------------------------------------------------- one candidate
@dataclass(frozen=True, eq=False)
class Snapshot:
    """Where a window starts: the env's and the prior's state."""

    env: EnvState
    prior: PriorState


@dataclass(frozen=True, eq=False)
class Rollout:
    """One candidate played from a snapshot: its score and what committing its first W steps needs."""

    f1: float
    steps: int
    actions: np.ndarray
    """(min(W, steps), action_dim) the actions of the first W steps."""
    committed: Snapshot
    """State after the first W steps."""
    hand_f1: tuple[float, float]
    """Mean step F1 of each hand's keys (left / right of the midpoint between the carriage targets)."""
    press: float
    """Tie-breaker: mean depression of the goal keys minus that of the others, per goal key (F1 is
    a step function of the knobs; this tells near misses apart)."""


def _best(f1: Sequence[float], ties: Sequence[float]) -> int:
    """Index of the best candidate: highest F1, then highest press score, then the earliest."""
    return min(range(len(f1)), key=lambda i: (-f1[i], -ties[i], i))


def window_f1(active: np.ndarray, goal: np.ndarray) -> float:
    """Mean step F1 (RoboPianist's metric, zero_division = 1) of the rows given."""
    return step_prf(active, goal).f1


class RolloutEngine:
    """An env (whole piece, no OT reward) and a prior; plays candidates from snapshots."""

    def __init__(self, piece: str | Score | PianoRoll, embodiment: Embodiment, scene: Scene | None = None,
                 stretch: float = 1.0, base: PriorConfig | None = None) -> None:
        self.scene = scene if scene is not None else build_scene(embodiment)
        self.env = PianoEnv(piece, embodiment, EnvConfig(clip_steps=None, random_start=False, stretch=stretch,
                                                         ot_reward=False), scene=self.scene)
        self.base = base if base is not None else PriorConfig()
        self.prior = OTIKPrior(self.scene, self.base, self.env.config.lookahead)

    def start(self, start_step: int = 0) -> Snapshot:
        self.env.reset(seed=0, options={"start_step": start_step})
        self.prior.reset()
        self.prior.configure(self.base)
        return Snapshot(self.env.get_state(), self.prior.state())

    def play(self, snap: Snapshot, config: PriorConfig, steps: int, keep: int,
             right: PriorConfig | None = None, noise: Noise | None = None) -> Rollout:
        """Play ``config`` (``right`` for the right hand, if given) for ``steps`` steps (fewer at the
        piece's end) from ``snap``; ``noise`` (std, seed): Gaussian noise added to every action (clipped)."""
        env, prior = self.env, self.prior
        rng = np.random.default_rng(list(noise[1])) if noise is not None else None
        obs = env.set_state(snap.env)
        prior.restore(snap.prior)
        prior.configure(config, right)
        hand_f1 = np.zeros(2)
        key_x = prior.key_x
        slot_mid = prior.slot_x.mean(axis=1)
        row0 = env.step_index
        actions = []
        committed: Snapshot | None = None
        played = 0
        goal_keys = env.roll.keys
        press, n_goal = 0.0, 0
        for i in range(steps):
            a = prior.act(obs)
            if rng is not None and noise is not None:
                a = np.clip(a + rng.normal(0.0, noise[0], a.shape), -1.0, 1.0)
            if i < keep:
                actions.append(a)
            obs, _, term, trunc, _ = env.step(a)
            g = goal_keys[row0 + i]
            act = env._active_log[row0 - env._start + i]
            left = key_x < float(np.mean(prior._carriage + slot_mid))
            for h, side in enumerate((left, ~left)):
                tp = np.count_nonzero(act & g & side)
                den = 2 * tp + np.count_nonzero(act & ~g & side) + np.count_nonzero(~act & g & side)
                hand_f1[h] += 2 * tp / den if den else 1.0
            ks = env.key_state()
            press += float(ks[g].sum() - ks[~g].sum())
            n_goal += max(int(g.sum()), 1)
            played = i + 1
            if played == keep:
                committed = Snapshot(env.get_state(), prior.state())
            if term or trunc:
                break
        if committed is None:  # the piece ended inside the window
            committed = Snapshot(env.get_state(), prior.state())
        active = env._active_log[row0 - env._start: row0 - env._start + played]
        goal = env.roll.keys[row0: row0 + played]
        hf = hand_f1 / max(played, 1)
        return Rollout(window_f1(active, goal), played, np.asarray(actions), committed, (float(hf[0]), float(hf[1])),
                       press / max(n_goal, 1))


# ----------------------------------------------------------------------------------- worker pool
_ENGINE: RolloutEngine | None = None


def _init_worker(piece: str, emb: tuple[str, ActionSet, bool], stretch: float, base: dict[str, Any]) -> None:
    global _ENGINE
    _ENGINE = RolloutEngine(piece, get_embodiment(*emb), stretch=stretch,
                            base=prior_config_from_dict(base))


def _play_in_worker(snap: Snapshot, configs: list[Knobs], steps: int, keep: int,
                    noise: Noise | None = None) -> list[Rollout]:
    assert _ENGINE is not None, "planner worker not initialised"
    return [_ENGINE.play(snap, c, steps, keep, r, noise) for c, r in configs]


class _Players:
    """Plays batches of candidates in this process or in a spawn pool; results in candidate order."""

    def __init__(self, engine: RolloutEngine, workers: int, piece_source: str | None, stretch: float) -> None:
        self.engine = engine
        self.pool: ProcessPoolExecutor | None = None
        self.workers = workers
        if workers > 0:
            if piece_source is None:
                raise PlannerError("workers > 0 needs a piece given by name or MIDI path (workers load it)")
            emb = engine.scene.embodiment
            with single_threaded_children():
                self.pool = ProcessPoolExecutor(
                    workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
                    initargs=(piece_source, (emb.name, emb.action_set, emb.forearm_z), stretch,
                              prior_config_to_json(engine.base)))
                # start them now (lazily they would inherit the parent's thread settings)
                list(self.pool.map(int, range(workers)))

    def play(self, snap: Snapshot, configs: list[Knobs], steps: int, keep: int,
             noise: Noise | None = None) -> list[Rollout]:
        if self.pool is None or len(configs) < 2:
            return [self.engine.play(snap, c, steps, keep, r, noise) for c, r in configs]
        chunks = np.array_split(np.arange(len(configs)), min(self.workers, len(configs)))
        futures: list[Future[list[Rollout]]] = [
            self.pool.submit(_play_in_worker, snap, [configs[i] for i in idx], steps, keep, noise)
            for idx in chunks if idx.size]
        return [r for f in futures for r in f.result()]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


# ----------------------------------------------------------------------------------- one window
@dataclass(frozen=True, eq=False)
class WindowChoice:
    """What the planner chose for one window."""

    step: int
    """Piece step at which the window starts."""
    u: np.ndarray
    """Chosen knobs in unit coordinates (per hand: the shared and left knobs, then the right's)."""
    config: PriorConfig
    right: PriorConfig | None
    """The right hand's knobs when planning per hand."""
    f1: float
    """The chosen candidate's F1 over the horizon (what was maximised)."""
    default_f1: float
    """The default knobs' F1 over the same horizon from the same state."""
    plays: int
    searched: bool
    rollout: Rollout
    candidates: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    """(plays, knob dim) every candidate played for this window, in unit coordinates, in play order."""
    candidate_f1: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """(plays,) each candidate's F1 over the horizon (the default knobs' is ``default_f1``)."""
    candidate_press: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """(plays,) each candidate's tie-breaker (:attr:`Rollout.press`)."""
    default_index: int = 0
    """Which candidate is the default knobs."""
    chosen_index: int = 0
    """Which candidate was committed (``u``)."""
    candidate_f1_clean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """With ``noisy_plays``: each candidate's noise-free horizon F1 (``candidate_f1`` is then the mean over
    the noise-free and the noisy plays); empty otherwise."""


class Planner:
    """Receding-horizon search over the prior's knobs on one piece (see the module docstring)."""

    def __init__(self, piece: str | Score | PianoRoll, embodiment: str | Embodiment = "shadow",
                 config: PlannerConfig | None = None, *, scene: Scene | None = None, stretch: float = 1.0,
                 base: PriorConfig | None = None, space: Sequence[Knob] | None = None) -> None:
        self.cfg = config or PlannerConfig()
        self.cfg.check()
        self.embodiment = get_embodiment(embodiment) if isinstance(embodiment, str) else embodiment
        self.piece = piece
        self.engine = RolloutEngine(piece, self.embodiment, scene, stretch, base)
        self.base = self.engine.base
        self.space = tuple(space) if space is not None else SPACES[self.cfg.space]
        self.seeds = [dataclasses.replace(self.base, **REACH_SEED)] if self.cfg.space == "reach" else []
        self.right_space = tuple(k for k in self.space if k.name not in SHARED_KNOBS) if self.cfg.per_hand else ()
        self.u_default = np.concatenate([encode(self.base, self.space), encode(self.base, self.right_space)])
        source = piece if isinstance(piece, str) else None
        self._players = _Players(self.engine, self.cfg.workers, source, stretch)
        self.plays = 0

    @property
    def n_steps(self) -> int:
        return self.engine.env.n_piece_steps

    def close(self) -> None:
        self._players.close()

    def __enter__(self) -> Planner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _decode(self, u: np.ndarray) -> Knobs:
        k = len(self.space)
        main = decode(u[:k], self.base, self.space)
        return main, (decode(u[k:], main, self.right_space) if self.right_space else None)

    def _snap_u(self, u: np.ndarray) -> np.ndarray:
        """Unit coordinates of what is actually played (integer knobs rounded)."""
        main, right = self._decode(u)
        return np.concatenate([encode(main, self.space), encode(right, self.right_space) if right else np.zeros(0)])

    def plan_window(self, snap: Snapshot, warm_u: np.ndarray | None = None) -> WindowChoice:
        """Choose the knobs for the window starting at ``snap`` (``warm_u``: the last window's choice)."""
        cfg = self.cfg
        step = snap.env.step_index
        remaining = self.n_steps - step
        if remaining <= 0:
            raise PlannerError(f"nothing to plan: the piece ends at step {self.n_steps}, the window starts at {step}")
        keep = min(cfg.window, remaining)
        steps = min(cfg.horizon, remaining)
        rng = np.random.default_rng([cfg.seed, step])
        # the default knobs exactly (not their decoded unit coordinates), then the warm start
        us: list[np.ndarray] = [self.u_default]
        configs: list[Knobs] = [(self.base, self.base if self.right_space else None)]
        for seed_cfg in self.seeds:  # always played, after the default
            u = np.concatenate([encode(seed_cfg, self.space), encode(seed_cfg, self.right_space)])
            us.append(u)
            configs.append(self._decode(u))
        if warm_u is not None and not any(np.array_equal(self._snap_u(warm_u), u) for u in us):
            us.insert(0, self._snap_u(warm_u))
            configs.insert(0, self._decode(us[0]))
        rolls, scores, ties = self._play(snap, configs, steps, keep, step)
        i_def = len(us) - 1 - len(self.seeds)
        best = _best(scores, ties)  # first of the maxima: warm start, then default
        budget = cfg.budget
        searched = False
        if cfg.adaptive:
            if scores[best] >= 1.0:
                budget = 0
            elif scores[best] < cfg.hard_f1:
                budget = int(round(budget * cfg.hard_scale))
        n_left = budget - len(us)
        if n_left > 0:
            searched = True
            per_round = [n_left // cfg.iterations + (1 if r < n_left % cfg.iterations else 0)
                         for r in range(cfg.iterations)]
            mu = us[best].copy()
            sigma = np.full(mu.size, cfg.init_std)
            for n in per_round:
                if n <= 0:
                    continue
                new_u = [self._snap_u(np.clip(mu + sigma * rng.standard_normal(mu.size), 0.0, 1.0)) for _ in range(n)]
                if self.right_space and len(new_u) > 1:  # the best left half with the best right half
                    new_u[-1] = self._crossover(us, rolls)
                new_cfg = [self._decode(u) for u in new_u]
                new_rolls, new_scores, new_ties = self._play(snap, new_cfg, steps, keep, step)
                us += new_u
                configs += new_cfg
                rolls += new_rolls
                scores += new_scores
                ties += new_ties
                best = _best(scores, ties)
                if self.right_space:
                    k = len(self.space)
                    hand = np.array([r.hand_f1 for r in rolls])
                    mu = np.concatenate([
                        self._update(np.stack(us)[:, :k], hand[:, 0], np.asarray(ties), mu[:k]),
                        self._update(np.stack(us)[:, k:], hand[:, 1], np.asarray(ties), mu[k:])])
                else:
                    mu = self._update(np.stack(us), np.asarray(scores), np.asarray(ties), mu)
                sigma = sigma * cfg.std_decay
        self.plays += len(us)
        return WindowChoice(step, us[best], configs[best][0], configs[best][1], scores[best], scores[i_def], len(us),
                            searched, rolls[best], candidates=np.stack(us), candidate_f1=np.asarray(scores),
                            candidate_press=np.asarray(ties), default_index=i_def, chosen_index=best,
                            candidate_f1_clean=np.asarray([r.f1 for r in rolls]) if cfg.noisy_plays else np.zeros(0))

    def _play(self, snap: Snapshot, configs: list[Knobs], steps: int, keep: int,
              step: int) -> tuple[list[Rollout], list[float], list[float]]:
        """Play ``configs`` from ``snap``: the noise-free rollouts and each candidate's score and tie-breaker
        (with ``noisy_plays``: the means over the noise-free play and the noisy ones, whose draws depend on
        the window and the play's number only, so every candidate of a window meets the same noise)."""
        rolls = self._players.play(snap, configs, steps, keep)
        f1 = np.array([r.f1 for r in rolls])
        press = np.array([r.press for r in rolls])
        for k in range(1, self.cfg.noisy_plays + 1):
            noisy = self._players.play(snap, configs, steps, keep, (self.cfg.play_noise, (self.cfg.seed, step, k)))
            f1 += [r.f1 for r in noisy]
            press += [r.press for r in noisy]
        n = 1 + self.cfg.noisy_plays
        return rolls, (f1 / n).tolist(), (press / n).tolist()

    def _crossover(self, us: list[np.ndarray], rolls: list[Rollout]) -> np.ndarray:
        k = len(self.space)
        il = min(range(len(rolls)), key=lambda i: (-rolls[i].hand_f1[0], -rolls[i].press, i))
        ir = min(range(len(rolls)), key=lambda i: (-rolls[i].hand_f1[1], -rolls[i].press, i))
        return np.concatenate([us[il][:k], us[ir][k:]])

    def _update(self, us: np.ndarray, scores: np.ndarray, ties: np.ndarray, mu: np.ndarray) -> np.ndarray:
        if self.cfg.method == "mppi":
            w = np.exp((scores + 1e-3 * ties - scores.max()) / self.cfg.mppi_temperature)
            return (w[:, None] * us).sum(axis=0) / w.sum()
        n_elite = max(1, int(round(self.cfg.elite_frac * len(scores))))
        order = np.lexsort((np.arange(len(scores)), -ties, -scores))[:n_elite]
        return us[order].mean(axis=0)

    def run(self, start_step: int = 0, on_window: Callable[[WindowChoice], None] | None = None) -> Plan:
        """Plan the piece from ``start_step`` to its end; returns the :class:`Plan`."""
        n = self.n_steps
        if not 0 <= start_step < n:
            raise PlannerError(f"start step {start_step} outside the piece (0..{n - 1})")
        if n - start_step < self.cfg.window:
            raise PlannerError(f"the piece has {n - start_step} control steps from step {start_step}, "
                               f"shorter than one window ({self.cfg.window}); use a smaller --window")
        t0, c0 = time.perf_counter(), time.process_time()
        plays0 = self.plays
        snap = self.engine.start(start_step)
        windows: list[dict[str, Any]] = []
        actions: list[np.ndarray] = []
        cands: list[WindowChoice] = []
        warm: np.ndarray | None = None
        while snap.env.step_index < n:
            w = self.plan_window(snap, warm)
            warm = w.u
            r = w.rollout
            actions.append(r.actions)
            cands.append(w)
            windows.append({"step": w.step, "steps": int(r.actions.shape[0]), "horizon_f1": w.f1,
                            "default_horizon_f1": w.default_f1, "plays": w.plays, "searched": w.searched,
                            "knobs": knob_values(w.config, self.space),
                            **({"right_knobs": knob_values(w.right, self.right_space)} if w.right is not None else {})})
            if on_window is not None:
                on_window(w)
            snap = r.committed
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        env = self.engine.env
        env.set_state(snap.env)
        metrics = env.episode_metrics()
        active = env.episode_log()[0].copy()
        # the default prior over the same steps, for the per-window gain
        prior_active, prior_metrics = play_prior(self.engine, start_step)
        goal = env.roll.keys[start_step:n]
        for row in windows:
            a, b = row["step"] - start_step, row["step"] - start_step + row["steps"]
            row["f1"] = window_f1(active[a:b], goal[a:b])
            row["prior_f1"] = window_f1(prior_active[a:b], goal[a:b])

        metrics["onset_f1"] = onset_prf(active, env.roll, start_step).f1 if start_step == 0 else math.nan
        prior_metrics["onset_f1"] = onset_prf(prior_active, env.roll).f1 if start_step == 0 else math.nan
        return Plan(
            embodiment=self.embodiment.key, start_step=start_step, config=self.cfg, base=self.base,
            space=self.space, windows=windows, actions=np.concatenate(actions), active=active,
            metrics=metrics, prior_metrics=prior_metrics, plays=self.plays - plays0, wall_s=wall, cpu_s=cpu,
            candidates=candidate_table(cands))


def candidate_table(windows: Sequence[WindowChoice]) -> dict[str, np.ndarray]:
    """Every candidate of every window as flat columns (what ``candidates.npz`` holds): ``window``
    (index), ``step`` (the window's first piece step), ``u`` (unit knob coordinates), ``f1`` (horizon
    F1; with ``noisy_plays`` the robust score, and ``f1_clean`` the noise-free play's), ``press``
    (tie-breaker), ``default`` (the default knobs), ``chosen`` (the committed one)."""
    if not windows:
        return {}
    rows = [len(w.candidate_f1) for w in windows]
    chosen = np.zeros(sum(rows), dtype=bool)
    default = np.zeros(sum(rows), dtype=bool)
    at = 0
    for w, k in zip(windows, rows, strict=True):
        default[at + w.default_index] = True
        chosen[at + w.chosen_index] = True
        at += k
    return {
        "window": np.repeat(np.arange(len(windows), dtype=np.int32), rows),
        "step": np.repeat(np.array([w.step for w in windows], dtype=np.int32), rows),
        "u": np.concatenate([w.candidates for w in windows]).astype(np.float32),
        "f1": np.concatenate([w.candidate_f1 for w in windows]).astype(np.float32),
        "press": np.concatenate([w.candidate_press for w in windows]).astype(np.float32),
        "default": default, "chosen": chosen,
        **({"f1_clean": np.concatenate([w.candidate_f1_clean for w in windows]).astype(np.float32)}
           if all(w.candidate_f1_clean.size == len(w.candidate_f1) for w in windows) and windows[0].candidate_f1.size
           and windows[0].candidate_f1_clean.size else {}),
    }


def play_prior(engine: RolloutEngine, start_step: int = 0) -> tuple[np.ndarray, dict[str, float]]:
    """The base prior alone from ``start_step`` to the end: (active keys per step, episode metrics)."""
    snap = engine.start(start_step)
    engine.play(snap, engine.base, engine.env.n_piece_steps - start_step, 0)
    return engine.env.episode_log()[0].copy(), engine.env.episode_metrics()


# ----------------------------------------------------------------------------------- the plan
@dataclass(eq=False)
class Plan:
    """A planned piece: per-window knobs and F1, the committed actions, whole-piece metrics."""

    embodiment: str
    start_step: int
    config: PlannerConfig
    base: PriorConfig
    space: tuple[Knob, ...]
    windows: list[dict[str, Any]]
    actions: np.ndarray
    active: np.ndarray = field(repr=False)
    metrics: dict[str, float]
    prior_metrics: dict[str, float]
    plays: int
    wall_s: float
    cpu_s: float
    piece: str = ""
    candidates: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    """Every candidate each window played and its score (:func:`candidate_table`); saved as
    ``candidates.npz``: what a student can learn "which knobs matter where" from, beyond the choice."""

    @property
    def f1(self) -> float:
        return float(self.metrics["f1"])

    def summary(self) -> dict[str, Any]:
        """JSON-able summary (everything but the arrays)."""
        n_steps = int(self.metrics["steps"])
        return {
            "piece": self.piece, "embodiment": self.embodiment, "start_step": self.start_step, "steps": n_steps,
            "f1": self.metrics["f1"], "note_step_f1": self.metrics["note_step_f1"],
            "onset_f1": self.metrics.get("onset_f1"), "precision": self.metrics["precision"],
            "recall": self.metrics["recall"], "do_nothing_f1": self.metrics["do_nothing_f1"],
            "prior_f1": self.prior_metrics["f1"], "prior_note_step_f1": self.prior_metrics["note_step_f1"],
            "prior_onset_f1": self.prior_metrics.get("onset_f1"),
            "gain": self.metrics["f1"] - self.prior_metrics["f1"],
            "windows": len(self.windows), "searched_windows": sum(w["searched"] for w in self.windows),
            "plays": self.plays, "wall_s": self.wall_s, "cpu_s": self.cpu_s,
            "cpu_s_per_30s": self.cpu_s * 600.0 / max(n_steps, 1),
            "planner": asdict(self.config),
        }

    def save(self, out: str | Path, plot: bool = False, roll: PianoRoll | None = None) -> dict[str, str]:
        """Write ``plan.json`` (summary, base prior, knob table, windows) and ``actions.npy``; with
        ``plot`` also ``plan.png`` (needs ``roll``). Returns the paths written."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"actions": str(out / PLAN_ACTIONS), "plan": str(out / PLAN_JSON)}
        np.save(out / PLAN_ACTIONS, self.actions.astype(np.float64))
        if self.candidates:
            np.savez_compressed(out / PLAN_CANDIDATES, allow_pickle=False, **self.candidates)
            paths["candidates"] = str(out / PLAN_CANDIDATES)
        if plot:
            if roll is None:
                raise ValueError("plot needs the piece's roll")
            paths["plot"] = str(plot_plan(self, roll, out / PLAN_PNG))
        doc = {"format": PLAN_FORMAT, "kind": "omnipianist-plan", **self.summary(),
               "prior_metrics": self.prior_metrics, "metrics": self.metrics,
               "base_prior": prior_config_to_json(self.base), "space": [asdict(k) for k in self.space],
               "windows": self.windows}
        tmp = out / (PLAN_JSON + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1, default=float))
        os.replace(tmp, out / PLAN_JSON)  # last: its presence means "plan finished"
        return paths


def render_plan(plan: Plan, piece: str | Score | PianoRoll, path: str | Path, stretch: float = 1.0,
                scene: Scene | None = None) -> str:
    """MP4 of the hands playing the plan: its committed actions replayed from its start step (the
    simulation is deterministic, so this is the planned performance frame for frame)."""
    emb = embodiment_from_meta(plan.embodiment)
    env = PianoEnv(piece, emb, EnvConfig(clip_steps=None, random_start=False, stretch=stretch, ot_reward=False),
                   scene=scene, render_mode="rgb_array")
    try:
        env.reset(seed=0, options={"start_step": plan.start_step})
        frames = []
        for a in plan.actions:
            env.step(a)
            frame = env.render()
            assert frame is not None
            frames.append(frame)
        if not np.array_equal(env.episode_log()[0], plan.active):
            raise RuntimeError("replaying the plan's actions did not reproduce its key presses")
    finally:
        env.close()
    return write_video(frames, path, fps=env.metadata["render_fps"])


def plot_plan(plan: Plan, roll: PianoRoll, path: str | Path) -> Path:
    """PNG: the played piano roll against the score (top), per-window F1 of plan and prior (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s0 = plan.start_step
    goal = roll.keys[s0: s0 + plan.active.shape[0]]
    active = plan.active
    t = (s0 + np.arange(goal.shape[0])) * CONTROL_DT_S
    fig, (ax0, ax1) = plt.subplots(2, 1, figsize=(12, 6), dpi=100, sharex=True,
                                   gridspec_kw={"height_ratios": [3, 1.3]})
    img = np.zeros((88, goal.shape[0], 3))
    img[goal.T & active.T] = (0.15, 0.65, 0.2)   # hit
    img[goal.T & ~active.T] = (0.85, 0.2, 0.2)   # missed
    img[~goal.T & active.T] = (0.95, 0.65, 0.1)  # wrong
    img[~goal.T & ~active.T] = (1, 1, 1)
    ax0.imshow(img, aspect="auto", origin="lower", interpolation="nearest",
               extent=(t[0], t[-1] + CONTROL_DT_S, 0, 88))
    rows = np.flatnonzero(goal.any(axis=0) | active.any(axis=0))
    if rows.size:
        ax0.set_ylim(max(rows.min() - 2, 0), min(rows.max() + 3, 88))
    ax0.set_ylabel("key")
    ax0.set_title(f"{plan.piece} ({plan.embodiment}): plan F1 {plan.metrics['f1']:.3f} vs prior "
                  f"{plan.prior_metrics['f1']:.3f} (do nothing {plan.metrics['do_nothing_f1']:.3f})  "
                  "green hit, red missed, orange wrong", fontsize=9)
    ws = np.array([w["step"] for w in plan.windows]) * CONTROL_DT_S
    wd = np.array([w["steps"] for w in plan.windows]) * CONTROL_DT_S
    gain = np.array([w["f1"] - w["prior_f1"] for w in plan.windows])
    ax1.bar(ws, gain, width=wd, align="edge", color=np.where(gain >= 0, "tab:green", "tab:red"))
    ax1.axhline(0, c="k", lw=0.8)
    ax1.set_ylabel("window F1\nplan - prior")
    ax1.set_xlabel("time (s)")
    ax1.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return Path(path)


# ----------------------------------------------------------------------------------- playing a plan back
class PlanExpert:
    """A plan as an expert: the OT/IK prior switching knobs at the plan's window boundaries.

    Closed loop in the prior (it reads the observation), open loop in the knob schedule, counted
    from ``reset`` (the plan's start step). Same interface as the other experts.
    """

    kind = "plan"

    def __init__(self, doc: dict[str, Any], scene: Scene | None = None, source: str = "") -> None:
        if doc.get("kind") != "omnipianist-plan":
            raise ValueError(f"{source}: not an omnipianist plan")
        if doc.get("format") != PLAN_FORMAT:
            raise ValueError(f"{source}: plan format {doc.get('format')}, this code reads {PLAN_FORMAT}")
        self.source = source
        self.meta = doc
        self.embodiment = embodiment_from_meta(doc["embodiment"])
        self.scene = scene if scene is not None else build_scene(self.embodiment)
        if self.scene.embodiment != self.embodiment:
            raise ValueError(f"{source}: plan is for {self.embodiment.key!r}, scene is {self.scene.embodiment.key!r}")
        self.base = prior_config_from_dict(doc["base_prior"])
        fields = {f.name for f in dataclasses.fields(PriorConfig)}
        self.schedule: list[tuple[int, PriorConfig, PriorConfig | None]] = []
        start = int(doc["start_step"])
        for w in doc["windows"]:
            unknown = (set(w["knobs"]) | set(w.get("right_knobs", {}))) - fields
            if unknown:
                raise ValueError(f"{source}: window at step {w['step']} sets unknown knobs {sorted(unknown)}")
            main = dataclasses.replace(self.base, **w["knobs"])
            right = dataclasses.replace(main, **w["right_knobs"]) if "right_knobs" in w else None
            self.schedule.append((int(w["step"]) - start, main, right))

        self.layout = ObservationLayout.for_embodiment(self.embodiment)
        self.prior = OTIKPrior(self.scene, self.base)
        self.reset()

    @property
    def action_dim(self) -> int:
        return self.embodiment.action_dim

    def reset(self) -> None:
        self.prior.reset()
        self._t = 0
        self._next = 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        while self._next < len(self.schedule) and self.schedule[self._next][0] <= self._t:
            self.prior.configure(self.schedule[self._next][1], self.schedule[self._next][2])
            self._next += 1
        self._t += 1
        return self.prior.act(obs)


def load_plan_expert(path: str | Path, scene: Scene | None = None) -> PlanExpert:
    """The plan in directory ``path`` (``plan.json``) as an expert. Raises FileNotFoundError / ValueError."""
    p = Path(path)
    f = p / PLAN_JSON if p.is_dir() else p
    if not f.is_file():
        raise FileNotFoundError(f"{p}: no {PLAN_JSON} (not a finished plan)")
    try:
        doc = json.loads(f.read_text())
    except ValueError as exc:
        raise ValueError(f"{f}: not valid JSON ({exc})") from exc
    return PlanExpert(doc, scene, str(f))


# ----------------------------------------------------------------------------------- labels
class PlannerLabeller:
    """The planner's action at any visited state (RP1M++ relabelling with the planner as the expert).

    :meth:`attach` it to the env the episode runs in. At every window boundary (counted from the
    episode start) it re-plans from the env's current state and its own prior's memory; every state
    is labelled with its prior's action under the knobs chosen there. Its prior runs in lock-step on
    the visited observations, so its memory is that of its own labels (as for the other labellers).
    """

    def __init__(self, planner: Planner) -> None:
        self.planner = planner
        self._warm: np.ndarray | None = None
        self._t = 0
        self.prior = OTIKPrior(planner.engine.scene, planner.base, planner.engine.env.config.lookahead)
        self.embodiment = planner.embodiment
        self.env: PianoEnv | None = None
        self.choices: list[WindowChoice] = []
        self.reset()

    def attach(self, env: PianoEnv) -> None:
        """Label the states of ``env`` (same piece and embodiment as the planner's)."""
        if env.embodiment.key != self.embodiment.key:
            raise ValueError(f"labeller plans for {self.embodiment.key!r}, env is {env.embodiment.key!r}")
        if env.n_piece_steps != self.planner.n_steps or not np.array_equal(env.roll.keys, self.planner.engine.env.roll.keys):
            raise ValueError("labeller's planner and the env play different pieces")
        self.env = env

    def reset(self) -> None:
        self.prior.reset()
        self.prior.configure(self.planner.base)
        self._warm = None
        self._t = 0
        self.choices = []

    def act(self, obs: np.ndarray) -> np.ndarray:
        if self.env is None:
            raise RuntimeError("PlannerLabeller.attach(env) first: it re-plans from the env's state")
        if self._t % self.planner.cfg.window == 0 and self.env.step_index < self.planner.n_steps:
            # plan from the episode's state: a whole-piece env at the same step, this prior's memory
            choice = self.planner.plan_window(Snapshot(self._as_whole_piece(self.env.get_state()), self.prior.state()),
                                              self._warm)
            self._warm = choice.u
            self.prior.configure(choice.config, choice.right)
            self.choices.append(choice)
        self._t += 1
        return self.prior.act(obs)

    def _as_whole_piece(self, s: EnvState) -> EnvState:
        """The planner's env plays from the state's step to the piece's end (clip or not)."""
        return dataclasses.replace(s, end=self.planner.n_steps)


# ----------------------------------------------------------------------------------- helpers
def plan_piece(piece: str, out: str | Path | None = None, embodiment: str = "shadow",
               config: PlannerConfig | None = None, *, action_set: ActionSet = "reduced", forearm_z: bool = False,
               stretch: float = 1.0, start_step: int = 0, plot: bool = False, video: str | None = None,
               show_progress: bool = False) -> dict[str, Any]:
    """Plan ``piece`` and (with ``out``) write the plan folder; returns the plan's summary (+ paths).
    ``video``: also write an MP4 of the hands playing the plan there."""
    emb = get_embodiment(embodiment, action_set, forearm_z)
    with Planner(piece, emb, config, stretch=stretch) as planner:
        bar = progress(total=planner.n_steps - start_step, desc=f"plan {Path(piece).stem}", disable=not show_progress)
        gains: list[float] = []

        def tick(w: WindowChoice) -> None:
            bar.update(w.rollout.actions.shape[0])
            gains.append(w.f1 - w.default_f1)
            bar.set_postfix(window_f1=f"{w.f1:.2f}", gain=f"{np.mean(gains):+.3f}", plays=planner.plays)

        try:
            plan = planner.run(start_step, on_window=tick)
        finally:
            bar.close()
        plan.piece = Path(piece).stem if piece.lower().endswith((".mid", ".midi")) else piece
        out_d = plan.summary()
        if out is not None:
            out_d.update(plan.save(out, plot, load_roll(piece, stretch)))
            out_d["out"] = str(out)
        if video:
            out_d["video"] = render_plan(plan, piece, video, stretch, planner.engine.scene)
        return out_d


@dataclass(frozen=True)
class PlanCommandConfig:
    """``omnipianist plan PIECE``: the piece, where the plan goes, the hands, and PlannerConfig's fields."""

    piece: str
    """built-in piece name or MIDI file"""
    out: str | None = None
    """output folder (None: runs/plan/<piece>)"""
    embodiment: Literal["shadow", "leap"] = "shadow"
    action_set: Literal["reduced", "full"] = "reduced"
    stretch: float = 1.0
    """time stretch of the score"""
    start_step: int = 0
    """plan from this control step"""
    plot: bool = field(default=False, metadata={"action": "store_true"})
    """write plan.png: played roll vs score, per-window gain"""
    video: str | None = field(default=None, metadata={"metavar": "OUT.mp4"})
    """MP4 of the hands playing the plan"""
    planner: PlannerConfig = field(default_factory=PlannerConfig, metadata={"prefix": ""})
    show_progress: bool = field(default=True, metadata={"cli": False})


@dataclass(frozen=True, kw_only=True)
class PlanResult:
    """``omnipianist plan``'s result: the plan's summary (:meth:`Plan.summary`'s keys), then the files written
    (``candidates`` when any window was played, ``plot`` with ``--plot``, ``video`` with ``--video``; left
    out of the JSON otherwise)."""

    piece: str
    embodiment: str
    start_step: int
    steps: int
    f1: float
    note_step_f1: float
    onset_f1: float | None
    precision: float
    recall: float
    do_nothing_f1: float
    prior_f1: float
    prior_note_step_f1: float
    prior_onset_f1: float | None
    gain: float
    windows: int
    searched_windows: int
    plays: int
    wall_s: float
    cpu_s: float
    cpu_s_per_30s: float
    planner: dict[str, Any]
    """The PlannerConfig's fields."""
    actions: str
    plan: str
    candidates: str | None = field(default=None, metadata={"omit_none": True})
    """``candidates.npz``: every candidate of every window and its score."""
    plot: str | None = field(default=None, metadata={"omit_none": True})
    out: str
    video: str | None = field(default=None, metadata={"omit_none": True})


def run_plan_command(cfg: PlanCommandConfig) -> PlanResult:
    """:func:`plan_piece` with the command's defaults (the output folder: runs/plan/<piece>)."""
    out = cfg.out if cfg.out is not None else str(Path("runs") / "plan" / Path(cfg.piece).stem)
    return PlanResult(**plan_piece(cfg.piece, out, cfg.embodiment, cfg.planner, action_set=cfg.action_set,
                                   stretch=cfg.stretch, start_step=cfg.start_step, plot=cfg.plot, video=cfg.video,
                                   show_progress=cfg.show_progress))


def format_plan(r: PlanResult) -> str:
    return (f"{r.piece} ({r.embodiment}): plan F1 {r.f1:.3f} vs prior {r.prior_f1:.3f} "
            f"({r.gain:+.3f}; note steps {r.note_step_f1:.3f} vs {r.prior_note_step_f1:.3f}; do nothing "
            f"{r.do_nothing_f1:.3f}); {r.windows} windows ({r.searched_windows} searched), {r.plays} "
            f"candidate plays, {r.cpu_s:.1f} CPU-s ({r.cpu_s_per_30s:.1f} per 30 s of music)\n"
            f"  wrote {r.plan}" + (f", {r.plot}" if r.plot is not None else "")
            + (f", {r.video}" if r.video is not None else ""))


PLAN: Command[PlanCommandConfig, PlanResult] = Command(
    "plan", "the expert: receding-horizon search over the prior's knobs on one piece", PlanCommandConfig,
    run_plan_command, format_plan, positionals=("piece",))
