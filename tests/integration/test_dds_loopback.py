"""DDS stays on loopback: two processes talk over the project's Fast DDS profile, and no UDP socket
of theirs is bound to any address but 127.0.0.1 (checked with ``ss -uanp``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.dds

_PUB = textwrap.dedent("""
    from omnipianist.dds import use_loopback
    use_loopback()
    import time, rclpy
    from std_msgs.msg import Float32MultiArray
    rclpy.init(); node = rclpy.create_node("loopback_pub")
    pub = node.create_publisher(Float32MultiArray, "/omnipianist_test/loopback", 10)
    end = time.time() + 6
    while time.time() < end:
        pub.publish(Float32MultiArray(data=[1.0, 2.0])); time.sleep(0.02)
""")
_SUB = textwrap.dedent("""
    from omnipianist.dds import use_loopback
    use_loopback()
    import os, subprocess, sys, time, rclpy
    from std_msgs.msg import Float32MultiArray
    rclpy.init(); node = rclpy.create_node("loopback_sub"); got = []
    node.create_subscription(Float32MultiArray, "/omnipianist_test/loopback", lambda m: got.append(m), 10)
    end = time.time() + 5
    while time.time() < end and len(got) < 20:
        rclpy.spin_once(node, timeout_sec=0.05)
    ss = subprocess.run(["ss", "-uanp"], capture_output=True, text=True).stdout
    pids = {str(os.getpid()), sys.argv[1]}
    mine = [line for line in ss.splitlines()[1:] if any(f"pid={p}," in line for p in pids)]
    print("RECEIVED", len(got))
    for line in mine:
        print("SOCKET", line.split()[3])
""")


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs iproute2's ss")
def test_two_processes_talk_and_bind_only_loopback() -> None:
    env = dict(os.environ)
    pub = subprocess.Popen([sys.executable, "-c", _PUB], env=env)
    try:
        out = subprocess.run([sys.executable, "-c", _SUB, str(pub.pid)], env=env, capture_output=True,
                             text=True, timeout=60)
    finally:
        pub.kill()
        pub.wait()
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    received = int(next(line.split()[1] for line in lines if line.startswith("RECEIVED")))
    sockets = [line.split()[1] for line in lines if line.startswith("SOCKET")]
    assert received > 0, "no message crossed the loopback DDS graph"
    assert sockets, "ss listed no sockets of the DDS processes (is the check looking at the right pids?)"
    bad = [s for s in sockets if not s.startswith("127.0.0.1:")]
    assert not bad, f"DDS sockets bound outside loopback: {bad}"
