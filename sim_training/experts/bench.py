"""Expert benchmark: the prior, per-piece CEM, the planner (and residual DroQ on a subset), same pieces.

``omnipianist bench expert [MIDI_OR_FOLDER ...] --json`` — one command, resumable (every expert is
a folder with ``expert.json`` under ``--out``; a second run only fills what is missing):

1. **Planner** (the expert) on every clip of the corpus ``split`` (test: 77 clips), per embodiment,
   through the Ray fan-out (``train-experts``; one clip per CPU). Each plan also plays the default
   prior on the same clip, so the prior's F1 comes from the same run. CPU-seconds are the planning
   process's own (``time.process_time``, one core per clip).
2. **Extra pieces** given as arguments (MIDI files or folders; RoboPianist's shipped
   ``nocturne-trimmed.mid`` is the public reference): planner vs prior, Shadow. Nothing is
   downloaded by the benchmark.
3. **Per-piece CEM** (whole-piece search of the same knobs, ``cem_minutes`` each) on
   ``cem_pieces`` clips, Shadow; **residual DroQ** on the searched prior for ``droq_pieces``
   (``droq_minutes`` each): the older expert methods, compared, not deleted.
4. **F1 vs budget**: the planner at each budget of ``curve_budgets`` on ``curve_pieces`` clips
   (Shadow), with its CPU-seconds.

Subsets are evenly spaced over the split (the split is sorted by work, so its first clips are all
one composer).

Targets (exit 1 when one is missed): Shadow planner mean F1 >= 0.85 on the split; LEAP planner mean
>= its prior + 0.12; a nocturne among the extras >= 0.85; mean CPU-seconds per 30 s of music <= 60
at the default budget (Shadow).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from omnipianist.command import Command, ok_or_1, to_json
from sim_training.experts.fanout import resolve_pieces, train_experts

SHADOW_F1_TARGET = 0.85
LEAP_GAIN_TARGET = 0.12
NOCTURNE_F1_TARGET = 0.85
CPU_S_PER_30S_TARGET = 60.0


@dataclass(frozen=True)
class ExpertBenchConfig:
    out: str = "runs/bench/expert"
    split: str = "test"
    max_pieces: int | None = None
    """At most this many clips of the split (None: all)."""
    embodiments: str = "shadow,leap"
    leap_pieces: int | None = None
    """LEAP on an evenly spaced subset of this many clips of the split (None: all of them)."""
    shadow_pieces: int | None = None
    """Shadow on an evenly spaced subset of this many clips of the split (None: all of them)."""
    budget: int = 24
    """The planner's default budget (candidate plays per window)."""
    cem_pieces: int = 6
    cem_minutes: float = 2.0
    droq_pieces: int = 2
    droq_minutes: float = 6.0
    curve_budgets: str = "6,12,24,48"
    curve_pieces: int = 6
    num_cpus: int = 2
    extra: tuple[str, ...] = ()
    """extra MIDI files or folders (e.g. RoboPianist's nocturne-trimmed.mid)"""


@dataclass(frozen=True)
class PlanTable:
    """The planner on a set of clips (``bench_expert.json``'s ``planner.<embodiment>`` and ``extra``)."""

    pieces: int
    mean: dict[str, float | None]
    """Mean over the clips of f1, prior_f1, note_step_f1, prior_note_step_f1, onset_f1, prior_onset_f1,
    do_nothing_f1, cpu_s, cpu_s_per_30s, gain (None where no clip has it)."""
    beats_prior: int
    never_worse: int
    cpu_s_per_30s_p90: float | None
    rows: list[dict[str, Any]]
    """One per clip: id, f1, prior_f1, onset_f1, prior_onset_f1, note_step_f1, do_nothing_f1, cpu_s,
    cpu_s_per_30s, plays, searched_windows, windows (from its expert.json; None where absent)."""


@dataclass(frozen=True)
class Comparison:
    """An older expert method (per-piece CEM, residual DroQ) vs the planner on the same clips."""

    note: str
    pieces: int
    rows: list[dict[str, Any]]
    """One per clip: id, prior_f1, f1, kind, planner_f1, wall_min."""
    mean_prior_f1: float | None
    mean_f1: float | None
    mean_planner_f1_same_pieces: float | None
    planner_wins: int


@dataclass(frozen=True)
class BudgetPoint:
    """The planner at one budget (the F1 vs budget curve)."""

    budget: int
    pieces: int
    f1: float | None
    prior_f1: float | None
    cpu_s_per_30s: float | None


@dataclass(frozen=True)
class Target:
    measured: float | None
    target: float
    ok: bool


@dataclass(frozen=True, kw_only=True)
class ExpertBenchResult:
    """``bench expert``'s result (``bench_expert.json``); the optional parts are left out of the JSON when not run."""

    benchmark: str = "expert"
    split: str
    budget: int
    planner: dict[str, PlanTable]
    """Per embodiment (shadow, leap)."""
    extra: PlanTable | None = field(default=None, metadata={"omit_none": True})
    cem: Comparison | None = field(default=None, metadata={"omit_none": True})
    droq: Comparison | None = field(default=None, metadata={"omit_none": True})
    budget_curve: list[BudgetPoint] | None = field(default=None, metadata={"omit_none": True})
    budget_curve_png: str | None = field(default=None, metadata={"omit_none": True})
    targets: dict[str, Target]
    ok: bool


def _rows(out: Path, ids: list[str]) -> list[dict[str, Any]]:
    rows = []
    for i in ids:
        p = out / i / "expert.json"
        if p.is_file():
            rows.append({"id": i, **json.loads(p.read_text())})
    return rows


def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
    vals = [float(r[key]) for r in rows if r.get(key) is not None]
    return float(np.mean(vals)) if vals else None


def _plan_table(rows: list[dict[str, Any]]) -> PlanTable:
    keys = ("f1", "prior_f1", "note_step_f1", "prior_note_step_f1", "onset_f1", "prior_onset_f1", "do_nothing_f1",
            "cpu_s", "cpu_s_per_30s", "gain")
    cpu = [float(r["cpu_s_per_30s"]) for r in rows if r.get("cpu_s_per_30s") is not None]
    return PlanTable(
        pieces=len(rows), mean={k: _mean(rows, k) for k in keys},
        beats_prior=sum(1 for r in rows if r["f1"] > r["prior_f1"]),
        never_worse=sum(1 for r in rows if r["f1"] >= r["prior_f1"]),
        cpu_s_per_30s_p90=float(np.percentile(cpu, 90)) if cpu else None,
        rows=[{k: r.get(k) for k in ("id", "f1", "prior_f1", "onset_f1", "prior_onset_f1", "note_step_f1",
                                      "do_nothing_f1", "cpu_s", "cpu_s_per_30s", "plays", "searched_windows",
                                      "windows")} for r in rows],
    )


def _fan(source: str | Path, out: Path, num_cpus: int, *, split: str | None = None, max_pieces: int | None = None,
         minutes: float = 10.0, **pipeline_kwargs: Any) -> list[dict[str, Any]]:
    """Experts for the pieces of ``source`` (train-experts, resumable); their expert.json rows.
    ``pipeline_kwargs``: :func:`~sim_training.experts.pipeline.train_piece_expert`'s."""
    ids = [j.id for j in resolve_pieces(source, split, max_pieces)]
    train_experts(source, out, split=split, max_pieces=max_pieces, minutes_per_piece=minutes, num_cpus=num_cpus,
                  pipeline_kwargs=pipeline_kwargs, show_progress=True, log=True)
    return _rows(out, ids)


def spaced(jobs: list[Any], n: int | None) -> list[Any]:
    """``n`` items spread evenly over ``jobs`` (all of them when ``n`` is None or >= len)."""
    if n is None or n >= len(jobs):
        return list(jobs)
    return [jobs[i] for i in np.linspace(0, len(jobs) - 1, max(n, 0)).round().astype(int)]


def run_expert_bench(cfg: ExpertBenchConfig, extra: list[str] | None = None) -> ExpertBenchResult:
    """The benchmark; ``extra`` (default ``cfg.extra``): the extra pieces of step 2."""
    from sim_training.music.corpus import load_manifest

    extra = list(cfg.extra) if extra is None else extra

    out = Path(cfg.out)
    manifest = load_manifest().root / "manifest.json"
    embodiments = [e.strip() for e in cfg.embodiments.split(",") if e.strip()]
    planner_budget = {"budget": cfg.budget}
    planner: dict[str, PlanTable] = {}
    extra_table: PlanTable | None = None
    cem: Comparison | None = None
    droq: Comparison | None = None
    curve: list[BudgetPoint] | None = None
    curve_png: str | None = None
    checks: dict[str, tuple[float | None, float, bool]] = {}

    clips = resolve_pieces(manifest, cfg.split, cfg.max_pieces)

    def subset(n: int | None) -> str:
        return ",".join(j.piece for j in spaced(clips, n))

    for emb in embodiments:
        n = cfg.leap_pieces if emb == "leap" else cfg.shadow_pieces
        rows = _fan(subset(n), out / f"planner_{emb}", cfg.num_cpus, embodiment=emb, method="planner",
                    planner_overrides=planner_budget)
        table = _plan_table(rows)
        planner[emb] = table
        m = table.mean
        if emb == "shadow":
            checks["shadow_planner_mean_f1"] = (m["f1"], SHADOW_F1_TARGET, (m["f1"] or 0) >= SHADOW_F1_TARGET)
            checks["shadow_cpu_s_per_30s"] = (m["cpu_s_per_30s"], CPU_S_PER_30S_TARGET,
                                              (m["cpu_s_per_30s"] or 1e9) <= CPU_S_PER_30S_TARGET)
        if emb == "leap":
            gain = (m["f1"] or 0.0) - (m["prior_f1"] or 0.0)
            checks["leap_planner_gain_over_prior"] = (gain, LEAP_GAIN_TARGET, gain >= LEAP_GAIN_TARGET)

    if extra:
        rows = []
        for src in extra:
            rows += _fan(src if not Path(src).is_file() else str(Path(src).resolve()), out / "planner_extra_shadow",
                         cfg.num_cpus, embodiment="shadow", method="planner", planner_overrides=planner_budget)
        extra_table = _plan_table(rows)
        for r in rows:
            if "nocturne" in r["id"]:
                checks[f"{r['id']}_f1"] = (r["f1"], NOCTURNE_F1_TARGET, r["f1"] >= NOCTURNE_F1_TARGET)

    shadow_plans = {r["id"]: r for r in planner["shadow"].rows} if "shadow" in planner else {}
    if cfg.cem_pieces > 0:
        rows = _fan(subset(cfg.cem_pieces), out / "cem_shadow", cfg.num_cpus,
                    method="search", search_frac=1.0, minutes=cfg.cem_minutes, embodiment="shadow")
        cem = _compare(rows, shadow_plans, "searched_f1",
                                 note=f"per-piece CEM, {cfg.cem_minutes} min per clip (1 CPU)")
    if cfg.droq_pieces > 0:
        rows = _fan(subset(cfg.droq_pieces), out / "droq_shadow", cfg.num_cpus, method="search", search_frac=0.4,
                    minutes=cfg.droq_minutes, embodiment="shadow",
                    train_overrides={"droq_learning_starts": 1000, "droq_init_temperature": 0.1})
        droq = _compare(rows, shadow_plans, "expert_f1",
                        note=f"CEM {0.4 * cfg.droq_minutes:.1f} min then residual DroQ "
                             f"{0.6 * cfg.droq_minutes:.1f} min per clip; expert_f1 = the better of the two")
    budgets = [int(b) for b in cfg.curve_budgets.split(",") if b.strip()]
    if budgets and cfg.curve_pieces > 0:
        curve = []
        curve_ids = [j.id for j in spaced(clips, cfg.curve_pieces)]
        for b in budgets:
            if b == cfg.budget and all(i in shadow_plans for i in curve_ids):  # the main run's plans
                rows = _rows(out / "planner_shadow", curve_ids)
            else:
                rows = _fan(subset(cfg.curve_pieces), out / f"curve_shadow_b{b}", cfg.num_cpus, embodiment="shadow",
                            method="planner", planner_overrides={"budget": b})
            t = _plan_table(rows)
            curve.append(BudgetPoint(budget=b, pieces=t.pieces, f1=t.mean["f1"], prior_f1=t.mean["prior_f1"],
                                     cpu_s_per_30s=t.mean["cpu_s_per_30s"]))
        plot_budget_curve(curve, out / "budget_curve.png")
        curve_png = str(out / "budget_curve.png")
    result = ExpertBenchResult(
        split=cfg.split, budget=cfg.budget, planner=planner, extra=extra_table, cem=cem, droq=droq,
        budget_curve=curve, budget_curve_png=curve_png,
        targets={k: Target(measured=v[0], target=v[1], ok=bool(v[2])) for k, v in checks.items()},
        ok=all(v[2] for v in checks.values()))
    (out / "bench_expert.json").write_text(json.dumps(to_json(result), indent=1, default=float))
    return result


def _compare(rows: list[dict[str, Any]], plans: dict[str, dict[str, Any]], key: str, note: str) -> Comparison:
    table = []
    for r in rows:
        p = plans.get(r["id"], {})
        table.append({"id": r["id"], "prior_f1": r.get("prior_f1"), "f1": r.get(key), "kind": r.get("kind"),
                      "planner_f1": p.get("f1"), "wall_min": float(r.get("wall_s", {}).get("total", 0.0)) / 60.0})
    both = [t for t in table if t["f1"] is not None and t["planner_f1"] is not None]
    return Comparison(note=note, pieces=len(table), rows=table,
                      mean_prior_f1=_mean(table, "prior_f1"), mean_f1=_mean(table, "f1"),
                      mean_planner_f1_same_pieces=_mean(both, "planner_f1"),
                      planner_wins=sum(1 for t in both if t["planner_f1"] > t["f1"]))


def plot_budget_curve(curve: list[BudgetPoint], path: Path) -> None:
    """PNG: planner mean F1 vs budget (and vs CPU-seconds per 30 s), the prior dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=100, sharey=True)
    f1 = [c.f1 for c in curve]
    for ax, xs, label in ((axes[0], [c.budget for c in curve], "candidate plays per window"),
                          (axes[1], [c.cpu_s_per_30s for c in curve], "CPU-s per 30 s of music (1 core)")):
        ax.plot(xs, f1, "o-", label="planner")
        ax.axhline(curve[0].prior_f1, ls="--", c="k", label="default prior")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[1].axvline(CPU_S_PER_30S_TARGET, ls=":", c="grey", label="target")
    axes[0].set_ylabel(f"mean F1 ({curve[0].pieces} test clips)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def format_expert_bench(r: ExpertBenchResult) -> str:
    lines = [f"expert bench ({r.split} split, planner budget {r.budget}):"]
    for emb, t in r.planner.items():
        m = t.mean
        lines.append(f"  planner {emb}: {t.pieces} clips, F1 {m['f1']:.3f} vs prior {m['prior_f1']:.3f} "
                     f"(onset {m['onset_f1']:.3f} vs {m['prior_onset_f1']:.3f}; do nothing {m['do_nothing_f1']:.3f}); "
                     f"beats the prior on {t.beats_prior}/{t.pieces}; {m['cpu_s_per_30s']:.1f} CPU-s per 30 s "
                     f"(p90 {t.cpu_s_per_30s_p90:.1f})")
    for key, c in (("cem", r.cem), ("droq", r.droq)):
        if c is not None:
            lines.append(f"  {key}: {c.pieces} clips, F1 {c.mean_f1:.3f} vs planner "
                         f"{c.mean_planner_f1_same_pieces:.3f} vs prior {c.mean_prior_f1:.3f} ({c.note})")
    for p in r.budget_curve or []:
        lines.append(f"  budget {p.budget:3d}: F1 {p.f1:.3f} (prior {p.prior_f1:.3f}), "
                     f"{p.cpu_s_per_30s:.1f} CPU-s per 30 s")
    for k, v in r.targets.items():
        lines.append(f"  {'ok  ' if v.ok else 'MISS'} {k}: {v.measured} (target {v.target})")
    return "\n".join(lines)


BENCH_EXPERT: Command[ExpertBenchConfig, ExpertBenchResult] = Command(
    "expert", "planner vs prior (and per-piece CEM, residual DroQ) on the test clips, Shadow and LEAP; F1 vs budget",
    ExpertBenchConfig, run_expert_bench, format_expert_bench, positionals=("extra",), exit_code=ok_or_1)
