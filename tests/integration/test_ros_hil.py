"""The HIL ROS graph end to end (DDS on loopback, inside tests/isolated.sh's network namespace):
score -> policy (+ filter) -> commands -> hand_driver_left/right (LifecycleNode, HandDriver over a pty)
-> Dynamixel bytes -> emulated servos whose physics is the MuJoCo mock -> /piano/keys -> evaluator.

Runs ``omnipianist_ros.cli play --hil`` in its own Python process (its own rclpy state) on this module's
ROS_DOMAIN_ID. Lock-step makes what is asserted deterministic; nothing here depends on wall-clock speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.dds

DOMAIN_ID = "178"  # unique to this module (test_ros_graph.py uses 177)
PIECE = "c_major_scale"


def test_hil_graph_plays_like_pure_sim(tmp_path: Path) -> None:
    from omnipianist_ros.mcap_writer import read_mcap
    from sim_training.fingering.piece import play_with_prior

    mcap = tmp_path / "hil.mcap"
    env = dict(os.environ, ROS_DOMAIN_ID=DOMAIN_ID)
    out = subprocess.run([sys.executable, "-m", "omnipianist_ros.cli", "play", PIECE, "--hil", "--json",
                          "--record", str(mcap), "--timeout-s", "90"],
                         env=env, capture_output=True, text=True, timeout=150)
    assert out.returncode == 0, out.stderr[-3000:]
    hil = json.loads(out.stdout.strip().splitlines()[-1])
    sim = play_with_prior(PIECE).metrics

    assert hil["mode"] == "hil" and hil["steps"] == sim["steps"] and hil["steps_missing"] == 0
    assert hil["lockstep_timeouts"] == 0, "a step waited for a driver that never reported"
    assert hil["idle_timeouts"] == 0, "a step ran before an emulated bus had handled its driver's goals"
    assert abs(hil["f1"] - sim["f1"]) <= 0.05, (hil["f1"], sim["f1"])
    assert hil["out_of_limits"] == 0
    for side in ("left", "right"):
        bus = hil["buses"][side]
        assert bus["out_of_limits"] == 0, bus["out_of_limits_first"]
        assert bus["emulator_error"] is None
        assert bus["lifecycle"] == "active" and bus["state"] == "active", bus
        assert bus["servos"] == 19
        # every lock-step command went through the driver's bus cycle (one servo_states per cycle)
        assert bus["commands_cycled"] >= hil["steps"]

    recording = read_mcap(mcap)
    assert recording.complete
    topics = recording.topics()
    assert {"/left_hand/servo_states", "/right_hand/joint_states", "/piano/keys", "/estop"} <= topics, topics
