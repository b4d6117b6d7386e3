"""``omnipianist corpus build`` / ``corpus list``: build or summarise the corpus (:data:`COMMANDS`)."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omnipianist.command import Command
from omnipianist.command import build_parser as build_command_parser
from omnipianist.errors import OmnipianistError
from sim_training.music.corpus.build import build_corpus
from sim_training.music.corpus.constants import (
    MANIFEST_NAME,
    MUSIC21_REQUIREMENT,
    SPLITS,
)
from sim_training.music.corpus.manifest import CorpusPiece, Manifest, load_manifest

PROG = "python -m sim_training.music.corpus"


# ---------------------------------------------------------------------------------------- build
@dataclass(frozen=True)
class CorpusBuildConfig:
    out: Path = field(metadata={"help": "output folder"})
    max_pieces: int | None = None
    """stop after this many clips"""
    clip_s: float = 30.0
    """longest clip, seconds"""
    seed: int = 0
    """seed of the work sampling"""
    workers: int = 2
    """parsing processes"""


@dataclass(frozen=True)
class CorpusSummary:
    n_pieces: int
    counts_per_split: dict[str, int]
    counts_per_composer: dict[str, int]
    n_failures: int
    failures: list[dict[str, Any]]
    stats: dict[str, Any]
    manifest: str

    @classmethod
    def of(cls, m: Manifest) -> CorpusSummary:
        return cls(n_pieces=len(m.entries), counts_per_split=m.counts_per_split,
                   counts_per_composer=m.counts_per_composer, n_failures=len(m.failures), failures=m.failures,
                   stats=m.stats, manifest=str(m.root / MANIFEST_NAME))


def _generated_by(args: CorpusBuildConfig) -> str:
    """The command line that builds (from ``sys.argv``; rebuilt from the config when called in-process)."""
    if "build" in sys.argv:
        return " ".join([PROG, *sys.argv[sys.argv.index("build"):]])
    flags = [f"--out {shlex.quote(str(args.out))}", f"--clip-s {args.clip_s}", f"--seed {args.seed}",
             f"--workers {args.workers}", *([f"--max-pieces {args.max_pieces}"] if args.max_pieces is not None else [])]
    return " ".join([PROG, "build", *flags])


def run_build(cfg: CorpusBuildConfig) -> CorpusSummary:
    m = build_corpus(cfg.out, max_pieces=cfg.max_pieces, clip_s=cfg.clip_s, seed=cfg.seed, workers=cfg.workers,
                     generated_by=_generated_by(cfg))
    return CorpusSummary.of(m)


def format_build(s: CorpusSummary) -> str:
    return "\n".join([f"{s.n_pieces} pieces in {s.manifest} ({s.stats['build_wall_s']} s)",
                      "per split: " + ", ".join(f"{k} {v}" for k, v in s.counts_per_split.items()),
                      "per composer: " + ", ".join(f"{k} {v}" for k, v in s.counts_per_composer.items()),
                      f"failures: {s.n_failures}",
                      *(f"  {f['source']}: {f['error']}" for f in s.failures)])


BUILD = Command("build", f"build the corpus from music21's bundled corpus (needs {MUSIC21_REQUIREMENT})",
                CorpusBuildConfig, run_build, format_build)


# ---------------------------------------------------------------------------------------- list
@dataclass(frozen=True)
class CorpusListConfig:
    split: str | None = field(default=None, metadata={"choices": SPLITS})
    """only this split"""
    manifest: Path | None = None
    """manifest file (default: the shipped one)"""


@dataclass(frozen=True)
class CorpusList:
    manifest: str
    pieces: list[CorpusPiece]


def run_list(cfg: CorpusListConfig) -> CorpusList:
    m = load_manifest(cfg.manifest)
    return CorpusList(manifest=str(m.root / MANIFEST_NAME), pieces=m.pieces(cfg.split))


def format_list(r: CorpusList) -> str:
    return "\n".join([*(f"{p.id:48s} {p.split:10s} {p.composer:16s} {p.duration_s:6.1f} s {p.n_notes:5d} notes"
                        for p in r.pieces), f"{len(r.pieces)} pieces"])


LIST = Command("list", "list the clips of a corpus", CorpusListConfig, run_list, format_list)

COMMANDS = (BUILD, LIST)
"""``omnipianist corpus ...``."""


# ---------------------------------------------------------------------------------------- standalone
def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The ``build`` / ``list`` argument parser (added to ``parser`` when given)."""
    parser = parser or argparse.ArgumentParser(prog=PROG, description="Corpus of two-hand piano clips.")
    return build_command_parser(parser, COMMANDS, dest="corpus_cmd")


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``build --out DIR [--max-pieces N] [--clip-s S] [--json]`` or ``list [--split S] [--json]``."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        return int(args.func(args))
    except OmnipianistError as exc:
        print(f"corpus: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
