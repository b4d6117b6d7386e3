"""Can a critic tell which of the planner's knob candidates win, from the observation? (exit 1 when it cannot
recover half of the planner's margin over a random pick on held-out pieces.)

Default: the committed Shadow planner experts that kept their candidates (models/experts/plans/shadow/*/
candidates.npz). Pass a plans folder to use others; ``--help`` for the flags.
"""

import sys
from pathlib import Path

from omnipianist.cli import main

ROOT = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    args = sys.argv[1:]
    plans = [] if args and not args[0].startswith("-") else [str(ROOT / "models/experts/plans/shadow")]
    sys.exit(main(["bench", "knob-critic", "--json", *plans, *args]))
