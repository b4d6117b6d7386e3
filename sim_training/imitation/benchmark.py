"""Generalist benchmark: F1 on seen (training) and unseen (test-split) corpus pieces, policies side by side.

``omnipianist bench generalist --policy NAME=PATH [--policy ...] --json`` (``benchmarks/bench_generalist.py``).
Each PATH is a generalist checkpoint (``policy.pt`` or its run directory) or an exported ``.onnx``;
checkpoints are exported to a temporary ONNX file first and played through
:class:`policy_export.runtime.Policy` (the deployed runtime; ~5x faster than torch eager, and the
parity check in ``omnipianist export --verify`` bounds the difference). The OT/IK prior is always a row.

* **unseen**: ``unseen_pieces`` pieces of the corpus ``test`` split (seeded sample, the same for every
  policy); no policy trained on any of them.
* **seen**: ``seen_pieces`` of EACH policy's own training pieces (from its checkpoint's
  ``train_pieces``; seeded sample), played from the first step (the data were recorded the same way,
  with and without action noise).

Each PATH may also be a knob head (ONNX kind ``knobs``: the network sets the prior's knobs). With
``plans`` (a folder of planner experts, ``<piece>/plan.json``) the planner — the experts the students
learn from, their ceiling — is a row on the pieces it planned (its F1 as recorded when planning; a
replay of a plan reproduces it exactly).

Targets (issue "a generalist that plays unseen pieces better than the prior"), checked on the policy
named by ``target_policy`` (default: the first): unseen mean F1 >= prior's + 0.08; unseen F1 above
the prior's on >= 85 % of the unseen pieces; seen F1 >= 0.85; on Shadow hands also unseen F1 >= 0.80;
and FMT >= BC-MLP on unseen pieces when an ``fmt`` and a ``bc`` model of the same formulation and the
same number of training pieces are given (the ``target`` of that check is the BC-MLP's F1).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from omnipianist.cliutil import progress
from omnipianist.command import Command, command_main, ok_or_1, to_json
from omnipianist.fileio import save_json
from policy_export.metadata import read_metadata
from policy_export.runtime import Policy
from sim_training.models.embodiment import get_embodiment

UNSEEN_GAIN_TARGET = 0.08
"""Unseen mean F1 at least the prior's plus this."""
UNSEEN_F1_TARGET = {"shadow": 0.80}
"""Unseen mean F1 floor per embodiment (none for the others)."""
BEAT_PRIOR_FRACTION_TARGET = 0.85
"""Fraction of the unseen pieces on which the policy's F1 must be above the prior's."""
SEEN_F1_TARGET = 0.85


@dataclass(frozen=True)
class GeneralistBenchConfig:
    policies: tuple[str, ...] = field(default_factory=tuple, metadata={
        "flags": ("--policy",), "action": "append", "required": True, "metavar": "NAME=PATH",
        "help": "a generalist checkpoint, run directory or .onnx (repeat; the first is checked against the targets)"})
    """NAME=PATH entries (checkpoint, run directory or .onnx)."""
    unseen_pieces: int = 20
    """test-split pieces (the same for every policy; 0 = all)"""
    seen_pieces: int = 20
    """pieces from each policy's own training set"""
    seed: int = 0
    """piece sampling seed"""
    target_policy: str = ""
    """Name of the policy the targets are checked on ('' = the first)."""
    plans: str = ""
    """A folder of planner experts (``<piece>/plan.json``): the planner as a row on the pieces it planned."""
    show_progress: bool = field(default=True, metadata={"cli": False})
    out: str = ""
    """also write the JSON result here"""


@dataclass(frozen=True)
class Target:
    measured: float | None
    target: float | None
    """The threshold (``fmt_beats_bc_unseen*``: the best BC-MLP's unseen F1, None when it has none)."""
    ok: bool


@dataclass(frozen=True)
class GeneralistBenchResult:
    """``bench generalist``'s result (``--json``, ``--out``)."""

    benchmark: str
    embodiment: str
    target_policy: str
    unseen_pieces: list[str]
    seen_pieces: dict[str, list[str]]
    """Per policy: the training pieces it played."""
    policies: dict[str, dict[str, Any]]
    """Per policy: path, model, formulation, residual_on_prior, train_pieces, step."""
    table: dict[str, dict[str, Any]]
    """Per policy (then ``prior``, ``planner``): its ``policies`` entry plus unseen_f1, unseen_onset_f1, seen_f1,
    seen_onset_f1, prior_unseen_f1, prior_seen_f1_same_pieces, unseen_pieces_played, unseen_above_prior_fraction."""
    rows: list[dict[str, Any]]
    """One per play: policy, split, piece, f1, onset_f1, precision, recall, steps, do_nothing_f1."""
    targets: dict[str, Target]
    ok: bool
    wall_s: float = 0.0

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> GeneralistBenchResult:
        """A result read back from its JSON (an ``--out`` file); results older than ``policies`` get ``{}``."""
        return cls(benchmark=d["benchmark"], embodiment=d.get("embodiment", "shadow"), target_policy=d["target_policy"],
                   unseen_pieces=list(d["unseen_pieces"]), seen_pieces=dict(d["seen_pieces"]),
                   policies=dict(d.get("policies") or {}), table=dict(d["table"]), rows=list(d["rows"]),
                   targets={k: Target(**v) for k, v in d["targets"].items()}, ok=bool(d["ok"]),
                   wall_s=float(d.get("wall_s", 0.0)))


def _parse(entries: tuple[str, ...]) -> list[tuple[str, str]]:
    out = []
    for e in entries:
        name, sep, path = e.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--policy {e!r}: expected NAME=PATH")
        if not Path(path).exists():
            raise FileNotFoundError(f"--policy {name}: {path} does not exist")
        out.append((name, path))
    if len({n for n, _ in out}) != len(out):
        raise ValueError(f"policy names must be unique: {[n for n, _ in out]}")
    return out


def _checkpoint_meta(path: str) -> dict[str, Any] | None:
    """The generalist checkpoint's meta (None for .onnx files, which carry only counts)."""
    if path.endswith(".onnx"):
        m = read_metadata(path)
        src = m.get("source") or {}
        return {"model": m["model"]["type"], "residual_on_prior": bool(m.get("residual_on_prior")),
                "formulation": _formulation(m), "train_pieces": list(src.get("train_piece_ids") or []),
                "step": src.get("step") or src.get("steps")}
    from sim_training.imitation.checkpoint import load_checkpoint

    return load_checkpoint(path)[1]


def _formulation(meta: dict[str, Any]) -> str:
    """What the network predicts: ``knobs``, ``residual`` (on the prior's action) or ``action``."""
    if meta.get("kind") == "knobs":
        return "knobs"
    return "residual" if meta.get("residual_on_prior") else "action"


def planner_rows(plans: str | Path, pieces: list[str], embodiment: str) -> list[dict[str, Any]]:
    """The planner's recorded F1 on those of ``pieces`` it planned (``plans/<piece>/plan.json``)."""
    rows = []
    for pid in pieces:
        f = Path(plans) / pid / "plan.json"
        if not f.is_file():
            continue
        d = json.loads(f.read_text())
        if d.get("embodiment") != embodiment:
            raise ValueError(f"{f}: a plan for {d.get('embodiment')!r}, the policies are for {embodiment!r}")
        rows.append({"f1": float(d["f1"]), "onset_f1": float(d.get("onset_f1", np.nan)),
                     "precision": float(d.get("precision", np.nan)), "recall": float(d.get("recall", np.nan)),
                     "steps": int(d["steps"]), "do_nothing_f1": float(d.get("do_nothing_f1", np.nan)), "piece": pid})
    return rows


def _as_onnx(path: str, tmp: Path, name: str) -> str:
    if path.endswith(".onnx"):
        return path
    from policy_export.export import export_policy

    out = tmp / f"{name}.onnx"
    export_policy(path, out)
    return str(out)


class _PriorPolicy:
    """The OT/IK prior behind the ActingPolicy interface (a row of the table)."""

    source = "otik-prior"

    def __init__(self, embodiment: str = "shadow") -> None:
        from sim_training.env.observation import ObservationLayout
        from sim_training.fingering.prior import OTIKPrior
        from sim_training.models.scene import build_scene

        self.embodiment = get_embodiment(embodiment)
        self.prior = OTIKPrior(build_scene(self.embodiment))
        self.source = f"otik-prior ({embodiment})"
        self.meta = {"observation_layout": ObservationLayout.for_embodiment(self.embodiment).to_dict()}

    def reset(self) -> None:
        self.prior.reset()

    def act(self, obs: np.ndarray) -> np.ndarray:
        return np.clip(self.prior.act(obs), -1.0, 1.0)


def _evaluate(piece_path: str, policy: Any) -> dict[str, Any]:
    from sim_training.imitation.evaluate import evaluate_policy

    r = evaluate_policy(piece_path, policy)
    return {k: r[k] for k in ("f1", "onset_f1", "precision", "recall", "steps", "do_nothing_f1")}


def run_generalist_bench(cfg: GeneralistBenchConfig) -> GeneralistBenchResult:
    """Play every policy (and the prior) on the seen / unseen pieces; see the module docstring."""
    from sim_training.music.corpus import load_manifest

    t0 = time.perf_counter()
    entries = _parse(cfg.policies)
    if not entries:
        raise ValueError("give at least one --policy NAME=PATH")
    manifest = load_manifest()
    rng = np.random.default_rng(cfg.seed)
    test_ids = sorted(p.id for p in manifest.pieces("test"))
    n_unseen = len(test_ids) if cfg.unseen_pieces <= 0 else min(cfg.unseen_pieces, len(test_ids))
    unseen = sorted(rng.choice(test_ids, size=n_unseen, replace=False).tolist())
    metas = {name: _checkpoint_meta(path) for name, path in entries}
    seen: dict[str, list[str]] = {}
    for name, _ in entries:
        meta = metas[name]
        pool = sorted(meta.get("train_pieces") or []) if meta else []
        known = {p.id for p in manifest.pieces()}
        pool = [p for p in pool if p in known]
        pick: list[str] = (np.random.default_rng(cfg.seed).choice(pool, size=min(cfg.seen_pieces, len(pool)),
                                                                   replace=False).tolist() if pool else [])
        seen[name] = sorted(str(p) for p in pick)
    rows: list[dict[str, Any]] = []
    policies: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="omnipianist-bench-gen-") as tmp:
        for name, path in entries:
            policies[name] = Policy.load(_as_onnx(path, Path(tmp), name))
        emb_keys = {p.embodiment.key for p in policies.values()}
        if len(emb_keys) > 1:
            raise ValueError(f"policies for different embodiments in one table: {sorted(emb_keys)}")
        emb_key = emb_keys.pop()
        policies["prior"] = _PriorPolicy(emb_key)
        jobs = [(name, "unseen", pid) for name in policies for pid in unseen]
        jobs += [(name, "seen", pid) for name in policies if name != "prior" for pid in seen[name]]
        jobs += [("prior", "seen", pid) for pid in sorted(set().union(*seen.values()))]
        for name, split, pid in progress(jobs, desc="bench generalist", disable=not cfg.show_progress):
            r = _evaluate(str(manifest.corpus_path(pid)), policies[name])
            rows.append({"policy": name, "split": split, "piece": pid, **r})
    if cfg.plans:
        for split, pieces in (("unseen", unseen), ("seen", sorted(set().union(*seen.values())))):
            rows += [{"policy": "planner", "split": split, **r} for r in planner_rows(cfg.plans, pieces, emb_key)]

    info = {name: {"path": path, "model": (metas[name] or {}).get("model", "onnx"),
                   "formulation": (metas[name] or {}).get("formulation", "action"),
                   "residual_on_prior": bool((metas[name] or {}).get("residual_on_prior", False)),
                   "train_pieces": len((metas[name] or {}).get("train_pieces") or []) if metas[name] else None,
                   "step": (metas[name] or {}).get("step")} for name, path in entries}
    out = summarize(rows, info, seen, unseen, cfg.target_policy or entries[0][0], emb_key)
    out = replace(out, wall_s=round(time.perf_counter() - t0, 1))
    if cfg.out:
        save_json(to_json(out), Path(cfg.out))
    return out


def summarize(rows: list[dict[str, Any]], info: dict[str, dict[str, Any]], seen: dict[str, list[str]],
              unseen: list[str], target: str, embodiment: str = "shadow") -> GeneralistBenchResult:
    """The table and the target checks from per-piece ``rows`` (``info``: per policy path, model,
    residual_on_prior, train_pieces, step; ``seen``: per policy its seen pieces)."""

    def mean(name: str, split: str, pieces: list[str] | None = None, key: str = "f1") -> float | None:
        vals = [r[key] for r in rows if r["policy"] == name and r["split"] == split
                and (pieces is None or r["piece"] in pieces)]
        return float(np.mean(vals)) if vals else None

    names = list(info)
    table = {}
    prior_by_piece = {r["piece"]: r["f1"] for r in rows if r["policy"] == "prior" and r["split"] == "unseen"}
    extra = ["planner"] if any(r["policy"] == "planner" for r in rows) else []
    for name in [*names, "prior", *extra]:
        i = info.get(name, {"path": "otik-prior" if name == "prior" else "plan.json", "model": name,
                            "formulation": name, "residual_on_prior": False, "train_pieces": None, "step": None})
        table[name] = {
            **i,
            "unseen_f1": mean(name, "unseen"), "unseen_onset_f1": mean(name, "unseen", key="onset_f1"),
            "seen_f1": mean(name, "seen", seen.get(name)) if name != "prior" else mean(name, "seen"),
            "seen_onset_f1": mean(name, "seen", seen.get(name), "onset_f1") if name != "prior" else None,
            "prior_unseen_f1": mean("prior", "unseen"),
            "prior_seen_f1_same_pieces": mean("prior", "seen", seen.get(name)) if name != "prior" else None,
        }
        mine = {r["piece"]: r["f1"] for r in rows if r["policy"] == name and r["split"] == "unseen"}
        both = [p for p in mine if p in prior_by_piece]
        table[name]["unseen_pieces_played"] = len(mine)
        table[name]["unseen_above_prior_fraction"] = (
            float(np.mean([mine[p] > prior_by_piece[p] for p in both])) if both and name != "prior" else None)
        if name == "planner":  # only the pieces it planned: its prior on those
            table[name]["prior_unseen_f1"] = mean("prior", "unseen", both)
            table[name]["prior_seen_f1_same_pieces"] = mean(
                "prior", "seen", [r["piece"] for r in rows if r["policy"] == "planner" and r["split"] == "seen"])
    if target not in table:
        raise ValueError(f"target_policy {target!r} is not one of {list(table)}")
    t = table[target]
    gain_target = (t["prior_unseen_f1"] or 0.0) + UNSEEN_GAIN_TARGET
    frac = t["unseen_above_prior_fraction"]
    checks: dict[str, tuple[float | None, float | None, bool]] = {
        "unseen_f1_over_prior": (t["unseen_f1"], round(gain_target, 4), (t["unseen_f1"] or 0.0) >= gain_target),
        "unseen_above_prior_fraction": (frac, BEAT_PRIOR_FRACTION_TARGET, (frac or 0.0) >= BEAT_PRIOR_FRACTION_TARGET),
        "seen_f1": (t["seen_f1"], SEEN_F1_TARGET, (t["seen_f1"] or 0.0) >= SEEN_F1_TARGET),
    }
    if embodiment in UNSEEN_F1_TARGET:
        floor = UNSEEN_F1_TARGET[embodiment]
        checks["unseen_f1"] = (t["unseen_f1"], floor, (t["unseen_f1"] or 0.0) >= floor)
    most = max((table[n]["train_pieces"] or 0) for n in names)
    for residual in (False, True):  # FMT vs BC-MLP of the same formulation (whole action / residual on the prior)
        same = [n for n in names if table[n]["residual_on_prior"] == residual and table[n]["train_pieces"] == most
                and table[n].get("formulation") != "knobs"]
        fmts = [n for n in same if table[n]["model"] == "fmt"]
        bcs = [n for n in same if table[n]["model"] == "bc"]
        if fmts and bcs:
            best_fmt = max(fmts, key=lambda n: table[n]["unseen_f1"] or 0.0)
            best_bc = max(bcs, key=lambda n: table[n]["unseen_f1"] or 0.0)
            key = "fmt_beats_bc_unseen" + ("_residual" if residual else "")
            checks[key] = (table[best_fmt]["unseen_f1"], table[best_bc]["unseen_f1"],
                           (table[best_fmt]["unseen_f1"] or 0.0) > (table[best_bc]["unseen_f1"] or 0.0))
    return GeneralistBenchResult(
        benchmark="generalist", embodiment=embodiment, target_policy=target, unseen_pieces=unseen,
        seen_pieces=seen, policies=info, table=table, rows=rows,
        targets={k: Target(measured=None if v[0] is None else round(v[0], 4), target=v[1], ok=bool(v[2]))
                 for k, v in checks.items()},
        ok=all(v[2] for v in checks.values()),
    )


def merge_results(results: Sequence[GeneralistBenchResult], target: str) -> GeneralistBenchResult:
    """One table from several runs on the same unseen pieces (e.g. models benchmarked at different times;
    files: :meth:`GeneralistBenchResult.from_json`)."""
    unseen = results[0].unseen_pieces
    if any(r.unseen_pieces != unseen for r in results):
        raise ValueError("results were measured on different unseen pieces (use the same --unseen-pieces/--seed)")
    rows: list[dict[str, Any]] = []
    keys: set[tuple[str, str, str]] = set()
    info: dict[str, dict[str, Any]] = {}
    seen: dict[str, list[str]] = {}
    for r in results:
        info.update(r.policies or {n: {k: t[k] for k in ("path", "model", "residual_on_prior", "train_pieces", "step")}
                                   for n, t in r.table.items() if n != "prior"})
        seen.update(r.seen_pieces)
        for row in r.rows:
            k = (row["policy"], row["split"], row["piece"])
            if k not in keys:
                keys.add(k)
                rows.append(row)
    out = summarize(rows, info, seen, unseen, target)
    return replace(out, wall_s=round(sum(r.wall_s for r in results), 1))


def format_table(r: GeneralistBenchResult) -> str:
    """Markdown table of the result (for cards and the README)."""
    lines = ["| policy | model | predicts | train pieces | steps | seen F1 (prior) | unseen F1 | unseen onset F1 | "
             "prior on the same unseen | unseen above prior |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, t in r.table.items():
        def f(v: Any) -> str:
            return "–" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))
        predicts = t.get("formulation") or ("residual" if t["residual_on_prior"] else "action")
        seen = f(t["seen_f1"]) + (f" ({f(t['prior_seen_f1_same_pieces'])})" if t.get("prior_seen_f1_same_pieces")
                                  is not None else "")
        frac = t.get("unseen_above_prior_fraction")
        lines.append(f"| {name} | {t['model']} | {predicts} | {f(t['train_pieces'])} | {f(t['step'])} | {seen} | "
                     f"{f(t['unseen_f1'])} ({t.get('unseen_pieces_played', '–')}) | {f(t['unseen_onset_f1'])} | "
                     f"{f(t['prior_unseen_f1'])} | {'–' if frac is None else f'{100 * frac:.0f} %'} |")
    return "\n".join(lines)


def format_bench(r: GeneralistBenchResult) -> str:
    """The table, then each target measured."""
    targets = "; ".join(f"{k} {v.measured} (target {v.target}) {'ok' if v.ok else 'MISSED'}"
                        for k, v in r.targets.items())
    return f"{format_table(r)}\n\n{targets}; {r.wall_s:.0f} s"


BENCH_GENERALIST: Command[GeneralistBenchConfig, GeneralistBenchResult] = Command(
    "generalist", "generalists (FMT, BC-MLP) vs the prior: F1 on seen and unseen corpus pieces",
    GeneralistBenchConfig, run_generalist_bench, format_bench, exit_code=ok_or_1)


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - thin wrapper
    return command_main(BENCH_GENERALIST, argv, prog="omnipianist bench generalist")
