"""Piano listener -> evaluator, the recorder's MCAP file and the score's seek service over DDS (loopback,
inside tests/isolated.sh's network namespace). The MIDI input is mido's in-memory EchoPort."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.dds

DOMAIN_ID = "178"  # unique to this module

_SCRIPT = textwrap.dedent("""
    import dataclasses, json, sys, time, warnings
    import mido
    from rclpy.node import Node
    from sensor_msgs.msg import Joy
    from std_srvs.srv import Trigger
    from omnipianist_ros import topics
    from omnipianist_ros.bringup import Graph
    from omnipianist_ros.config import parse_bringup_config
    from omnipianist_ros.mcap_writer import read_mcap
    from omnipianist_ros.nodes.piano_listener_node import PianoListenerNode
    from omnipianist_ros.bringup import overrides
    with warnings.catch_warnings():  # mcap_ros2.reader warns on import (mcap_ros1's deprecation docstring)
        warnings.simplefilter("ignore", DeprecationWarning)
        from mcap_ros2.reader import read_ros2_messages

    out = sys.argv[1]
    raw = {"bringup": {"nodes": ["score", "evaluator", "recorder", "piano_listener"]},
           "/**": {"ros__parameters": {"use_sim_time": False, "file": "c_major_scale"}},
           "score": {"ros__parameters": {"tick_source": "timer", "autostart": True}},
           "recorder": {"ros__parameters": {"output": out, "flush_period_s": 0.2, "discovery_period_s": 0.2}}}
    cfg = parse_bringup_config(raw, "test")
    listener_spec = cfg.node("piano_listener")
    cfg = dataclasses.replace(cfg, nodes=tuple(n for n in cfg.nodes if n.name != "piano_listener"))
    port = mido.ports.EchoPort()
    with Graph(cfg) as g:
        listener = PianoListenerNode("piano_listener", overrides(listener_spec), port=port, context=g.context)
        g.add_node(listener)
        ev = g.nodes["evaluator"]
        probe = Node("io_probe", context=g.context)
        keys = []
        probe.create_subscription(Joy, topics.KEYS, lambda m: keys.append((time.time(), m)), topics.KEYS_QOS)
        seek = probe.create_client(Trigger, topics.SCORE_SEEK)
        g.add_node(probe)
        assert g.wait_for(lambda: ev.evaluator.start_s is not None, 20), "the evaluator never saw the score start"
        port.send(mido.Message("note_on", note=60, velocity=90))
        assert g.wait_for(lambda: any(m.buttons[60 - 21] for _, m in keys), 10), "no key press on /piano/keys"
        t_rx, pressed = next((t, m) for t, m in keys if m.buttons[60 - 21])
        stamp = pressed.header.stamp.sec + pressed.header.stamp.nanosec * 1e-9
        assert g.wait_for(lambda: ev.evaluator.n_seen >= 10, 20)
        seek.wait_for_service(timeout_sec=10)
        g.nodes["score"].set_parameters([__import__("rclpy").parameter.Parameter("seek_s", value=5.0)])
        fut = seek.call_async(Trigger.Request())
        assert g.wait_for(fut.done, 10)
        assert g.wait_for(lambda: g.nodes["score"].schedule.step_at(time.time()) >= 100, 5), "seek did nothing"
        time.sleep(0.6)  # > 2 flush periods
        rec = g.nodes["recorder"]
        mid = read_mcap(rec.path, decode=True)  # read while running (no footer yet): flushed data is on disk
        n_mid = len(mid.messages)
        mid_pressed = sum(bool(m.ros_msg.buttons[39]) for m in mid.on(topics.KEYS))
    done = read_mcap(out)
    std = list(read_ros2_messages(out))  # the closed file, read and decoded by the mcap libraries alone
    joy = [m.ros_msg for m in std if m.channel.topic == topics.KEYS]
    print(json.dumps({"seek": fut.result().success, "stamp_lag_s": t_rx - stamp, "seen": ev.evaluator.n_seen,
                      "topics_mid": sorted(mid.topics()), "n_mid": n_mid, "complete_mid": mid.complete,
                      "mid_pressed": mid_pressed, "complete": done.complete, "n_done": len(done.messages),
                      "n_std": len(std), "joy_pressed": sum(bool(m.buttons[39]) for m in joy),
                      "topics": sorted({m.channel.topic for m in std})}))
""")


def test_listener_evaluator_recorder_and_seek(tmp_path: Path) -> None:
    env = dict(os.environ, ROS_DOMAIN_ID=DOMAIN_ID)
    out = tmp_path / "rec.mcap"
    res = subprocess.run([sys.executable, "-c", _SCRIPT, str(out)], env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    r = json.loads(res.stdout.strip().splitlines()[-1])
    assert r["seek"] is True
    assert 0 <= r["stamp_lag_s"]  # stamped at receipt, before the probe got it
    assert r["seen"] >= 10
    for topic in ("/piano/keys", "/piano/goal", "/piano/progress"):
        assert topic in r["topics_mid"], r["topics_mid"]  # on disk while still running (flushed)
        assert topic in r["topics"]
    assert r["n_mid"] > 0 and not r["complete_mid"] and r["mid_pressed"] >= 1
    assert r["complete"] and r["n_done"] >= r["n_mid"] and r["n_std"] == r["n_done"]
    assert r["joy_pressed"] >= 1  # the recorded Joy messages decode, with the key pressed
