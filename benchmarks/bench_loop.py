"""The real-time ROS control loop: `omnipianist bench loop --json` (prints JSON; exit 1 when a target is missed).

Runs without the `omnipianist` CLI wiring too (it calls omnipianist_ros.loopbench directly). The graph runs
one process per node (as `ros2 launch` does; `--graph inprocess` for the one-process bringup), the score, the
policy, the mock and the probe SCHED_FIFO (`--rt-priority 50` by default; 0 = normal scheduling). DDS stays on
loopback: the benchmark re-executes itself under `unshare -n` with lo up and the project's Fast DDS profile.
Examples: `benchmarks/bench_loop.py --policy models/generalist/fmt_residual_shadow.onnx` (5,000 cycles at
20 Hz, the record), `--rate 100 --cycles 2000` (stress), `--cycles 300` (short).
"""

import sys

from omnipianist_ros.loopbench import main

if __name__ == "__main__":
    sys.exit(main(["--json", *sys.argv[1:]]))
