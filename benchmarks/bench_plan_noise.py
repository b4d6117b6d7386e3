"""How much of the planner's gain over the prior survives action noise? (exit 1 when the gain at the smallest
non-zero noise is below the generalist's target margin, 0.08.)

Default: every 12th committed Shadow planner expert (models/experts/plans/shadow). Pass a plans folder to use
others; ``--help`` for the flags.
"""

import sys
from pathlib import Path

from omnipianist.cli import main

ROOT = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    args = sys.argv[1:]
    plans = [] if args and not args[0].startswith("-") else [str(ROOT / "models/experts/plans/shadow")]
    sys.exit(main(["bench", "plan-noise", "--json", *plans, *args]))
