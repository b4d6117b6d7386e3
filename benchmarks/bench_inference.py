"""Policy inference latency (ORT vs torch, 1 core): `omnipianist bench inference --json` (exit 1 on a miss)."""

import sys

from omnipianist.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "inference", "--json", *sys.argv[1:]]))
