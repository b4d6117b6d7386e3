"""The real-time ROS control loop: `omnipianist bench loop --json` (prints JSON; exit 1 when a target is missed).

Runs without the `omnipianist` CLI wiring too (it calls omnipianist_ros.loopbench directly). DDS stays on
loopback: the benchmark re-executes itself under `unshare -n` with lo up and the project's Fast DDS profile.
Examples: `benchmarks/bench_loop.py` (5,000 cycles at 20 Hz), `--rate 100` (stress), `--cycles 300` (short).
"""

import sys

from omnipianist_ros.loopbench import main

if __name__ == "__main__":
    sys.exit(main(["--json", *sys.argv[1:]]))
