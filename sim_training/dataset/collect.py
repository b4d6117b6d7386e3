"""Collect episodes into a store: expert/prior rollouts with action noise (RP1M) and relabelling (RP1M++).

Two modes, one episode loop (:func:`collect_episode`, whole piece from step 0, no random start):

* ``rollout``: ``label = labeller.act(obs)``, ``executed = clip(label + N(0, noise_std), -1, 1)``.
* ``relabel``: ``executed = student.act(obs)``, ``label = labeller.act(obs)`` at every visited state.

Stateful labellers (the prior and experts keep a carriage plan, the fingering held from the last
step and the IK warm start) are run in lock-step on the visited observations: ``act`` is called on
every state the trajectory visits, so their memory is that of their OWN previous labels, not of
the executed actions. That keeps the label at state t what the labeller would command at t after
having commanded its labels for t-1, t-2 ... (its memory is a plan, not a measurement: it reads
the measured joints and fingertips from the observation). The ``prior_action`` column comes from a
separate OT/IK prior run the same way (the labeller itself when the labeller is the prior).

:func:`collect` runs many (piece, labeller) tasks, resumably: an episode whose key (piece, seed,
mode, round, label source, noise) is already in the store is skipped. With ``ray=True`` episodes are
rolled out by Ray actors (local Ray on 127.0.0.1) and returned as arrays; the driver is the only
writer. :func:`relabel_rounds` alternates student training (``student_factory``) and relabelling
until each piece's student F1 is within ``tolerance`` of its labeller's.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from omnipianist.cliutil import progress
from sim_training.dataset.labellers import (
    EmbodimentRef,
    LabellerSpec,
    PieceRef,
    Policy,
    cached_scene,
    prior_config_dict,
    prior_config_from_dict,
)
from sim_training.dataset.schema import Episode, EpisodeMeta, Mode, StoreSchema
from sim_training.dataset.store import DatasetReader, DatasetWriter, episode_key
from sim_training.env.piano_env import EnvConfig, PianoEnv
from sim_training.experts.planner import PlannerLabeller
from sim_training.fingering.prior import OTIKPrior
from sim_training.models.embodiment import Embodiment
from sim_training.models.scene import Scene

StudentBuilder = Callable[[], Policy]
"""Zero-argument, picklable callable returning a fresh student (run in each worker)."""
StudentFactory = Callable[[int, str], "Policy | StudentBuilder"]
"""``(round, store_url) -> student or student builder``, called on the driver before each relabel
round (the imitation trainer trains on the store here). With Ray it must return a builder."""


@dataclass(frozen=True)
class CollectConfig:
    """One collection run (flags of ``omnipianist collect``)."""

    mode: Mode = "rollout"
    episodes_per_piece: int = 1
    """Episodes per piece and noise level (noise 0 is deterministic: one episode only)."""
    noise_std: tuple[float, ...] = (0.0, 0.05)
    """Action-noise levels of the rollouts (each one gets ``episodes_per_piece`` episodes)."""
    seed: int = 0
    """Seed of the first episode of each piece; episode e uses seed + e."""
    max_steps: int | None = None
    """Cap on episode length in control steps (None: the whole piece)."""
    ray: bool = False
    workers: int = 2
    """Ray actors (one CPU each)."""
    rounds: int = 3
    """Relabel: student rounds at most."""
    tolerance: float = 0.02
    """Relabel: a piece is done once its student's F1 >= labeller F1 - tolerance."""
    prior_config: str = ""
    """JSON of PriorConfig fields for the prior labeller and the prior_action column ('' = defaults)."""
    show_progress: bool = True

    def __post_init__(self) -> None:
        if self.mode not in ("rollout", "relabel"):
            raise ValueError(f"mode {self.mode!r}: expected 'rollout' or 'relabel'")
        if self.episodes_per_piece < 1:
            raise ValueError(f"episodes_per_piece must be >= 1, got {self.episodes_per_piece}")
        if any(n < 0 or not math.isfinite(n) for n in self.noise_std) or not self.noise_std:
            raise ValueError(f"noise_std levels must be finite and >= 0, got {self.noise_std}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")


_DEFAULT = CollectConfig()
_PIECES, _EPISODES, _RELABEL, _EXECUTION = "pieces for the prior labeller", "episodes", "relabel", "execution"


@dataclass(frozen=True)
class CollectCommandConfig:
    """``omnipianist collect SOURCE [SOURCE ...] --out STORE`` (see :mod:`sim_training.dataset.cli`); the episode
    defaults are :class:`CollectConfig`'s."""

    sources: tuple[str, ...] = field(metadata={
        "metavar": "EXPERTS_DIR_OR_prior",
        "help": "directory of trained experts (one subdirectory each), 'prior' for the OT/IK prior, or 'planner' "
                "for the receding-horizon planner (the expert, re-planning from every state)"})
    out: str = field(metadata={"help": "store: a directory (created) or an fsspec URL"})
    mode: Mode = _DEFAULT.mode
    """rollout: labeller plays with action noise (RP1M); relabel: a student plays and the labeller labels every
    visited state (RP1M++)"""
    manifest: Path | None = field(default=None, metadata={"group": _PIECES})
    """corpus manifest.json (default: the shipped corpus)"""
    split: str = field(default="train", metadata={"group": _PIECES})
    """corpus split"""
    max_pieces: int | None = field(default=None, metadata={"group": _PIECES})
    """at most this many corpus pieces"""
    pieces: tuple[str, ...] | None = field(default=None, metadata={"group": _PIECES})
    """explicit pieces (built-in names, corpus ids, MIDI files) instead of the split; with experts: only the experts
    of these pieces"""
    skip_pieces_with_experts: bool = field(default=True, metadata={"group": _PIECES})
    """the prior does not label pieces an expert labels"""
    embodiment: Literal["shadow", "leap"] = field(default="shadow", metadata={"group": _PIECES})
    action_set: Literal["reduced", "full"] = field(default="reduced", metadata={"group": _PIECES})
    forearm_z: bool = field(default=False, metadata={"group": _PIECES, "action": "store_true"})
    """vertical forearm slide"""
    prior_config: Path | None = field(default=None, metadata={"group": _PIECES})
    """JSON object of PriorConfig fields (prior labeller and the prior_action column)"""
    planner_config: str = field(default="", metadata={"group": _PIECES})
    """planner labeller: JSON object of PlannerConfig fields, e.g. '{"budget": 16}'"""
    episodes_per_piece: int = field(default=_DEFAULT.episodes_per_piece, metadata={"group": _EPISODES})
    """episodes per piece and noise level (noise 0: one)"""
    noise_std: tuple[float, ...] = field(default=_DEFAULT.noise_std, metadata={"group": _EPISODES})
    """rollout action-noise levels"""
    seed: int = field(default=_DEFAULT.seed, metadata={"group": _EPISODES})
    max_steps: int | None = field(default=_DEFAULT.max_steps, metadata={"group": _EPISODES})
    """cap on episode length in steps"""
    rounds: int = field(default=_DEFAULT.rounds, metadata={"group": _RELABEL})
    """student rounds at most"""
    tolerance: float = field(default=_DEFAULT.tolerance, metadata={"group": _RELABEL})
    """stop a piece when student F1 >= labeller F1 - tolerance"""
    student: str = field(default="prior", metadata={"group": _RELABEL})
    """'prior' (the OT/IK prior with --student-noise-std noise: a plumbing stand-in) or 'module:function',
    function(round, store_url) -> policy or picklable builder"""
    student_noise_std: float = field(default=0.1, metadata={"group": _RELABEL})
    ray: bool = field(default=False, metadata={"group": _EXECUTION, "action": "store_true"})
    """roll out on local Ray actors (the driver writes)"""
    workers: int = field(default=_DEFAULT.workers, metadata={"group": _EXECUTION})
    """Ray actors"""
    card: bool = field(default=True, metadata={"group": _EXECUTION, "flags": ("--no-card",), "action": "store_false",
                                               "help": "do not write <store>.CARD.md"})
    show_progress: bool = field(default=True, metadata={"cli": False})


@dataclass(frozen=True)
class CollectTask:
    """A piece and who labels it."""

    piece: PieceRef
    labeller: LabellerSpec


@dataclass(frozen=True)
class EpisodeJob:
    """One episode to collect."""

    task: CollectTask
    mode: Mode
    noise_std: float
    seed: int
    round: int = 0

    @property
    def key(self) -> tuple[str, int, str, int, str, float]:
        return episode_key(self.task.piece.piece_id, self.seed, self.mode, self.round,
                           self.task.labeller.label_source(self.mode), self.noise_std)


# ----------------------------------------------------------------------------------- one episode
def collect_episode(
    piece: str | PieceRef,
    labeller: Policy,
    embodiment: Embodiment,
    mode: Mode = "rollout",
    noise_std: float = 0.0,
    seed: int = 0,
    student: Policy | None = None,
    *,
    scene: Scene | None = None,
    prior: OTIKPrior | None = None,
    label_source: str | None = None,
    labeller_name: str = "",
    labeller_f1: float = math.nan,
    round_: int = 0,
    max_steps: int | None = None,
) -> Episode:
    """Play one whole piece (from step 0) and return every step's arrays plus the episode's meta.

    ``labeller`` labels every visited state; ``prior`` gives the ``prior_action`` column (default: the
    labeller when it is an OTIKPrior, else a fresh default OTIKPrior). Rollout mode executes the label
    plus N(0, ``noise_std``) noise (seeded by ``seed`` and the level); relabel mode executes ``student.act(obs)``.
    ``label_source`` defaults to ``prior`` for an OTIKPrior labeller, else ``expert`` /
    ``expert-relabel``. F1 in the meta is that of the executed trajectory.
    """
    if mode not in ("rollout", "relabel"):
        raise ValueError(f"mode {mode!r}: expected 'rollout' or 'relabel'")
    if mode == "relabel" and student is None:
        raise ValueError("relabel mode needs a student policy (the states it visits get labelled)")
    ref = piece if isinstance(piece, PieceRef) else PieceRef(piece, piece)
    sc = scene if scene is not None else cached_scene(EmbodimentRef.of(embodiment))
    lab_emb = getattr(labeller, "embodiment", None)
    if isinstance(lab_emb, Embodiment) and lab_emb.key != embodiment.key:
        raise ValueError(f"labeller {labeller_name or type(labeller).__name__} is for {lab_emb.key!r}, "
                         f"episode is for {embodiment.key!r}")
    is_prior = isinstance(labeller, OTIKPrior)
    if prior is None:
        prior = labeller if isinstance(labeller, OTIKPrior) else OTIKPrior(sc)
    separate_prior = prior is not labeller
    if label_source is None:
        label_source = "prior" if is_prior else ("expert-relabel" if mode == "relabel" else "expert")

    env = PianoEnv(ref.source, embodiment, EnvConfig(clip_steps=max_steps, random_start=False), scene=sc)
    attach = getattr(labeller, "attach", None)
    if attach is not None:  # labellers that plan from the simulator's state (the planner)
        attach(env)
    obs, info = env.reset(seed=seed)
    labeller.reset()
    if separate_prior:
        prior.reset()
    if student is not None:
        student.reset()
    rng = np.random.default_rng([seed, int(round(noise_std * 1e6))])  # independent noise per level
    n, a_dim = int(info["clip_steps"]), embodiment.action_dim
    obs_buf = np.zeros((n, obs.size), dtype=np.float32)
    label_buf, exec_buf, prior_buf = (np.zeros((n, a_dim), dtype=np.float32) for _ in range(3))
    reward_buf = np.zeros(n, dtype=np.float32)
    t = 0
    while t < n:
        label = np.asarray(labeller.act(obs), dtype=np.float64)
        prior_a = label if not separate_prior else np.asarray(prior.act(obs), dtype=np.float64)
        if mode == "rollout":
            executed = np.clip(label + rng.normal(0.0, noise_std, a_dim), -1.0, 1.0) if noise_std > 0 else label
        else:
            assert student is not None
            executed = np.clip(np.asarray(student.act(obs), dtype=np.float64), -1.0, 1.0)
        obs_buf[t], label_buf[t], exec_buf[t], prior_buf[t] = obs, label, executed, prior_a
        obs, reward, terminated, truncated, _ = env.step(executed)
        reward_buf[t] = reward
        t += 1
        if terminated or truncated:
            break
    m = env.episode_metrics()
    if mode == "rollout" and noise_std == 0 and math.isnan(labeller_f1):
        labeller_f1 = float(m["f1"])  # the labeller played alone: this IS its F1 here
    meta = EpisodeMeta(
        piece_id=ref.piece_id, embodiment=embodiment.key, seed=int(seed), f1=float(m["f1"]),
        note_step_f1=float(m["note_step_f1"]), do_nothing_f1=float(m["do_nothing_f1"]), label_source=label_source,
        mode=mode, round=int(round_), noise_std=float(noise_std) if mode == "rollout" else 0.0,
        labeller=labeller_name, labeller_f1=float(labeller_f1),
    )
    env.close()
    return Episode(obs_buf[:t], label_buf[:t], exec_buf[:t], prior_buf[:t], reward_buf[:t], meta)


# ----------------------------------------------------------------------------------- workers
class EpisodeRunner:
    """Builds and caches labellers / priors / students in one process and runs jobs (also a Ray actor)."""

    def __init__(self, prior_config: str = "", max_steps: int | None = None) -> None:
        self.prior_config = prior_config
        self.max_steps = max_steps
        self._labellers: dict[LabellerSpec, Policy] = {}
        self._priors: dict[EmbodimentRef, OTIKPrior] = {}
        self._student: tuple[int, Policy] | None = None
        self._planner: tuple[tuple[LabellerSpec, PieceRef], PlannerLabeller] | None = None

    def run(self, job: EpisodeJob, student: Policy | StudentBuilder | None = None) -> Episode:
        spec = job.task.labeller
        emb = spec.embodiment
        labeller: Policy
        if spec.kind == "planner":  # one planner per piece: keep the last one only
            if self._planner is None or self._planner[0] != (spec, job.task.piece):
                if self._planner is not None:
                    self._planner[1].planner.close()
                self._planner = ((spec, job.task.piece), spec.build_planner(job.task.piece, cached_scene(emb)))
            labeller = self._planner[1]
        else:
            if spec not in self._labellers:
                self._labellers[spec] = spec.build()
            labeller = self._labellers[spec]
        prior: OTIKPrior
        if spec.kind == "prior" and spec.prior_config == self.prior_config and isinstance(labeller, OTIKPrior):
            prior = labeller
        else:
            if emb not in self._priors:
                cfg = prior_config_from_dict(json.loads(self.prior_config or "{}"))
                self._priors[emb] = OTIKPrior(cached_scene(emb), cfg)
            prior = self._priors[emb]
        pol: Policy | None = None
        if job.mode == "relabel":
            pol = self._student_for(job.round, student)
        return collect_episode(
            job.task.piece, labeller, emb.get(), job.mode, job.noise_std, job.seed, pol,
            scene=cached_scene(emb), prior=prior, label_source=spec.label_source(job.mode), labeller_name=spec.name,
            labeller_f1=spec.f1, round_=job.round, max_steps=self.max_steps)

    def _student_for(self, round_: int, student: Policy | StudentBuilder | None) -> Policy:
        if student is None:
            raise ValueError("relabel job without a student")
        if isinstance(student, Policy):
            return student
        if self._student is None or self._student[0] != round_:
            self._student = (round_, student())
        return self._student[1]


def _ray_init(workers: int) -> bool:
    """Start a private local Ray with every socket on 127.0.0.1 (the experts' fan-out does the same,
    see :func:`sim_training.experts.fanout.init_local_ray`), unless Ray is running already.
    Returns True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    try:  # lazy: optional, a plain ray.init without it
        from sim_training.experts.fanout import init_local_ray
    except ImportError:  # pragma: no cover - fallback if the experts' fan-out is absent
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(num_cpus=workers, include_dashboard=False, _node_ip_address="127.0.0.1", configure_logging=False)
    else:
        init_local_ray(workers)
    return True


def run_jobs(writer: DatasetWriter, jobs: Sequence[EpisodeJob], config: CollectConfig,
             student: Policy | StudentBuilder | None = None, desc: str = "collect") -> list[EpisodeMeta]:
    """Run ``jobs`` (in-process, or on Ray actors) and append each finished episode; returns their metas.

    The driver appends episodes as they finish (any order with Ray): a crash loses only episodes in flight.
    """
    out: list[EpisodeMeta] = []
    if not jobs:
        return out
    bar = progress(total=len(jobs), desc=desc, disable=not config.show_progress)
    t0, steps = time.perf_counter(), 0

    def add(ep: Episode) -> None:
        nonlocal steps
        writer.append(ep)
        out.append(ep.meta)
        steps += ep.n_steps
        bar.update(1)
        bar.set_postfix(steps_per_s=f"{steps / max(time.perf_counter() - t0, 1e-9):.0f}", f1=f"{ep.meta.f1:.3f}")

    try:
        if not config.ray:
            runner = EpisodeRunner(config.prior_config, config.max_steps)
            for job in jobs:
                add(runner.run(job, student))
            return out
        if student is not None and isinstance(student, Policy):
            raise ValueError("with Ray, the student must come as a picklable builder (a zero-argument callable)")
        import ray

        started = _ray_init(config.workers)
        try:
            actor_cls = ray.remote(num_cpus=1)(EpisodeRunner)
            n_actors = min(config.workers, len(jobs))
            actors = [actor_cls.remote(config.prior_config, config.max_steps) for _ in range(n_actors)]
            queue = list(jobs)
            pending: dict[Any, Any] = {}

            def submit(actor: Any) -> None:
                if queue:
                    pending[actor.run.remote(queue.pop(0), student)] = actor

            for actor in actors:  # two in flight per actor keeps them busy while the driver writes
                submit(actor)
                submit(actor)
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                actor = pending.pop(done[0])
                add(ray.get(done[0]))
                submit(actor)
        finally:
            if started:
                ray.shutdown()
        return out
    finally:
        bar.close()


# ----------------------------------------------------------------------------------- planning
def rollout_jobs(tasks: Iterable[CollectTask], config: CollectConfig) -> list[EpisodeJob]:
    """Every rollout episode of ``tasks``: each noise level x ``episodes_per_piece`` seeds (noise 0: one)."""
    jobs: dict[tuple[str, int, str, int, str, float], EpisodeJob] = {}
    for task in tasks:
        for noise in config.noise_std:
            n = 1 if noise == 0 else config.episodes_per_piece
            for e in range(n):
                job = EpisodeJob(task, "rollout", float(noise), config.seed + e, 0)
                jobs.setdefault(job.key, job)  # a piece listed twice is collected once
    return list(jobs.values())


def _schema_for(tasks: Sequence[CollectTask], config: CollectConfig) -> StoreSchema:
    embs = sorted({t.labeller.embodiment.key for t in tasks})
    if len(embs) != 1:
        raise ValueError(f"tasks mix embodiments {embs}; one store per embodiment")
    prior_cfg = prior_config_dict(prior_config_from_dict(json.loads(config.prior_config or "{}")))
    return StoreSchema.for_embodiment(tasks[0].labeller.embodiment.get(), prior_config=prior_cfg)


@dataclass(frozen=True, kw_only=True)
class CollectResult:
    """What :func:`collect` did (``omnipianist collect --json``'s keys but ``notes`` and ``card``); ``rounds``,
    ``pieces_converged`` and ``reference_f1`` in relabel mode only (left out of the JSON otherwise)."""

    store: str
    mode: Mode
    pieces: int
    episodes_added: int
    steps_added: int
    episodes_skipped: int
    n_episodes: int
    """The store's, after this run."""
    n_steps: int
    wall_s: float
    steps_per_s: float
    episodes: int
    """Episodes this run wrote (= ``episodes_added``), then counted by label source."""
    episodes_by_label_source: dict[str, int]
    f1_mean: float | None
    do_nothing_f1_mean: float | None
    rounds: list[dict[str, Any]] | None = field(default=None, metadata={"omit_none": True})
    """Per relabel round: round, pieces, student_f1_mean, labeller_f1_mean, pieces_done."""
    pieces_converged: int | None = field(default=None, metadata={"omit_none": True})
    reference_f1: dict[str, float] | None = field(default=None, metadata={"omit_none": True})


@dataclass(frozen=True)
class RelabelResult:
    """What :func:`relabel_rounds` wrote and measured."""

    metas: list[EpisodeMeta]
    skipped: int
    rounds: list[dict[str, Any]]
    pieces_converged: int
    reference_f1: dict[str, float]


def collect(store_url: str | os.PathLike[str], tasks: Sequence[CollectTask], config: CollectConfig, *,
            student_factory: StudentFactory | None = None, command: str = "") -> CollectResult:
    """Collect every episode of ``tasks`` that the store does not hold yet; returns what it did.

    Rollout mode: :func:`rollout_jobs`. Relabel mode: :func:`relabel_rounds` (``student_factory``
    required). The run (command, config, counts, times) is appended to the store's ``collect_runs``.
    """
    if not tasks:
        raise ValueError("nothing to collect: no tasks (pieces x labellers)")
    t0 = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    with DatasetWriter(store_url, _schema_for(tasks, config)) as writer:
        eps0, steps0 = writer.n_episodes, writer.n_steps
        rel: RelabelResult | None = None
        if config.mode == "rollout":
            all_jobs = rollout_jobs(tasks, config)
            have = DatasetReader(store_url).episode_keys() if writer.n_episodes else set()
            jobs = [j for j in all_jobs if j.key not in have]
            metas = run_jobs(writer, jobs, config, desc=f"rollout ({len(tasks)} pieces)")
            skipped = len(all_jobs) - len(jobs)
        else:
            if student_factory is None:
                raise ValueError("relabel mode needs a student_factory")
            rel = relabel_rounds(writer, tasks, config, student_factory)
            metas, skipped = rel.metas, rel.skipped
        wall = time.perf_counter() - t0
        steps = writer.n_steps - steps0
        by_source: dict[str, int] = {}
        for m in metas:
            by_source[m.label_source] = by_source.get(m.label_source, 0) + 1
        f1 = [m.f1 for m in metas]
        result = CollectResult(
            store=os.fspath(store_url), mode=config.mode, pieces=len({t.piece.piece_id for t in tasks}),
            episodes_added=writer.n_episodes - eps0, steps_added=steps, episodes_skipped=skipped,
            n_episodes=writer.n_episodes, n_steps=writer.n_steps, wall_s=wall,
            steps_per_s=steps / wall if wall > 0 else 0.0,
            episodes=len(metas), episodes_by_label_source=by_source, f1_mean=float(np.mean(f1)) if f1 else None,
            do_nothing_f1_mean=float(np.mean([m.do_nothing_f1 for m in metas])) if metas else None,
            rounds=rel.rounds if rel is not None else None,
            pieces_converged=rel.pieces_converged if rel is not None else None,
            reference_f1=rel.reference_f1 if rel is not None else None,
        )
        writer.record_run({"command": command or " ".join(sys.argv), "started": started,
                           "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                           "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
                           "episodes_added": result.episodes_added, "steps_added": steps, "wall_s": round(wall, 2)})
    return result


# ----------------------------------------------------------------------------------- relabel loop
@dataclass
class _TaskState:
    task: CollectTask
    ref_f1: float = math.nan
    student_f1: list[float] = field(default_factory=list)
    done: bool = False


def _mean_f1(reader: DatasetReader, **where: Any) -> float:
    idx = reader.select(**where)
    return float(np.mean(reader.meta["f1"][idx])) if idx.size else math.nan


def relabel_rounds(writer: DatasetWriter, tasks: Sequence[CollectTask], config: CollectConfig,
                   student_factory: StudentFactory) -> RelabelResult:
    """RP1M++ / DAgger loop; resumable (the store is the state).

    0. Each labeller's reference F1 on its piece: its noise-free rollout (round 0), collected if absent.
    1. For round r = 1 .. ``config.rounds``: pieces not yet done get ``episodes_per_piece`` relabel
       episodes with the student ``student_factory(r, store_url)``; a piece is done once the mean F1
       of its round-r student episodes >= reference F1 - ``config.tolerance``.
    Returns per-round student F1s, reference F1s, the metas added and the episodes skipped.
    """
    url = writer.url
    states = [_TaskState(t) for t in tasks]
    metas: list[EpisodeMeta] = []
    skipped = 0

    def reader() -> DatasetReader:
        return DatasetReader(url)

    ref_jobs = [EpisodeJob(s.task, "rollout", 0.0, config.seed, 0) for s in states]
    have = reader().episode_keys() if writer.n_episodes else set()
    todo = [j for j in ref_jobs if j.key not in have]
    skipped += len(ref_jobs) - len(todo)
    metas += run_jobs(writer, todo, config, desc="reference rollouts")
    r = reader()
    for s in states:
        pid, src = s.task.piece.piece_id, s.task.labeller.label_source("rollout")
        s.ref_f1 = _mean_f1(r, piece_id=pid, label_source=src, mode="rollout", noise_std=0.0)

    rounds_log: list[dict[str, Any]] = []
    for rnd in range(1, config.rounds + 1):
        active = [s for s in states if not s.done]
        if not active:
            break
        jobs = [EpisodeJob(replace(s.task, labeller=replace(s.task.labeller, f1=s.ref_f1)), "relabel", 0.0,
                           config.seed + e, rnd)
                for s in active for e in range(config.episodes_per_piece)]
        have = reader().episode_keys()
        todo = [j for j in jobs if j.key not in have]
        skipped += len(jobs) - len(todo)
        if todo:
            student = student_factory(rnd, url)
            metas += run_jobs(writer, todo, config, student, desc=f"relabel round {rnd}")
        r = reader()
        for s in active:
            pid, src = s.task.piece.piece_id, s.task.labeller.label_source("relabel")
            f1 = _mean_f1(r, piece_id=pid, label_source=src, mode="relabel", round=rnd)
            s.student_f1.append(f1)
            s.done = bool(f1 >= s.ref_f1 - config.tolerance)
        rounds_log.append({"round": rnd, "pieces": len(active),
                           "student_f1_mean": float(np.nanmean([s.student_f1[-1] for s in active])),
                           "labeller_f1_mean": float(np.nanmean([s.ref_f1 for s in active])),
                           "pieces_done": sum(s.done for s in states)})
    return RelabelResult(metas=metas, skipped=skipped, rounds=rounds_log, pieces_converged=sum(s.done for s in states),
                         reference_f1={s.task.piece.piece_id: s.ref_f1 for s in states})
