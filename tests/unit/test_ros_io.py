"""The deployment graph's plain-Python parts without DDS: MIDI input, MCAP writing, score seek, live
onset F1, the action chunk message, hardware.yaml, both launch files, the node registry and bad input."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import mido
import numpy as np
import pytest
import yaml
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from omnipianist.errors import ConfigError, ScoreError
from omnipianist_ros import bringup
from omnipianist_ros.config import EXECUTABLES, NODE_PARAMS, config_path, load_bringup_config, parse_bringup_config
from omnipianist_ros.evaluation import LiveEvaluator
from omnipianist_ros.mcap_writer import MAGIC, McapWriter, read_mcap, ros2msg_schema
from omnipianist_ros.messages import builtin_time_zero, chunk_trajectory
from omnipianist_ros.midi_input import KeyTracker, resolve_port_name
from omnipianist_ros.score import ScoreSchedule

REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------- MIDI input
def test_key_tracker_from_an_in_memory_mido_port() -> None:
    port = mido.ports.EchoPort()  # mido's in-memory port: what is sent comes back from iter_pending()
    for msg in [mido.Message("note_on", note=60, velocity=80), mido.Message("note_on", note=64, velocity=70),
                mido.Message("note_on", note=60, velocity=0),  # running-status note-off
                mido.Message("note_on", note=10, velocity=70),  # below A0: ignored, counted
                mido.Message("control_change", control=64, value=127)]:
        port.send(msg)
    tr = KeyTracker()
    assert tr.feed_all(port.iter_pending())
    assert np.flatnonzero(tr.active).tolist() == [64 - 21]
    assert tr.key_state()[64 - 21] == 1.0 and tr.key_state().dtype == np.float32
    assert tr.sustain and tr.out_of_range == 1
    assert tr.feed(mido.Message("note_off", note=64)) and not tr.active.any()


def test_key_tracker_channel_filter() -> None:
    tr = KeyTracker(channel=1)
    assert not tr.feed(mido.Message("note_on", note=60, velocity=80, channel=0))
    assert tr.feed(mido.Message("note_on", note=60, velocity=80, channel=1))


def test_port_name_resolution_is_clear() -> None:
    names = ["Midi Through:Midi Through Port-0 14:0", "Kawai CA49:Kawai CA49 MIDI 1 20:0"]
    assert resolve_port_name("Kawai", names) == names[1]
    with pytest.raises(ConfigError, match="more than one"):
        resolve_port_name(":", names)
    with pytest.raises(ConfigError, match="no MIDI input port matches"):
        resolve_port_name("Yamaha", names)
    with pytest.raises(ConfigError, match="no MIDI input ports"):
        resolve_port_name("", [])


# ------------------------------------------------------------------------------------- MCAP
def test_mcap_round_trip_with_cdr(tmp_path: Path) -> None:
    path = tmp_path / "rec.mcap"
    msgs = [Float64MultiArray(data=[float(i), 2.0]) for i in range(3)]
    with McapWriter(path) as w:
        for i, m in enumerate(msgs):
            w.write("/left_hand/position_controller/commands", "std_msgs/msg/Float64MultiArray",
                    serialize_message(m), 1_000 + i)
            w.flush()
        w.write("/traj", "trajectory_msgs/msg/JointTrajectory", serialize_message(JointTrajectory()), 5_000)
    raw = path.read_bytes()
    assert raw.startswith(MAGIC) and raw.endswith(MAGIC)
    r = read_mcap(path)
    assert r["profile"] == "ros2" and r["complete"]
    assert {c[0] for c in r["channels"].values()} == {"/left_hand/position_controller/commands", "/traj"}
    assert all(s[1] == "ros2msg" for s in r["schemas"].values())
    got = [deserialize_message(d, Float64MultiArray) for cid, _, _, d in r["messages"] if cid == 0]
    assert [list(m.data) for m in got] == [[0.0, 2.0], [1.0, 2.0], [2.0, 2.0]]
    assert [m[1] for m in r["messages"] if m[0] == 0] == [0, 1, 2]  # per-channel sequence


def test_mcap_cut_short_keeps_flushed_messages(tmp_path: Path) -> None:
    path = tmp_path / "crash.mcap"
    w = McapWriter(path)
    w.write("/a", "std_msgs/msg/Float64MultiArray", serialize_message(Float64MultiArray(data=[1.0])), 1)
    w.flush()
    size = path.stat().st_size
    w.write("/a", "std_msgs/msg/Float64MultiArray", serialize_message(Float64MultiArray(data=[2.0])), 2)
    w._file().flush()
    path.write_bytes(path.read_bytes()[: size + 10])  # the "crash": a partial record after the flush
    r = read_mcap(path)
    assert len(r["messages"]) == 1 and not r["complete"]


def test_ros2msg_schema_includes_nested_definitions() -> None:
    text = ros2msg_schema("trajectory_msgs/msg/JointTrajectory")
    for dep in ("std_msgs/Header", "trajectory_msgs/JointTrajectoryPoint", "builtin_interfaces/Duration",
                "builtin_interfaces/Time"):
        assert f"MSG: {dep}\n" in text
    with pytest.raises(LookupError, match="nope_msgs"):
        ros2msg_schema("nope_msgs/msg/Nothing")



# ------------------------------------------------------------------------------------- score, evaluator
def test_score_seek() -> None:
    s = ScoreSchedule.from_piece("c_major_scale", 1.0, 10, start_delay_s=0.0)
    assert s.seek(100.0, 2.0) == 40
    t = s.tick(100.0)
    assert t.step == 40
    np.testing.assert_array_equal(t.goal, s.roll.goal(40, 10))
    with pytest.raises(ValueError, match="outside the piece"):
        s.seek(100.0, 1e6)


def test_malformed_midi_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd\x00\x00")
    with pytest.raises(ScoreError, match="bad.mid"):
        ScoreSchedule.from_piece(str(bad), 1.0, 10, 0.0)


def test_live_onset_f1_counts_only_notes_due() -> None:
    s = ScoreSchedule.from_piece("c_major_scale", 1.0, 10, 0.0)
    ev = LiveEvaluator(s.roll)
    ev.set_start(0.0)
    n = s.n_steps // 2
    for k in range(n):
        ev.add_keys((k + 1) * 0.05, s.roll.keys[k])
    assert ev.live_onset_f1() == 1.0  # perfect so far, though half the notes are not due yet
    assert ev.report()["onset_f1"] < 1.0  # over the whole piece the rest count as missed


def test_chunk_trajectory() -> None:
    msg = chunk_trajectory(["a", "b"], np.array([1.0, 2.0]), [np.array([1.5, 2.5])], 0.05, builtin_time_zero())
    assert msg.joint_names == ["a", "b"] and len(msg.points) == 2
    assert msg.points[1].time_from_start.nanosec == 50_000_000
    assert list(msg.points[1].positions) == [1.5, 2.5]


# ------------------------------------------------------------------------------------- configs, launch
def test_hardware_yaml_loads() -> None:
    cfg = load_bringup_config(config_path("hardware.yaml"))
    names = [n.name for n in cfg.nodes]
    assert names == ["hand_driver_left", "hand_driver_right", "piano_listener", "score", "policy", "evaluator",
                     "recorder"]
    assert not any(n.use_sim_time for n in cfg.nodes)
    assert cfg.node("hand_driver_left").params.side == "left" and cfg.node("hand_driver_right").params.side == "right"
    assert cfg.node("policy").params.hardware_config == "hardware_config"
    assert cfg.node("score").params.file == cfg.node("evaluator").params.file
    assert cfg.node("score").params.tempo_scale == cfg.node("evaluator").params.tempo_scale
    assert cfg.node("recorder").params.flush_period_s <= 1.0


def test_hand_driver_side_must_match_its_name() -> None:
    raw = yaml.safe_load((REPO / "ros2_ws/config/hardware.yaml").read_text())
    raw["hand_driver_right"]["ros__parameters"]["side"] = "left"
    with pytest.raises(ConfigError, match=r"hand_driver_right\.ros__parameters\.side"):
        parse_bringup_config(raw, "hw.yaml")


@pytest.mark.parametrize("mutate, match", [
    (lambda r: r["recorder"]["ros__parameters"].update(flush_period_s=5.0), r"flush_period_s must be in \(0, 1\]"),
    (lambda r: r["piano_listener"]["ros__parameters"].update(channel=16), r"channel must be -1\.\.15"),
    (lambda r: r["policy"]["ros__parameters"].update(trigger="sometimes"), r"trigger.*'sometimes'"),
    (lambda r: r["piano_listener"]["ros__parameters"].update(prot="x"), r"prot.*did you mean 'port'"),
])
def test_bad_hardware_yaml_is_a_clear_error(mutate: Any, match: str) -> None:
    raw = yaml.safe_load((REPO / "ros2_ws/config/hardware.yaml").read_text())
    mutate(raw)
    with pytest.raises(ConfigError, match=match) as err:
        parse_bringup_config(raw, "hw.yaml")
    assert str(err.value).startswith("hw.yaml")


def _launch_facts(name: str) -> tuple[set[str], set[str], str]:
    text = (REPO / "ros2_ws/launch" / name).read_text()
    tree = ast.parse(text)
    funcs = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    return funcs, calls, text


@pytest.mark.parametrize("name, yaml_name", [("sim.launch.py", "sim.yaml"), ("hardware.launch.py", "hardware.yaml")])
def test_launch_files_parse_and_start_every_node(name: str, yaml_name: str) -> None:
    funcs, calls, text = _launch_facts(name)
    assert "generate_launch_description" in funcs
    assert "Node" in calls and f'"{yaml_name}"' in text and "EXECUTABLES[spec.name]" in text
    for spec in load_bringup_config(config_path(yaml_name)).nodes:
        assert spec.name in EXECUTABLES
    if name == "hardware.launch.py":
        assert "LifecycleNode" in calls


def test_every_node_has_params_and_an_executable() -> None:
    assert set(NODE_PARAMS) == set(EXECUTABLES) == set(bringup.NODE_CLASSES)
    main = (REPO / "ros2_ws/src/omnipianist_ros/nodes/main.py").read_text()
    for exe in set(EXECUTABLES.values()):
        assert f"``{exe} = " in main.replace("\n", " ") or exe in main, exe


def test_missing_hand_driver_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(bringup.NODE_CLASSES, "hand_driver_left",
                        ("omnipianist_ros.nodes.no_such_hand_driver_node", "HandDriverNode"))
    with pytest.raises(ConfigError, match="hand driver node not available: cannot import"):
        bringup._node_class("hand_driver_left")
    with pytest.raises(ConfigError, match="unknown node"):
        bringup._node_class("toaster")


def test_bench_loop_cli_args() -> None:
    import argparse

    from omnipianist_ros.loopbench import _forward, add_bench_loop_args, judge

    p = argparse.ArgumentParser()
    add_bench_loop_args(p)
    args = p.parse_args(["--cycles", "10", "--rate", "100"])
    assert "--no-netns" in _forward(args) and args.cycles == 10
    ok = {"missed_deadlines": 0, "cycles": 10, "cycles_asked": 10, "rate_hz": 20.0,
          "period_jitter_ms_p99": 1.0, "latency_ms_p99": 5.0}
    assert judge(ok) == []
    assert judge({**ok, "missed_deadlines": 1}) and judge({**ok, "latency_ms_p99": 11.0})
    assert judge({**ok, "rate_hz": 100.0, "latency_ms_p99": 11.0}) == []


def test_missing_midi_backend_is_reported() -> None:
    from omnipianist_ros.midi_input import input_names

    try:
        import rtmidi  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="python-rtmidi"):
            input_names()
    else:
        assert isinstance(input_names(), list)


def test_wrong_onnx_is_refused(tmp_path: Path) -> None:
    from omnipianist_ros.control import PolicyController, SafetySettings
    from omnipianist_ros.policies import load_policy
    from tests.conftest import cached_scene

    onnx = REPO / "models/experts/twinkle_shadow/twinkle_shadow_expert.onnx"
    if not onnx.is_file():
        pytest.skip("shipped expert ONNX missing")
    leap = cached_scene("leap")
    with pytest.raises(Exception, match="(?i)embodiment|shadow|leap") as err:
        PolicyController(leap, load_policy(str(onnx), leap, 10), 10, SafetySettings())
    assert type(err.value).__name__ in ("ContractError", "PolicyFileError", "ConfigError")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(Exception, match="junk.onnx") as err2:
        load_policy(str(junk), leap, 10)
    assert type(err2.value).__name__ != "AttributeError"
    with pytest.raises(ConfigError, match="does not exist"):
        load_policy(str(tmp_path / "missing.onnx"), leap, 10)
    shadow = cached_scene("shadow")
    ctl = PolicyController(shadow, load_policy(str(onnx), shadow, 10), 10, SafetySettings())  # the right one loads
    assert ctl.layout.size > 0
