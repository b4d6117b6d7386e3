"""Simulator speed: `omnipianist bench sim --json` (prints JSON; exit 1 when a target is missed)."""

import sys

from omnipianist.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "sim", "--json", *sys.argv[1:]]))
