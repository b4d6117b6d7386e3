"""``omnipianist collect`` and ``omnipianist dataset-card``.

:data:`COLLECT` and :data:`DATASET_CARD` are :class:`omnipianist.command.Command` objects (collect's config:
:class:`sim_training.dataset.collect.CollectCommandConfig`); :func:`main` runs them standalone
(``python -m sim_training.dataset.cli collect ...``).

``collect SOURCE [SOURCE ...] --out STORE``: each SOURCE is a directory of experts (or one expert
directory) or the word ``prior`` or ``planner``. Experts label their own pieces; ``prior`` and
``planner`` label the corpus pieces of ``--split`` (or ``--pieces``), skipping by default the pieces
that experts label (in this run or already in the store), so one store mixes them and records which
label came from where. ``planner`` is the receding-horizon planner (the expert): rollouts re-plan
from wherever the action noise left them, relabelling re-plans from the student's states.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from omnipianist.command import Command, to_json
from omnipianist.command import build_parser as build_command_parser
from sim_training.dataset.card import card_markdown, write_card
from sim_training.dataset.store import DatasetReader, is_local, local_path

if TYPE_CHECKING:
    from sim_training.dataset.collect import CollectCommandConfig, CollectResult, CollectTask, StudentFactory

PRIOR_SOURCE = "prior"
PLANNER_SOURCE = "planner"


def _planner_config(text: str) -> str:
    """Canonical JSON of PlannerConfig fields; SystemExit naming what is wrong."""
    from sim_training.experts.planner import PlannerConfig, PlannerError

    if not text:
        return ""
    try:
        fields = json.loads(text)
        PlannerConfig(**fields).check()
    except (ValueError, TypeError, PlannerError) as exc:
        raise SystemExit(f"--planner-config {text!r}: not a JSON object of PlannerConfig fields ({exc})") from exc
    return json.dumps(fields, sort_keys=True)


def _tasks(args: CollectCommandConfig, prior_config: str) -> tuple[list[CollectTask], list[str]]:
    from sim_training.dataset.collect import CollectTask
    from sim_training.dataset.labellers import EmbodimentRef, LabellerSpec, find_experts, resolve_piece
    from sim_training.music.corpus import load_manifest

    manifest = load_manifest(args.manifest) if args.manifest is not None else None
    wanted = None
    if args.pieces:
        wanted = {resolve_piece(p, manifest).piece_id for p in args.pieces}
    tasks: list[CollectTask] = []
    notes: list[str] = []
    use_prior = use_planner = False
    for src in args.sources:
        if src == PRIOR_SOURCE:
            use_prior = True
            continue
        if src == PLANNER_SOURCE:
            use_planner = True
            continue
        for info in find_experts(src, manifest):
            if wanted is None or info.piece.piece_id in wanted:
                tasks.append(CollectTask(info.piece, info.spec()))
    if use_prior or use_planner:
        emb = EmbodimentRef(args.embodiment, args.action_set, args.forearm_z)
        if args.pieces:
            pieces = [resolve_piece(p, manifest) for p in args.pieces]
        else:
            m = manifest if manifest is not None else load_manifest()
            from sim_training.dataset.labellers import PieceRef

            pieces = [PieceRef(p.id, str(m.corpus_path(p.id))) for p in m.pieces(args.split, args.max_pieces)]
        if args.skip_pieces_with_experts:
            expert_pieces = {t.piece.piece_id for t in tasks}
            exists = (local_path(args.out) / "zarr.json").is_file() if is_local(args.out) else False
            if exists or not is_local(args.out):
                try:
                    r = DatasetReader(args.out)
                    expert_pieces |= set(r.meta["piece_id"][r.select(label_source=["expert", "expert-relabel"])])
                except (FileNotFoundError, ValueError):
                    pass
            kept = [p for p in pieces if p.piece_id not in expert_pieces]
            if len(kept) < len(pieces):
                notes.append(f"prior skips {len(pieces) - len(kept)} pieces that experts label")
            pieces = kept
        if use_prior:
            spec = LabellerSpec("prior", emb, "", prior_config)
            tasks += [CollectTask(p, spec) for p in pieces]
        if use_planner:
            planner_config = _planner_config(args.planner_config)
            spec = LabellerSpec("planner", emb, "", prior_config, planner_config=planner_config)
            tasks += [CollectTask(p, spec) for p in pieces]
    return tasks, notes


def _student_factory(args: CollectCommandConfig, tasks: Sequence[CollectTask], prior_config: str) -> StudentFactory:
    from sim_training.dataset.labellers import NoisyPriorStudent

    if args.student == "prior":
        emb = tasks[0].labeller.embodiment
        noise = args.student_noise_std
        return lambda rnd, url: NoisyPriorStudent(emb, noise, prior_config, seed=rnd)
    mod, _, fn = args.student.partition(":")
    if not fn:
        raise SystemExit(f"--student {args.student!r}: expected 'prior' or 'module:function'")
    try:
        return getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError) as exc:
        raise SystemExit(f"--student {args.student!r}: {exc}") from exc


def _command(sub: str, values: Mapping[str, Any]) -> str:
    """The command line that ran ``sub`` (from sys.argv; rebuilt from ``values``, the parsed arguments or the
    config, when called in-process)."""
    if sub in sys.argv:
        return " ".join(["omnipianist", *(shlex.quote(a) for a in sys.argv[sys.argv.index(sub):])])
    return f"omnipianist {sub} " + " ".join(f"{k}={v!r}" for k, v in sorted(values.items()) if k != "func")


@dataclass(frozen=True)
class CollectCommandResult:
    """``omnipianist collect``'s result: :class:`~sim_training.dataset.collect.CollectResult`'s keys, then
    ``notes`` and ``card`` (the card's path; left out with ``--no-card``)."""

    result: CollectResult = field(metadata={"flatten": True})
    notes: list[str]
    card: str | None = field(default=None, metadata={"omit_none": True})


def run_collect(args: CollectCommandConfig) -> CollectCommandResult:
    """Collect into ``args.out``, write the card; the summary."""
    from sim_training.dataset.collect import CollectConfig, collect

    prior_config = ""
    if args.prior_config is not None:
        try:
            prior_config = json.dumps(json.loads(args.prior_config.read_text()), sort_keys=True)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"{args.prior_config}: not a JSON object of PriorConfig fields ({exc})") from exc
    try:
        cfg = CollectConfig(mode=args.mode, episodes_per_piece=args.episodes_per_piece,
                            noise_std=tuple(args.noise_std), seed=args.seed, max_steps=args.max_steps, ray=args.ray,
                            workers=args.workers, rounds=args.rounds, tolerance=args.tolerance,
                            prior_config=prior_config, show_progress=args.show_progress)
        tasks, notes = _tasks(args, prior_config)
    except (ValueError, FileNotFoundError) as exc:
        raise SystemExit(f"collect: {exc}") from exc
    if not tasks:
        raise SystemExit("collect: no pieces to label (check the sources, --split/--pieces, --skip-pieces-with-experts)")
    factory = _student_factory(args, tasks, prior_config) if args.mode == "relabel" else None
    command = _command("collect", asdict(args))
    res = collect(args.out, tasks, cfg, student_factory=factory, command=command)
    card = write_card(args.out, generated_by=command)["card_path"] if args.card else None
    return CollectCommandResult(res, notes, card)


def format_collect(r: CollectCommandResult) -> str:
    res = r.result
    lines = [f"{res.store}: +{res.episodes_added} episodes, +{res.steps_added} steps "
             f"({res.episodes_skipped} already there) in {res.wall_s:.1f} s ({res.steps_per_s:.0f} steps/s); "
             f"store now {res.n_episodes} episodes, {res.n_steps} steps"]
    if res.f1_mean is not None:
        lines.append(f"  F1 of the added episodes {res.f1_mean:.3f} (do nothing {res.do_nothing_f1_mean:.3f}); "
                     f"by label source {res.episodes_by_label_source}")
    for rnd in res.rounds or []:
        lines.append(f"  round {rnd['round']}: student F1 {rnd['student_f1_mean']:.3f} vs labeller "
                     f"{rnd['labeller_f1_mean']:.3f} on {rnd['pieces']} pieces; {rnd['pieces_done']} done")
    lines += [f"  {n}" for n in r.notes]
    if r.card:
        lines.append(f"  card: {r.card}")
    return "\n".join(lines)


COLLECT: Command[CollectCommandConfig, CollectCommandResult] = Command(
    "collect", "collect expert/prior-labelled episodes into a zarr dataset (RP1M++)",
    "sim_training.dataset.collect:CollectCommandConfig", run_collect, format_collect, positionals=("sources",))


@dataclass(frozen=True)
class DatasetCardConfig:
    store: str
    """dataset store (directory or fsspec URL)"""
    out: str | None = None
    """Markdown path (default: <store>.CARD.md)"""
    png: bool = field(default=True, metadata={"flags": ("--no-png",), "action": "store_false",
                                              "help": "skip the F1 histogram PNG"})


@dataclass(frozen=True, kw_only=True)
class DatasetCardResult:
    """``omnipianist dataset-card``'s result: :func:`sim_training.dataset.card.dataset_card`'s keys in its order,
    then the files :func:`~sim_training.dataset.card.write_card` wrote. ``None`` values stay in the JSON."""

    store: str
    schema_version: int
    embodiment: str
    obs_dim: int
    action_dim: int
    control_dt: float
    pieces: int
    episodes: int
    steps: int
    hours_of_motion: float
    f1_mean: float | None
    f1_median: float | None
    note_step_f1_mean: float | None
    do_nothing_f1_mean: float | None
    f1_histogram: dict[str, list[Any]]
    """``edges`` (the bins' edges) and ``counts`` (episodes per bin)."""
    by_label_source: dict[str, dict[str, Any]]
    """Label source -> episodes, steps, pieces, hours, f1_mean, note_step_f1_mean, do_nothing_f1_mean."""
    pieces_by_labeller: dict[str, int]
    """``expert_only``, ``prior_only``, ``both``: pieces by who labelled them."""
    by_mode: dict[str, dict[str, Any]]
    """Collect mode -> the same groups as ``by_label_source``."""
    by_round: dict[int, int]
    """Relabel round -> episodes."""
    by_noise_std: dict[float, int]
    """Action-noise std -> episodes."""
    size_bytes: int | None
    bytes_per_1k_steps: float | None
    generated_by: list[str]
    """The commands of the collect runs that made the store."""
    collect_runs: list[dict[str, Any]]
    card_generated_by: str
    card_generated: str
    card_path: str
    """The Markdown written."""
    png_path: str | None
    """The F1 histogram PNG (None: not written)."""

    def card(self) -> dict[str, Any]:
        """The card as :func:`~sim_training.dataset.card.dataset_card`'s dict (with the two paths)."""
        out: dict[str, Any] = to_json(self)
        return out


def run_dataset_card(cfg: DatasetCardConfig) -> DatasetCardResult:
    """Write the card next to the store; returns it (:func:`sim_training.dataset.card.write_card`)."""
    try:
        card = write_card(cfg.store, cfg.out, png=cfg.png, generated_by=_command("dataset-card", asdict(cfg)))
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"dataset-card: {exc}") from exc
    return DatasetCardResult(**card)


def format_dataset_card(r: DatasetCardResult) -> str:
    return card_markdown(r.card()) + f"\n(written to {r.card_path})"


DATASET_CARD: Command[DatasetCardConfig, DatasetCardResult] = Command(
    "dataset-card", "the dataset card (pieces, episodes, steps, hours, F1 histogram)",
    DatasetCardConfig, run_dataset_card, format_dataset_card, positionals=("store",))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim_training.dataset.cli", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    build_command_parser(parser, (COLLECT, DATASET_CARD))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
