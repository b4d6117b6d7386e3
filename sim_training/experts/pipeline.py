"""One expert for one piece: the receding-horizon planner (default), or per-piece search + residual DroQ.

``method="planner"`` (the default expert, :mod:`sim_training.experts.planner`): plan the whole
piece, write ``plan.json`` / ``actions.npy`` / ``candidates.npz`` / ``plan.png`` and ``expert.json``
(``kind: "plan"``).
Measured on two cores the planner beats per-piece CEM and residual DroQ on the same pieces
(``omnipianist bench expert``); the older method stays available as ``method="search"``:

:func:`train_piece_expert` with ``method="search"`` runs

1. **search** (:mod:`sim_training.experts.search`) for ``search_frac * minutes``: writes
   ``best_prior.json`` (+ ``search.json``, ``search.png``) in ``out_dir``; skipped when
   ``best_prior.json`` is already there (a finished search);
2. **residual** (:func:`sim_training.experts.train.train_expert`, ``use_prior=True``, the searched
   PriorConfig) for the rest, in ``out_dir/residual`` (it resumes itself from ``last.pt``).

The expert kept is whichever played the piece better: the residual's best checkpoint when its
evaluated F1 beat the searched prior's, else the searched prior alone. ``expert.json`` records the
choice (``kind``: ``"residual"`` or ``"prior"``) beside the default prior's F1, the searched F1,
the expert's F1, the do-nothing F1, env steps, updates and wall time per stage.
:func:`load_expert` turns the folder back into a controller with ``reset()`` / ``act(obs)`` in
both cases.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from sim_training.constants import LOOKAHEAD_STEPS
from sim_training.models.embodiment import ActionSet, get_embodiment
from sim_training.music.corpus.manifest import portable_piece

if TYPE_CHECKING:
    from sim_training.experts.planner import PlanExpert
    from sim_training.experts.policy import ExpertPolicy
    from sim_training.fingering.prior import PriorConfig
    from sim_training.models.scene import Scene

EXPERT_JSON = "expert.json"
RESIDUAL_DIR = "residual"


class Expert(Protocol):
    """What :func:`load_expert` returns: a stateful controller in the env's action space."""

    def reset(self) -> None: ...

    def act(self, obs: np.ndarray) -> np.ndarray: ...


class PriorExpert:
    """The searched OT/IK prior alone, with :class:`~sim_training.experts.policy.ExpertPolicy`'s interface."""

    kind = "prior"

    def __init__(self, config: PriorConfig, embodiment: str = "shadow", action_set: ActionSet = "reduced",
                 forearm_z: bool = False, lookahead: int | None = None, scene: Scene | None = None,
                 source: str = "") -> None:
        from sim_training.env.observation import ObservationLayout
        from sim_training.fingering.prior import OTIKPrior
        from sim_training.models.scene import build_scene

        self.source = source
        self.config = config
        self.embodiment = get_embodiment(embodiment, action_set, forearm_z)
        self.scene = scene if scene is not None else build_scene(self.embodiment)
        if self.scene.embodiment != self.embodiment:
            raise ValueError(f"{source}: expert is for {self.embodiment.key!r}, scene is {self.scene.embodiment.key!r}")
        lookahead = LOOKAHEAD_STEPS if lookahead is None else lookahead
        self.layout = ObservationLayout.for_embodiment(self.embodiment, lookahead)
        self.prior = OTIKPrior(self.scene, config, lookahead)

    @property
    def action_dim(self) -> int:
        return self.embodiment.action_dim

    def reset(self) -> None:
        """Call at the start of every episode (the prior is stateful)."""
        self.prior.reset()

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Env observation -> action in [-1, 1]."""
        return self.prior.act(obs)


def load_expert(path: str | Path, scene: Scene | None = None) -> ExpertPolicy | PriorExpert | PlanExpert:
    """The expert of a :func:`train_piece_expert` folder: a plan, the residual policy or the searched
    prior (a bare ``omnipianist plan`` folder, with ``plan.json`` only, loads as its plan).

    Raises FileNotFoundError when neither ``expert.json`` nor ``plan.json`` is there, ValueError for
    an unknown kind or a malformed file.
    """
    from sim_training.experts.planner import PLAN_JSON, load_plan_expert
    from sim_training.experts.policy import ExpertPolicy
    from sim_training.experts.search import load_prior_config

    path = Path(path)
    meta_path = path / EXPERT_JSON
    if not meta_path.is_file():
        if (path / PLAN_JSON).is_file():
            return load_plan_expert(path, scene)
        raise FileNotFoundError(f"{path}: no {EXPERT_JSON} or {PLAN_JSON} (not a finished expert folder)")
    try:
        meta = json.loads(meta_path.read_text())
    except ValueError as exc:
        raise ValueError(f"{meta_path}: not valid JSON ({exc})") from exc
    kind = meta.get("kind")
    if kind == "plan":
        return load_plan_expert(path / meta.get("plan", PLAN_JSON), scene)
    if kind == "residual":
        return ExpertPolicy.load(path / meta.get("residual_dir", RESIDUAL_DIR), scene=scene)
    if kind == "prior":
        return PriorExpert(load_prior_config(path / meta.get("best_prior", "best_prior.json")),
                           meta["embodiment"], meta.get("action_set", "reduced"), bool(meta.get("forearm_z", False)),
                           int(meta.get("lookahead", 0)) or None, scene, str(meta_path))
    raise ValueError(f"{meta_path}: unknown expert kind {kind!r} (expected 'plan', 'residual' or 'prior')")


class ActingExpert:
    """An expert (a folder, or one already loaded) with the interface ``evaluate_policy`` plays
    (``meta``, ``source``, ``embodiment``); ``prior`` is the expert's own OT/IK prior."""

    def __init__(self, expert: str | Path | ExpertPolicy | PriorExpert | PlanExpert) -> None:
        if isinstance(expert, str | Path):
            self.expert = load_expert(expert)
            self.source = str(expert)
        else:
            self.expert = expert
            self.source = str(getattr(expert, "source", ""))
        self.prior = self.expert.prior
        self.meta = {"observation_layout": self.expert.layout.to_dict(), "kind": getattr(self.expert, "kind", "residual")}

    @property
    def embodiment(self) -> Any:
        return self.expert.embodiment

    def reset(self) -> None:
        self.expert.reset()

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.expert.act(obs)


def is_expert_folder(path: str | Path) -> bool:
    """A folder :func:`load_expert` reads (``expert.json`` or ``plan.json``)."""
    from sim_training.experts.planner import PLAN_JSON

    p = Path(path)
    return p.is_dir() and ((p / EXPERT_JSON).is_file() or (p / PLAN_JSON).is_file())


def _write_json(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=float))
    os.replace(tmp, path)


def plan_expert(piece: str, out_dir: str | Path, embodiment: str = "shadow",
                planner_overrides: Mapping[str, Any] | None = None, *, action_set: ActionSet = "reduced",
                stretch: float = 1.0, seed: int = 0, name: str | None = None, show_progress: bool = False,
                force: bool = False) -> dict[str, Any]:
    """The planner as the expert: plan ``piece`` into ``out_dir`` (``plan.json``, ``actions.npy``,
    ``plan.png``) and write ``expert.json`` (``kind: "plan"``). A folder already holding a plan made
    with the same settings is returned as is (``force`` re-plans)."""
    from sim_training.experts.planner import PLAN_CANDIDATES, PLAN_JSON, PlannerConfig, plan_piece

    out = Path(out_dir)
    name = name or Path(piece).stem
    recorded = portable_piece(piece)
    cfg = dataclasses.replace(PlannerConfig(seed=seed), **dict(planner_overrides or {}))
    if (out / EXPERT_JSON).is_file() and not force:
        done = json.loads((out / EXPERT_JSON).read_text())
        if done.get("kind") == "plan" and done.get("planner") == json.loads(json.dumps(dataclasses.asdict(cfg))) \
                and done.get("piece") in (piece, recorded):
            return {**done, "skipped": True}
    r = plan_piece(piece, out, embodiment, cfg, action_set=action_set, stretch=stretch, plot=True,
                   show_progress=show_progress)
    summary: dict[str, Any] = {
        **{k: v for k, v in r.items() if k not in ("actions", "plot", "out", "candidates")},
        "piece": recorded, "name": name, "embodiment": embodiment, "action_set": action_set, "forearm_z": False,
        "stretch": stretch, "kind": "plan", "plan": PLAN_JSON,
        **({"candidates": PLAN_CANDIDATES} if "candidates" in r else {}),
        "searched_f1": None, "residual_f1": None, "expert_f1": r["f1"],
        "env_steps": int(r["plays"] * cfg.horizon), "updates": 0,
        "wall_s": {"plan": r["wall_s"], "total": r["wall_s"]},
    }
    _write_json(summary, out / EXPERT_JSON)
    return summary


def train_piece_expert(
    piece: str,
    out_dir: str | Path,
    embodiment: str = "shadow",
    minutes: float = 10.0,
    search_frac: float = 0.5,
    *,
    action_set: ActionSet = "reduced",
    forearm_z: bool = False,
    stretch: float = 1.0,
    seed: int = 0,
    search_seeds: int = 1,
    search_workers: int = 0,
    population: int = 10,
    n_threads: int = 1,
    search_overrides: Mapping[str, Any] | None = None,
    train_overrides: Mapping[str, Any] | None = None,
    name: str | None = None,
    show_progress: bool = False,
    log: bool = False,
    force: bool = False,
    method: str = "planner",
    planner_overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One expert for ``piece``; write and return the ``expert.json`` summary.

    ``method="planner"`` (default): :func:`plan_expert` with ``planner_overrides`` (PlannerConfig
    fields; ``minutes`` and the search/residual arguments do not apply). ``method="search"``: search
    the prior, then train the residual on it, as follows.

    Args:
        piece: built-in piece name or MIDI path.
        out_dir: the expert's folder (``best_prior.json``, ``search.*``, ``residual/``, ``expert.json``).
        minutes: total budget; the search gets ``search_frac`` of it, the residual the rest.
        search_workers: processes of the search (0: play in this process, right for a one-CPU task).
        n_threads: threads of the residual stage's batched envs.
        search_overrides: extra :class:`~sim_training.experts.search.SearchConfig` fields.
        train_overrides: extra :class:`~sim_training.experts.train.ExpertTrainConfig` fields; ``droq_<f>``
            keys set DroQConfig fields (see :func:`~sim_training.experts.train.config_replace`).
        name: the piece's name in the summary (default: the file stem or built-in name).
        force: re-run stage 2 even when ``expert.json`` already records at least ``minutes``.

    Resumable: a finished search (``best_prior.json``) is not repeated; the residual resumes from its
    last checkpoint (its minutes are a total over sessions). An existing ``expert.json`` for at least
    this budget is returned as is (``force`` re-runs).
    """
    if method == "planner":
        return plan_expert(piece, out_dir, embodiment, planner_overrides, action_set=action_set, stretch=stretch,
                           seed=seed, name=name, show_progress=show_progress, force=force)
    if method != "search":
        raise ValueError(f"method must be 'planner' or 'search', got {method!r}")
    from sim_training.experts.search import BEST_PRIOR, SEARCH_JSON, SearchConfig, load_prior_config, run_search
    from sim_training.experts.train import ExpertTrainConfig, config_replace, train_expert

    if not 0.0 <= search_frac <= 1.0:
        raise ValueError(f"search_frac must be in [0, 1], got {search_frac}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = name or Path(piece).stem
    if (out / EXPERT_JSON).is_file() and not force:
        done = json.loads((out / EXPERT_JSON).read_text())
        if float(done.get("minutes", 0.0)) >= minutes and done.get("piece") == piece:
            return {**done, "skipped": True}
    t_start = time.perf_counter()

    # ------------------------------------------------------------------ stage 1: search the prior
    search_minutes = search_frac * minutes
    if (out / BEST_PRIOR).is_file():
        searched_cfg = load_prior_config(out / BEST_PRIOR)
        s = json.loads((out / SEARCH_JSON).read_text()) if (out / SEARCH_JSON).is_file() else {}
    else:
        scfg = SearchConfig(piece=piece, embodiment=embodiment, minutes=search_minutes, population=population,
                            seeds=search_seeds, workers=search_workers, seed=seed, out=str(out),
                            action_set=action_set, forearm_z=forearm_z, stretch=stretch,
                            show_progress=show_progress, log=log)
        if search_frac <= 0.0:  # no search: play the default once, for the record
            scfg = dataclasses.replace(scfg, population=1, max_generations=1, seeds=1)
        if search_overrides:
            scfg = dataclasses.replace(scfg, **search_overrides)
        s = run_search(scfg)
        searched_cfg = load_prior_config(out / BEST_PRIOR)
    t_search = time.perf_counter() - t_start

    # ------------------------------------------------------------------ stage 2: residual DroQ
    train_minutes = (1.0 - search_frac) * minutes
    overrides = dict(train_overrides or {})
    r: dict[str, Any] | None = None
    t1 = time.perf_counter()
    if train_minutes > 0.0 or overrides.get("max_env_steps"):
        tcfg = ExpertTrainConfig(piece=piece, out=str(out / RESIDUAL_DIR), embodiment=embodiment,
                                 action_set=action_set, forearm_z=forearm_z,
                                 minutes=train_minutes, stretch=stretch, seed=seed, use_prior=True,
                                 prior=searched_cfg, n_threads=n_threads, show_progress=show_progress, log=log)
        r = train_expert(config_replace(tcfg, **overrides))
    t_residual = time.perf_counter() - t1

    default_f1 = s.get("default_f1")
    searched_f1 = s.get("best_f1")
    if r is not None:
        searched_f1 = r["prior_f1"] if searched_f1 is None else searched_f1
        # the trainer's own evaluation of the searched prior is the fair comparison for its residual
        residual_beats = r["best_env_steps"] > 0 and r["best_f1"] > r["prior_f1"]
    else:
        residual_beats = False
    kind = "residual" if residual_beats else "prior"
    expert_f1 = r["best_f1"] if (r is not None and residual_beats) else searched_f1
    # wall time per stage over all sessions (the trainer counts its own across resumes)
    wall = {"search": float(s.get("wall_s", 0.0)), "residual": float(r["wall_s"]) if r is not None else 0.0}
    wall["total"] = wall["search"] + wall["residual"]
    summary: dict[str, Any] = {
        "piece": piece, "name": name, "embodiment": embodiment, "action_set": action_set, "forearm_z": forearm_z,
        "stretch": stretch, "kind": kind,
        "prior_f1": default_f1, "prior_note_step_f1": s.get("default_note_step_f1"),
        "searched_f1": searched_f1, "searched_note_step_f1": s.get("best_note_step_f1"),
        "residual_f1": r["best_f1"] if r is not None else None,
        "residual_prior_f1": r["prior_f1"] if r is not None else None,
        "expert_f1": expert_f1, "do_nothing_f1": s.get("do_nothing_f1", r["do_nothing_f1"] if r else None),
        "search_plays": s.get("plays"), "search_generations": s.get("generations"),
        "env_steps": r["env_steps"] if r is not None else 0, "updates": r["updates"] if r is not None else 0,
        "env_steps_per_s": r["env_steps_per_s"] if r is not None else 0.0,
        "updates_per_s": r["updates_per_s"] if r is not None else 0.0,
        "wall_s": wall, "session_wall_s": {"search": t_search, "residual": t_residual},
        "minutes": minutes, "search_frac": search_frac,
        "lookahead": LOOKAHEAD_STEPS,  # the search and the trainer both use the env's default
        "best_prior": BEST_PRIOR, "residual_dir": RESIDUAL_DIR if r is not None else None,
        "changed_knobs": s.get("changed", {}),
    }
    _write_json(summary, out / EXPERT_JSON)
    return summary

