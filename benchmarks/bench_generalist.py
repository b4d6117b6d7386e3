"""Generalist F1 on seen / unseen corpus pieces, FMT vs BC-MLP vs the prior (exit 1 when a target is missed).

Default: the shipped models (models/generalist/). Pass ``--policy NAME=PATH`` (repeatable) to compare others.
"""

import sys
from pathlib import Path

from omnipianist.cli import main

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = [f"--policy=fmt_residual={ROOT / 'models/generalist/fmt_residual_shadow.onnx'}",
           f"--policy=fmt={ROOT / 'models/generalist/fmt_shadow.onnx'}"]

if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main(["bench", "generalist", "--json", *(args if any(a.startswith("--policy") for a in args)
                                                          else SHIPPED + args)]))
