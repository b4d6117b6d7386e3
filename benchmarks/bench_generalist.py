"""Generalist F1 on seen / unseen corpus pieces against the prior and the planner (exit 1 when a target is missed).

Default: the shipped Shadow knob head (models/generalist/shadow.onnx) on all 77 test clips and 40 of its
training clips, with the planner's row. Pass ``--policy NAME=PATH`` (repeatable) to compare others.
"""

import sys
from pathlib import Path

from omnipianist.cli import main

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = [f"--policy=knobs={ROOT / 'models/generalist/shadow.onnx'}", "--unseen-pieces=0", "--seen-pieces=40",
           f"--plans={ROOT / 'models/experts/plans/shadow'}"]

if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main(["bench", "generalist", "--json", *(args if any(a.startswith("--policy") for a in args)
                                                          else SHIPPED + args)]))
