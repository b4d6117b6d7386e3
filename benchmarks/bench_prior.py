"""OT/IK prior quality and latency: `omnipianist bench prior --json` (exit 1 when a target is missed)."""

import sys

from omnipianist.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "prior", "--json", *sys.argv[1:]]))
