"""``omnipianist corpus``: build or summarise the corpus."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from omnipianist.errors import OmnipianistError
from sim_training.music.corpus.build import build_corpus
from sim_training.music.corpus.constants import (
    MANIFEST_NAME,
    MUSIC21_REQUIREMENT,
    SPLITS,
)
from sim_training.music.corpus.manifest import Manifest, load_manifest

# ----------------------------------------------------------------------------------------------
# CLI


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The ``build`` / ``list`` argument parser (added to ``parser`` when given)."""
    parser = parser or argparse.ArgumentParser(
        prog="python -m sim_training.music.corpus", description="Corpus of two-hand piano clips."
    )
    sub = parser.add_subparsers(dest="corpus_cmd", required=True)
    b = sub.add_parser("build", help=f"build the corpus from music21's bundled corpus (needs {MUSIC21_REQUIREMENT})")
    b.add_argument("--out", required=True, type=Path, help="output folder")
    b.add_argument("--max-pieces", type=int, default=None, help="stop after this many clips")
    b.add_argument("--clip-s", type=float, default=30.0, help="longest clip, seconds (default: %(default)s)")
    b.add_argument("--seed", type=int, default=0, help="seed of the work sampling (default: %(default)s)")
    b.add_argument("--workers", type=int, default=2, help="parsing processes (default: %(default)s)")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    ls = sub.add_parser("list", help="list the clips of a corpus")
    ls.add_argument("--split", choices=SPLITS, default=None, help="only this split")
    ls.add_argument("--manifest", type=Path, default=None, help="manifest file (default: the shipped one)")
    ls.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _summary(m: Manifest) -> dict[str, Any]:
    return {
        "n_pieces": len(m.entries),
        "counts_per_split": m.counts_per_split,
        "counts_per_composer": m.counts_per_composer,
        "n_failures": len(m.failures),
        "failures": m.failures,
        "stats": m.stats,
        "manifest": str(m.root / MANIFEST_NAME),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``build --out DIR [--max-pieces N] [--clip-s S] [--json]`` or ``list [--split S] [--json]``."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    return run(build_parser().parse_args(args_list), args_list)


def run(args: argparse.Namespace, args_list: Sequence[str] = ()) -> int:
    """Carry out parsed ``build``/``list`` arguments (the ``omnipianist corpus`` command calls this)."""
    try:
        if args.corpus_cmd == "build":
            m = build_corpus(
                args.out,
                max_pieces=args.max_pieces,
                clip_s=args.clip_s,
                seed=args.seed,
                workers=args.workers,
                generated_by=" ".join(["python -m sim_training.music.corpus", *args_list]),
            )
            s = _summary(m)
            if args.json:
                print(json.dumps(s))
            else:
                print(f"{s['n_pieces']} pieces in {s['manifest']} ({s['stats']['build_wall_s']} s)")
                print("per split: " + ", ".join(f"{k} {v}" for k, v in s["counts_per_split"].items()))
                print("per composer: " + ", ".join(f"{k} {v}" for k, v in s["counts_per_composer"].items()))
                print(f"failures: {s['n_failures']}")
                for f in m.failures:
                    print(f"  {f['source']}: {f['error']}")
            return 0
        m = load_manifest(args.manifest)
        pieces = m.pieces(args.split)
        if args.json:
            print(json.dumps({"manifest": str(m.root / MANIFEST_NAME), "pieces": [asdict(p) for p in pieces]}))
        else:
            for p in pieces:
                print(f"{p.id:48s} {p.split:10s} {p.composer:16s} {p.duration_s:6.1f} s {p.n_notes:5d} notes")
            print(f"{len(pieces)} pieces")
        return 0
    except OmnipianistError as exc:
        print(f"corpus: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
