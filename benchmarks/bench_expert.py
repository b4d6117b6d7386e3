"""The expert vs the prior: `omnipianist bench expert [MIDI_OR_FOLDER ...] --json` (resumable; exit 1
when a target is missed).

Default: the receding-horizon planner (budget 24) on all 77 test clips for Shadow and LEAP, the prior
on the same clips, per-piece CEM (6 clips x 2 min) and residual DroQ (2 clips x 6 min) beside it,
and F1 vs budget (6 clips). Extra MIDI files or folders (e.g. RoboPianist's shipped
``rousseau/nocturne-trimmed.mid``, from ``pip download --no-deps robopianist==1.0.10``) are planned
too; nothing is downloaded by the benchmark.
"""

import sys

from omnipianist.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "expert", "--json", *sys.argv[1:]]))
