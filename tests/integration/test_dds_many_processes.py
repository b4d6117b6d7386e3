"""Graphs of many processes discover each other under the loopback profile.

With multicast off and one initial peer (127.0.0.1) without a port, Fast DDS sends its discovery
announcements only to the ports of ``maxInitialPeersRange`` participant ids (4 by default): a fifth
process on the machine is never found, and a graph like the 7-process HIL bringup splits silently.
The profile raises the range (32); sixteen processes here (a launch-started HIL graph is 7 nodes plus
launch's own participant, plus ros2 CLI tools and the ros2 daemon while debugging) must all hear each
other."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.dds

N_PROCESSES = 16

_NODE = textwrap.dedent("""
    import sys
    from omnipianist.dds import use_loopback
    use_loopback()
    import time, rclpy
    from std_msgs.msg import Int32
    me, n = int(sys.argv[1]), int(sys.argv[2])
    rclpy.init(); node = rclpy.create_node(f"mesh_{me}")
    heard = set()
    node.create_subscription(Int32, "/omnipianist_test/mesh", lambda m: heard.add(m.data), 50)
    pub = node.create_publisher(Int32, "/omnipianist_test/mesh", 50)
    end = time.time() + 60
    while time.time() < end:
        pub.publish(Int32(data=me))
        rclpy.spin_once(node, timeout_sec=0.05)
        if len(heard - {me}) == n - 1 and time.time() > end - 55:
            break
    # keep publishing a while so that the later ones hear us too
    t = time.time() + 8
    while time.time() < t:
        pub.publish(Int32(data=me)); rclpy.spin_once(node, timeout_sec=0.05)
    print("HEARD", " ".join(str(i) for i in sorted(heard - {me})))
""")


@pytest.mark.timeout(300)
def test_sixteen_processes_all_discover_each_other() -> None:
    env = dict(os.environ)
    procs = [subprocess.Popen([sys.executable, "-c", _NODE, str(i), str(N_PROCESSES)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(N_PROCESSES)]
    missing = {}
    for i, p in enumerate(procs):
        out, err = p.communicate(timeout=200)
        assert p.returncode == 0, err
        heard = {int(x) for x in next(line for line in out.splitlines() if line.startswith("HEARD")).split()[1:]}
        if heard != set(range(N_PROCESSES)) - {i}:
            missing[i] = sorted(set(range(N_PROCESSES)) - {i} - heard)
    assert not missing, f"processes that never heard some others (the graph split): {missing}"
