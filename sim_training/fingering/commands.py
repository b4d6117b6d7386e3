"""``omnipianist prior PIECE``, ``omnipianist fingering PIECE`` and ``omnipianist bench prior``: configs, runs,
results, text."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from omnipianist.command import Command, ok_or_1
from omnipianist.media import write_video
from omnipianist.plots import plot_piano_roll
from sim_training.env.commands import HandChoice
from sim_training.fingering.bench import PriorBenchConfig, run_prior_bench
from sim_training.fingering.prior import PriorConfig


def _play(piece: str, hand: HandChoice, prior: PriorConfig, stretch: float, video: bool = False) -> Any:
    from sim_training.fingering.piece import play_with_prior

    return play_with_prior(piece, hand.get(), prior, video=video, stretch=stretch)


@dataclass(frozen=True)
class PieceConfig:
    """What ``prior`` and ``fingering`` share: the piece, the hands, the tempo, the piano-roll PNG."""

    piece: str
    """built-in piece name or a MIDI file"""
    hand: HandChoice = field(default_factory=HandChoice, metadata={"prefix": ""})
    stretch: float = 1.0
    """time stretch"""
    plot: str | None = None
    """write a PNG piano roll (score vs played, by finger)"""


# ---------------------------------------------------------------------------------------- prior
@dataclass(frozen=True)
class PriorCommandConfig(PieceConfig):
    video: str | None = None
    """write an MP4 of the hands playing"""
    prior: PriorConfig = field(default_factory=PriorConfig, metadata={"prefix": ""})


@dataclass(frozen=True)
class PriorResult:
    piece: str
    summary: dict[str, Any] = field(metadata={"flatten": True})
    """:meth:`PriorRun.summary <sim_training.fingering.piece.PriorRun.summary>`: embodiment, metrics, steps,
    prior step time percentiles, steps/s, the prior's counters."""
    video: str | None = field(default=None, metadata={"omit_none": True})
    plot: str | None = field(default=None, metadata={"omit_none": True})


def run_prior(cfg: PriorCommandConfig) -> PriorResult:
    """Play a piece with the zero-training OT/IK prior and measure it."""
    run = _play(cfg.piece, cfg.hand, cfg.prior, cfg.stretch, video=bool(cfg.video))
    m = run.metrics
    summary = {**run.summary(), "f1": m["f1"], "precision": m["precision"], "recall": m["recall"],
               "onset_f1": m["onset_f1"], "steps": int(m["steps"])}
    video = plot = None
    if cfg.video:
        video = write_video(run.frames, cfg.video, fps=20)
    if cfg.plot:
        plot = plot_piano_roll(run.roll, run.active, cfg.plot, fingering=run.notes,
                               title=f"{cfg.piece} — OT/IK prior ({run.embodiment}) F1 {m['f1']:.3f}")
    return PriorResult(piece=cfg.piece, summary=summary, video=video, plot=plot)


def format_prior(r: PriorResult) -> str:
    m = r.summary
    return (f"{r.piece} ({m['embodiment']}, OT/IK prior): F1 {m['f1']:.3f} (P {m['precision']:.3f} "
            f"R {m['recall']:.3f}; note steps {m['note_step_f1']:.3f}; onset F1 {m['onset_f1']:.3f}; "
            f"do-nothing F1 {m['do_nothing_f1']:.3f}); {int(m['steps'])} steps, "
            f"{m['steps_per_s']:.0f} steps/s, prior step p99 {m['prior_step_ms_p99']:.2f} ms")


PRIOR = Command("prior", "play a piece with the zero-training OT/IK prior", PriorCommandConfig, run_prior,
                format_prior, positionals=("piece",))


# ---------------------------------------------------------------------------------------- fingering
@dataclass(frozen=True)
class FingeringConfig(PieceConfig):
    out: str | None = None
    """write the fingering CSV here (PNG beside it)"""
    show: int = 20
    """notes to print"""
    prior: PriorConfig = field(default_factory=PriorConfig, metadata={"prefix": ""})


@dataclass(frozen=True)
class FingeringResult:
    piece: str
    embodiment: str
    notes: int
    dropped: int
    played: int
    by_finger: dict[str, int]
    csv: str | None
    png: str | None
    fingering: list[dict[str, Any]] | None
    """Every note's fingering (when no CSV was written)."""
    note_list: list[Any] = field(default_factory=list, metadata={"json": False})
    show: int = field(default=20, metadata={"json": False})


def run_fingering(cfg: FingeringConfig) -> FingeringResult:
    """A finger (hand, digit) for every note of a piece, from the prior playing it in simulation."""
    from sim_training.fingering.piece import write_fingering_csv

    run = _play(cfg.piece, cfg.hand, cfg.prior, cfg.stretch)
    notes = run.notes
    if cfg.out:
        write_fingering_csv(notes, cfg.out)
    png = cfg.plot or (str(cfg.out).rsplit(".", 1)[0] + ".png" if cfg.out else None)
    if png:
        plot_piano_roll(run.roll, run.active, png, fingering=notes, title=f"{cfg.piece} — fingering ({run.embodiment})")
    counts = Counter(f"{n.hand[0].upper()}{n.digit}" if n.hand else "dropped" for n in notes)
    return FingeringResult(piece=cfg.piece, embodiment=run.embodiment, notes=len(notes),
                           dropped=sum(n.hand is None for n in notes), played=sum(n.played for n in notes),
                           by_finger=dict(sorted(counts.items())), csv=cfg.out, png=png,
                           fingering=[n.__dict__ for n in notes] if not cfg.out else None,
                           note_list=list(notes), show=cfg.show)


def format_fingering(r: FingeringResult) -> str:
    notes, show = r.note_list, r.show
    return "\n".join([f"{r.piece}: {len(notes)} notes, {r.played} played, {r.dropped} dropped",
                      *(f"  {n.onset_s:7.2f}s  pitch {n.pitch:3d}  "
                        f"{(n.hand or '-'):5s} {n.digit or '-'}  {'played' if n.played else 'MISSED'}"
                        for n in notes[:show]),
                      *([f"  ... ({len(notes) - show} more; --out F.csv for all)"] if len(notes) > show else []),
                      *([f"  wrote {r.csv}"] if r.csv else []), *([f"  wrote {r.png}"] if r.png else [])])


FINGERING = Command("fingering", "a finger for every note of a piece (CSV + PNG)", FingeringConfig, run_fingering,
                    format_fingering, positionals=("piece",))


# ---------------------------------------------------------------------------------------- bench prior
BENCH_PRIOR = Command("prior", "prior F1 on built-in and corpus pieces; OT and prior step p99", PriorBenchConfig,
                      run_prior_bench, exit_code=ok_or_1)
