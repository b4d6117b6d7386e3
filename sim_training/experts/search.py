"""Per-piece search over the OT/IK prior's knobs: the cross-entropy method on whole-piece plays.

Measured here (docs/experts.md): tuning a handful of the prior's parameters
per piece bought the most F1 per CPU-minute, far ahead of residual RL. This module is that search:

* The knobs, their bounds and types are one table, :data:`SEARCH_SPACE`. The search works in unit
  coordinates (each knob's range mapped to [0, 1]); integer knobs are rounded when decoded.
* A candidate is one deterministic play of the whole piece (MuJoCo and the prior are deterministic,
  so one play is its exact score; no repeats). The score is F1, ties broken by F1 on note steps.
* Generation 0 plays the default :class:`PriorConfig` exactly, so the result is never worse than
  the default prior. Each generation samples ``population`` candidates per search seed from
  ``N(mu, sigma)`` (clipped to the box); ``mu`` and ``sigma`` move toward the mean and spread of
  the elites (the top ``elite_frac`` of the generation plus the seed's best so far), smoothed, with
  a floor on ``sigma``.
* ``seeds`` independent searches run side by side (measured: search noise between seeds is large,
  keep the best); their candidates share one process pool of ``workers`` processes, each of which
  builds its scene and env once. ``workers=0`` plays in this process (what a one-CPU Ray task wants).
* The search stops between generations when the next one would not fit the ``minutes`` budget
  (generation 0 always runs), or after ``max_generations``.

Outputs in ``out``: ``best_prior.json`` (PriorConfig fields, loadable by
``omnipianist train-expert --prior-config``; written last, so it exists only for a finished
search), ``search.json`` (per generation: best / mean F1, wall time, plays; every candidate), and
``search.png`` (F1 vs plays and vs minutes, the default prior dashed).

CLI: ``omnipianist search-prior PIECE --minutes M --out DIR [--embodiment E] [--seeds S] [--json]``.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from omnipianist.cliutil import progress
from omnipianist.command import Command, command_main
from sim_training.fingering.prior import OTIKPrior, PriorConfig
from sim_training.models.embodiment import ActionSet, get_embodiment
from sim_training.models.scene import build_scene

BEST_PRIOR, SEARCH_JSON, SEARCH_PNG = "best_prior.json", "search.json", "search.png"
METRIC_KEYS = ("f1", "note_step_f1", "precision", "recall", "do_nothing_f1", "sustain_f1")
"""Metrics of a play kept per candidate (from ``PianoEnv.episode_metrics``)."""


# ----------------------------------------------------------------------------------- search space
# The knob table lives with the prior (sim_training.fingering.knobs); re-exported here.
from sim_training.fingering.knobs import (  # noqa: E402
    SEARCH_SPACE,
    Knob,
    config_from_knobs,
    decode,
    encode,
    knob_values,
    prior_config_from_dict,
    prior_config_to_json,
)

__all__ = ["SEARCH_SPACE", "Knob", "config_from_knobs", "decode", "encode", "knob_values", "prior_config_to_json",
           "load_prior_config", "SearchConfig", "run_search", "PiecePlayer"]


def load_prior_config(path: str | Path) -> PriorConfig:
    """Read a ``best_prior.json`` (or any PriorConfig JSON object) back into a PriorConfig."""
    return prior_config_from_dict(json.loads(Path(path).read_text()))


# ----------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class SearchConfig:
    """One search. ``minutes`` bounds the wall time (checked between generations)."""

    piece: str
    """Built-in piece name or MIDI path."""
    embodiment: str = "shadow"
    minutes: float = 5.0
    population: int = 10
    """Candidates per generation per search seed."""
    elite_frac: float = 0.3
    seeds: int = 1
    """Independent searches run side by side (the best one wins)."""
    workers: int = 2
    """Processes playing candidates (each builds its scene once); 0 = play in this process."""
    init_std_frac: float = 0.25
    """Initial sampling std of every knob, as a fraction of its range."""
    seed: int = 0
    out: str | None = None
    """Output folder (best_prior.json, search.json, search.png); None writes nothing."""
    action_set: Literal["reduced", "full"] = "reduced"
    forearm_z: bool = False
    stretch: float = 1.0
    max_generations: int | None = None
    """Stop after this many generations (None: only the time budget stops the search)."""
    smoothing: float = 0.7
    """Weight of the elites' mean/std in the update of mu/sigma (1 = plain CEM)."""
    min_std_frac: float = 0.03
    """Floor on the sampling std (fraction of the range): keeps the search from freezing."""
    show_progress: bool = True
    log: bool = False
    """One line per generation on stderr."""


# ----------------------------------------------------------------------------------- playing
class PiecePlayer:
    """Builds the scene and the whole-piece env once; :meth:`play` scores one PriorConfig."""

    def __init__(self, piece: str, embodiment: str = "shadow", action_set: ActionSet = "reduced",
                 forearm_z: bool = False, stretch: float = 1.0) -> None:
        from sim_training.env.piano_env import EnvConfig, PianoEnv

        emb = get_embodiment(embodiment, action_set, forearm_z)
        self.scene = build_scene(emb)
        self.env = PianoEnv(piece, emb, EnvConfig(clip_steps=None, random_start=False, stretch=stretch),
                            scene=self.scene)

    def play(self, config: PriorConfig) -> dict[str, float]:
        """Play the whole piece from step 0 with the prior alone; the metrics of :data:`METRIC_KEYS`.

        Same protocol as the expert trainer's evaluation, so the F1 found here is the ``prior_f1``
        that ``train_expert`` reports for this config.
        """
        from sim_training.experts.train import evaluate

        prior = OTIKPrior(self.scene, config, self.env.config.lookahead)
        m = evaluate(self.env, prior, None, np.zeros(0, dtype=int), 0.0)
        return {k: float(m[k]) for k in METRIC_KEYS if k in m}


_PLAYER: PiecePlayer | None = None


def _init_worker(piece: str, embodiment: str, action_set: ActionSet, forearm_z: bool, stretch: float) -> None:
    global _PLAYER
    _PLAYER = PiecePlayer(piece, embodiment, action_set, forearm_z, stretch)


def _play_in_worker(config: PriorConfig) -> dict[str, float]:
    assert _PLAYER is not None, "worker not initialised"
    return _PLAYER.play(config)


from sim_training.workers import single_threaded_children as _single_threaded_children  # noqa: E402


class _Evaluator:
    """Plays batches of configs in a spawn-context process pool (or in-process for workers=0)."""

    def __init__(self, cfg: SearchConfig) -> None:
        self.pool: ProcessPoolExecutor | None = None
        self.local: PiecePlayer | None = None
        args = (cfg.piece, cfg.embodiment, cfg.action_set, cfg.forearm_z, cfg.stretch)
        if cfg.workers <= 0:
            self.local = PiecePlayer(*args)
        else:
            self.pool = ProcessPoolExecutor(cfg.workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_init_worker, initargs=args)

    def run(self, configs: list[PriorConfig]) -> Iterator[tuple[int, dict[str, float]]]:
        """Yield ``(index, metrics)`` as plays finish."""
        if self.pool is None:
            assert self.local is not None
            for i, c in enumerate(configs):
                yield i, self.local.play(c)
            return
        with _single_threaded_children():  # processes are spawned lazily, at submit
            futures: dict[Future[dict[str, float]], int] = {self.pool.submit(_play_in_worker, c): i
                                                            for i, c in enumerate(configs)}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                yield futures[f], f.result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


# ----------------------------------------------------------------------------------- search
def _score(m: dict[str, float]) -> tuple[float, float]:
    return (m["f1"], m.get("note_step_f1", 0.0))


@dataclass
class _SeedState:
    """One independent CEM run: its sampling distribution and its best candidate."""

    rng: np.random.Generator
    mu: np.ndarray
    sigma: np.ndarray
    best_u: np.ndarray
    best_metrics: dict[str, float] = field(default_factory=dict)


def run_search(cfg: SearchConfig) -> dict[str, Any]:
    """Run the search; returns piece, embodiment, default_f1, best_f1, plays, wall_s, best_config (+ more).

    ``best_config`` is the full PriorConfig as a dict (the content of ``best_prior.json``).
    """
    if cfg.population < 1 or cfg.seeds < 1:
        raise ValueError(f"population and seeds must be >= 1 (got {cfg.population}, {cfg.seeds})")
    if not 0.0 < cfg.elite_frac <= 1.0:
        raise ValueError(f"elite_frac must be in (0, 1], got {cfg.elite_frac}")
    t0 = time.perf_counter()
    budget_s = max(cfg.minutes, 0.0) * 60.0
    space = SEARCH_SPACE
    base = PriorConfig()
    u_default = encode(base, space)
    n_elite = max(1, int(round(cfg.elite_frac * cfg.population)))
    seeds = [_SeedState(rng=np.random.default_rng([cfg.seed, s]), mu=u_default.copy(),
                        sigma=np.full(len(space), cfg.init_std_frac), best_u=u_default.copy())
             for s in range(cfg.seeds)]

    cache: dict[tuple[float, ...], dict[str, float]] = {}
    candidates: list[dict[str, Any]] = []
    generations: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    default_metrics: dict[str, float] | None = None
    bar = progress(total=int(math.ceil(budget_s)) or None, desc=f"search {Path(cfg.piece).stem}",
                   disable=not cfg.show_progress)
    evaluator = _Evaluator(cfg)
    try:
        gen = 0
        while True:
            t_gen = time.perf_counter()
            # ---- sample (unit coordinates; decoded configs are what is played)
            batch: list[tuple[int, np.ndarray]] = []  # (seed index, u)
            configs: list[PriorConfig] = []
            for s, st in enumerate(seeds):
                n_sample = cfg.population
                if gen == 0:  # the default itself, not its decoded unit coordinates (float round-off)
                    batch.append((s, u_default.copy()))
                    configs.append(base)
                    n_sample -= 1
                for _ in range(n_sample):
                    batch.append((s, np.clip(st.mu + st.sigma * st.rng.standard_normal(len(space)), 0.0, 1.0)))
                    configs.append(decode(batch[-1][1], base, space))
            keys = [tuple(round(float(v), 12) for v in knob_values(c, space).values()) for c in configs]
            batch = [(s, encode(c, space)) for (s, _), c in zip(batch, configs, strict=True)]  # snap ints
            first: dict[tuple[float, ...], int] = {}
            for i, k in enumerate(keys):
                if k not in cache:
                    first.setdefault(k, i)
            todo = sorted(first.values())  # each new config played once (the default first)
            for j, metrics in evaluator.run([configs[i] for i in todo]):
                i = todo[j]
                cache[keys[i]] = metrics
                cand = {"play": len(candidates) + 1, "generation": gen, "seed": batch[i][0],
                        "wall_s": time.perf_counter() - t0, **metrics, "knobs": knob_values(configs[i], space)}
                candidates.append(cand)
                if best is None or _score(metrics) > _score(best["metrics"]):
                    best = {"config": configs[i], "metrics": metrics, "play": cand["play"], "generation": gen}
                elapsed = int(time.perf_counter() - t0)
                bar.n = min(elapsed, bar.total) if bar.total else elapsed
                bar.set_postfix(best=f"{best['metrics']['f1']:.3f}", plays=len(candidates))  # refreshes
            # ---- update each seed's distribution
            gen_metrics = [cache[k] for k in keys]
            if gen == 0:
                default_metrics = gen_metrics[0]
            for s, st in enumerate(seeds):
                mine = [(batch[i][1], gen_metrics[i]) for i in range(len(batch)) if batch[i][0] == s]
                mine.sort(key=lambda um: _score(um[1]), reverse=True)
                if not st.best_metrics or _score(mine[0][1]) > _score(st.best_metrics):
                    st.best_u, st.best_metrics = mine[0][0].copy(), mine[0][1]
                elite = [u for u, _ in mine[:n_elite]]
                if not any(np.array_equal(u, st.best_u) for u in elite):
                    elite.append(st.best_u)
                elite_arr = np.stack(elite)
                a = cfg.smoothing
                st.mu = a * elite_arr.mean(axis=0) + (1 - a) * st.mu
                st.sigma = np.maximum(a * elite_arr.std(axis=0) + (1 - a) * st.sigma, cfg.min_std_frac)
            assert best is not None
            now = time.perf_counter()
            f1s = [m["f1"] for m in gen_metrics]
            generations.append({
                "generation": gen, "plays": len(candidates), "wall_s": now - t0, "gen_s": now - t_gen,
                "best_f1": max(f1s), "mean_f1": float(np.mean(f1s)), "best_so_far_f1": best["metrics"]["f1"],
                "best_so_far_note_step_f1": best["metrics"]["note_step_f1"],
                "seed_best_f1": [st.best_metrics["f1"] for st in seeds],
                "sigma_mean": [float(st.sigma.mean()) for st in seeds],
            })
            if cfg.log:
                print(f"[search {cfg.piece}] gen {gen:3d} plays {len(candidates):4d} best {max(f1s):.3f} "
                      f"mean {np.mean(f1s):.3f} best so far {best['metrics']['f1']:.3f} "
                      f"({(now - t0) / 60:.1f} min)", file=sys.stderr, flush=True)
            gen += 1
            if cfg.max_generations is not None and gen >= cfg.max_generations:
                break
            if (now - t0) + (now - t_gen) > budget_s:  # the next generation would not fit
                break
    finally:
        evaluator.close()
        bar.close()

    assert best is not None and default_metrics is not None
    wall = time.perf_counter() - t0
    best_cfg = best["config"]
    default_vals, best_vals = knob_values(base, space), knob_values(best_cfg, space)
    result: dict[str, Any] = {
        "piece": cfg.piece, "embodiment": cfg.embodiment, "action_set": cfg.action_set, "forearm_z": cfg.forearm_z,
        "stretch": cfg.stretch,
        "default_f1": default_metrics["f1"], "default_note_step_f1": default_metrics["note_step_f1"],
        "best_f1": best["metrics"]["f1"], "best_note_step_f1": best["metrics"]["note_step_f1"],
        "do_nothing_f1": default_metrics.get("do_nothing_f1"),
        "default_metrics": default_metrics, "best_metrics": best["metrics"],
        "plays": len(candidates), "generations": len(generations), "best_play": best["play"],
        "best_generation": best["generation"], "wall_s": wall, "plays_per_min": len(candidates) / max(wall / 60, 1e-9),
        "changed": {k: [default_vals[k], best_vals[k]] for k in best_vals if best_vals[k] != default_vals[k]},
        "best_config": prior_config_to_json(best_cfg),
    }
    if cfg.out is not None:
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        result["best_prior"] = str(out / BEST_PRIOR)
        result["search_json"] = str(out / SEARCH_JSON)
        result["plot"] = str(out / SEARCH_PNG)
        _write_json({**{k: v for k, v in result.items()}, "config": asdict(cfg),
                     "space": [asdict(k) for k in space], "per_generation": generations,
                     "candidates": candidates}, out / SEARCH_JSON)
        plot_search(candidates, generations, default_metrics, out / SEARCH_PNG,
                    f"prior search: {cfg.piece} ({cfg.embodiment}), {cfg.seeds} seed(s) x {cfg.population}")
        _write_json(result["best_config"], out / BEST_PRIOR)  # last: its presence means "search finished"
    return result


def _write_json(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=float))
    os.replace(tmp, path)


def plot_search(candidates: list[dict[str, Any]], generations: list[dict[str, Any]],
                default_metrics: dict[str, float], path: str | Path, title: str = "") -> None:
    """PNG: every candidate's F1 (dots), the best so far (line) vs plays and vs minutes;
    the default prior dashed, doing nothing dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100, sharey=True)
    f1 = np.array([c["f1"] for c in candidates])
    best = np.maximum.accumulate(f1) if f1.size else f1
    xs_by = {"plays": np.array([c["play"] for c in candidates]),
             "minutes": np.array([c["wall_s"] for c in candidates]) / 60.0}
    for ax, key in zip(axes, ("plays", "minutes"), strict=True):
        xs = xs_by[key]
        ax.plot(xs, f1, ".", alpha=0.35, label="candidate")
        ax.step(xs, best, where="post", lw=2, label="best so far")
        if key == "plays":
            ax.plot([g["plays"] for g in generations], [g["mean_f1"] for g in generations], "-", alpha=0.6,
                    label="generation mean")
        ax.axhline(default_metrics["f1"], ls="--", c="k", label=f"default prior {default_metrics['f1']:.3f}")
        if "do_nothing_f1" in default_metrics:
            ax.axhline(default_metrics["do_nothing_f1"], ls=":", c="grey", label="do nothing")
        ax.set_xlabel(key)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("F1 (whole piece)")
    lo = min(float(f1.min()) if f1.size else 0.0, default_metrics.get("do_nothing_f1", 0.0))
    axes[0].set_ylim(max(0.0, lo - 0.02), 1.01)
    axes[1].legend(loc="lower right", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


# ----------------------------------------------------------------------------------- CLI
@dataclass(frozen=True, kw_only=True)
class SearchResult:
    """``omnipianist search-prior``'s result: :func:`run_search`'s summary with its output folder's files."""

    piece: str
    embodiment: str
    action_set: str
    forearm_z: bool
    stretch: float
    default_f1: float
    default_note_step_f1: float
    best_f1: float
    best_note_step_f1: float
    do_nothing_f1: float | None
    default_metrics: dict[str, float]
    best_metrics: dict[str, float]
    """The metrics of :data:`METRIC_KEYS` of the default prior and of the best candidate."""
    plays: int
    generations: int
    best_play: int
    best_generation: int
    wall_s: float
    plays_per_min: float
    changed: dict[str, list[float]]
    """Knob -> [default, best], for the knobs the best candidate changed."""
    best_config: dict[str, Any]
    """The best PriorConfig's fields (``best_prior.json``)."""
    best_prior: str
    search_json: str
    plot: str


def run_search_prior(cfg: SearchConfig) -> SearchResult:
    """:func:`run_search` with the command's output folder default (runs/search/<piece>)."""
    out = cfg.out if cfg.out is not None else str(Path("runs") / "search" / Path(cfg.piece).stem)
    return SearchResult(**run_search(replace(cfg, out=out)))


def format_search(r: SearchResult) -> str:
    changed = ", ".join(f"{k} {a:.4g}->{b:.4g}" for k, (a, b) in r.changed.items()) or "none"
    return (f"{r.piece} ({r.embodiment}): F1 {r.default_f1:.3f} -> {r.best_f1:.3f} "
            f"(note steps {r.default_note_step_f1:.3f} -> {r.best_note_step_f1:.3f}; "
            f"do nothing {r.do_nothing_f1:.3f}) after {r.plays} plays, {r.generations} generations in "
            f"{r.wall_s / 60:.1f} min\n  changed: {changed}\n  wrote {r.best_prior} (use with "
            f"train-expert --prior-config), {r.search_json}, {r.plot}")


SEARCH_PRIOR: Command[SearchConfig, SearchResult] = Command(
    "search-prior", "cross-entropy search of the OT/IK prior's knobs on one piece", SearchConfig,
    run_search_prior, format_search, positionals=("piece",))


def add_search_prior_args(parser: Any) -> None:
    """The flags of ``omnipianist search-prior`` (those :data:`SEARCH_PRIOR` adds)."""
    SEARCH_PRIOR.add_arguments(parser)


def main(argv: Sequence[str] | None = None) -> int:
    return command_main(SEARCH_PRIOR, argv)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
