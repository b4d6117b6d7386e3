"""The deployment graph's plain-Python parts without DDS: MIDI input, MCAP writing, score seek, live
onset F1, the action chunk message, hardware.yaml, both launch files, the node registry and bad input."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import mido
import numpy as np
import pytest
import yaml
from mcap.reader import make_reader
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from omnipianist.errors import ConfigError, ScoreError
from omnipianist_ros import bringup, midi_input
from omnipianist_ros.config import EXECUTABLES, NODE_PARAMS, config_path, load_bringup_config, parse_bringup_config
from omnipianist_ros.evaluation import LiveEvaluator
from omnipianist_ros.mcap_writer import MAGIC, McapWriter, read_mcap, ros2msg_schema
from omnipianist_ros.messages import builtin_time_zero, chunk_trajectory
from omnipianist_ros.midi_input import KeyTracker, open_input, resolve_port_name
from omnipianist_ros.score import ScoreSchedule

with warnings.catch_warnings():  # mcap_ros2.reader warns on import with mcap_ros1's deprecation docstring
    warnings.simplefilter("ignore", DeprecationWarning)
    from mcap_ros2.reader import read_ros2_messages

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


class _FakeBackend:
    """Stands in for mido's rtmidi backend: ``names`` listed, or ``fail`` raised when listing."""

    def __init__(self, names: list[str] | None = None, fail: Exception | None = None) -> None:
        self.names, self.fail, self.opened = names or [], fail, []

    def get_input_names(self) -> list[str]:
        if self.fail is not None:
            raise self.fail
        return self.names

    def open_input(self, name: str, callback: Any = None) -> str:
        self.opened.append(name)
        return name


def test_open_input_by_name_through_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    assert midi_input.MIDI_BACKEND == "mido.backends.rtmidi"
    fake = _FakeBackend(["Midi Through:Midi Through Port-0 14:0", "Kawai CA49:Kawai CA49 MIDI 1 20:0"])
    monkeypatch.setattr(midi_input, "_backend", lambda: fake)
    assert open_input("Kawai") == fake.names[1] and fake.opened == [fake.names[1]]
    with pytest.raises(ConfigError, match=r"port 'Yamaha': no MIDI input port matches; available: .*Kawai CA49"):
        open_input("Yamaha")


@pytest.mark.parametrize("fake, match", [
    (_FakeBackend([]), r"port 'Kawai': no MIDI input ports"),
    # what rtmidi raises without an ALSA sequencer (its SystemError is an OSError)
    (_FakeBackend(fail=OSError("MidiInAlsa::initialize: error creating ALSA sequencer client object.")),
     r"cannot list MIDI input ports with mido\.backends\.rtmidi: MidiInAlsa.*/dev/snd/seq"),
])
def test_no_midi_ports_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, fake: _FakeBackend, match: str) -> None:
    monkeypatch.setattr(midi_input, "_backend", lambda: fake)
    with pytest.raises(ConfigError, match=match):
        open_input("Kawai")


def test_real_backend_missing_port_is_a_config_error() -> None:
    """Whatever this machine has (no ALSA sequencer, no ports, other ports): a ConfigError, never a trace."""
    with pytest.raises(ConfigError, match="piano_listener: "):
        open_input("No Such Piano 0xdeadbeef")


# ------------------------------------------------------------------------------------- MCAP
_FLOATS, _JOINTS = "std_msgs/msg/Float64MultiArray", "sensor_msgs/msg/JointState"


def test_mcap_round_trip_read_by_the_mcap_libraries(tmp_path: Path) -> None:
    path = tmp_path / "rec.mcap"
    cmd = "/left_hand/position_controller/commands"
    with McapWriter(path) as w:
        for i in range(3):
            w.write(cmd, _FLOATS, serialize_message(Float64MultiArray(data=[float(i), 2.0])), 1_000 + i)
            w.flush()
        w.write("/traj", "trajectory_msgs/msg/JointTrajectory", serialize_message(JointTrajectory()), 5_000)
        w.write("/joint_states", _JOINTS, serialize_message(JointState(name=["wrist", "index_mcp"],
                                                                        position=[0.5, -1.25])), 6_000, 5_900)
    raw = path.read_bytes()
    assert raw.startswith(MAGIC) and raw.endswith(MAGIC)
    with path.open("rb") as f:  # the standard seeking reader: header, summary, CRCs
        reader = make_reader(f, validate_crcs=True)
        assert reader.get_header().profile == "ros2"
        summary = reader.get_summary()
        assert summary is not None and summary.statistics is not None and summary.statistics.message_count == 5
        assert {s.encoding for s in summary.schemas.values()} == {"ros2msg"}
        assert {c.message_encoding for c in summary.channels.values()} == {"cdr"}
    decoded = list(read_ros2_messages(path))  # mcap_ros2 decodes from the file's own ros2msg schemas
    assert [m.channel.topic for m in decoded] == [cmd] * 3 + ["/traj", "/joint_states"]
    assert [list(m.ros_msg.data) for m in decoded[:3]] == [[0.0, 2.0], [1.0, 2.0], [2.0, 2.0]]
    assert [m.sequence_count for m in decoded[:3]] == [0, 1, 2]  # per-channel sequence
    js = decoded[-1]
    assert list(js.ros_msg.name) == ["wrist", "index_mcp"] and list(js.ros_msg.position) == [0.5, -1.25]
    assert (js.log_time_ns, js.publish_time_ns, js.schema.name) == (6_000, 5_900, _JOINTS)
    r = read_mcap(path)  # our reader hands back the CDR bytes rclpy reads
    assert r.complete and r.topics() == {cmd, "/traj", "/joint_states"}
    assert list(deserialize_message(r.on("/joint_states")[0].data, JointState).position) == [0.5, -1.25]


def test_mcap_cut_short_keeps_every_whole_message(tmp_path: Path) -> None:
    path = tmp_path / "w.mcap"
    w = McapWriter(path)
    sizes = []  # the file's size once each message is on disk
    for i in range(3):
        w.write("/a", _FLOATS, serialize_message(Float64MultiArray(data=[float(i)])), i)
        w.flush()
        sizes.append(path.stat().st_size)
    flushed = path.read_bytes()
    w.close()
    cut_file = tmp_path / "cut.mcap"
    # a crash may end the file anywhere: every byte from the first message's tail on, a sample before
    cuts = sorted(set(range(len(MAGIC), sizes[0], 97)) | set(range(sizes[0] - 40, len(flushed) + 1)))
    for cut in cuts:
        cut_file.write_bytes(flushed[:cut])
        r = read_mcap(cut_file)
        assert not r.complete
        assert len(r.messages) == sum(cut >= s for s in sizes), cut
        assert [list(deserialize_message(m.data, Float64MultiArray).data) for m in r.messages] == \
            [[float(i)] for i in range(len(r.messages))]


_KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import JointState
    from omnipianist_ros.mcap_writer import McapWriter

    w = McapWriter(sys.argv[1])
    for i in range(50):
        w.write("/joint_states", "sensor_msgs/msg/JointState",
                serialize_message(JointState(name=["wrist"], position=[float(i)])), i)
    w.flush()  # what the recorder's flush timer does every flush_period_s
    w.write("/joint_states", "sensor_msgs/msg/JointState", serialize_message(JointState(name=["late"])), 50)
    os.kill(os.getpid(), signal.SIGKILL)  # no close(): no summary, no footer
""")


def test_mcap_of_a_killed_writer_reads(tmp_path: Path) -> None:
    path = tmp_path / "killed.mcap"
    res = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(path)], capture_output=True, text=True,
                         timeout=60, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
    assert not path.read_bytes().endswith(MAGIC)
    r = read_mcap(path, decode=True)
    assert not r.complete
    got = r.messages[:50]  # the flushed ones all made it (the unflushed one may or may not have)
    assert [list(m.ros_msg.position) for m in got] == [[float(i)] for i in range(50)]
    assert all(list(m.ros_msg.name) == ["wrist"] for m in got) and len(r.messages) <= 51


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


@pytest.mark.parametrize("name, yaml_name", [("sim.launch.py", "sim.yaml"), ("hardware.launch.py", "hardware.yaml"),
                                             ("hil.launch.py", "hil.yaml")])
def test_launch_files_parse_and_start_every_node(name: str, yaml_name: str) -> None:
    from omnipianist_ros.launching import GRAPHS, launch_nodes

    funcs, calls, text = _launch_facts(name)
    graph = name.split(".")[0]
    assert "generate_launch_description" in funcs and "OpaqueFunction" in calls and "DeclareLaunchArgument" in calls
    assert f'GRAPH = "{graph}"' in text and GRAPHS[graph][0] == yaml_name
    nodes = launch_nodes(graph, {})
    assert [n.name for n in nodes] == [s.name for s in load_bringup_config(config_path(yaml_name)).nodes]
    for n in nodes:
        assert n.executable == EXECUTABLES[n.name]
        assert n.lifecycle is n.name.startswith("hand_driver")


def test_every_node_has_params_and_an_executable() -> None:
    from omnipianist_ros import registry
    from omnipianist_ros.nodes import main

    assert set(NODE_PARAMS) == set(EXECUTABLES) == set(bringup.NODE_CLASSES) == set(registry.NODES)
    for kind in registry.NODES.values():
        assert callable(getattr(main, kind.entry)), kind.entry
        assert kind.params_class() is NODE_PARAMS[kind.name]
    setup_text = (REPO / "setup.py").read_text()
    assert "_registry().console_scripts()" in setup_text
    assert len(registry.console_scripts()) == len({k.executable for k in registry.NODES.values()}) == 8


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
    assert args.graph == "processes" and args.rt_priority == 50
    again = p.parse_args(_forward(p.parse_args(["--graph", "inprocess", "--rt-priority", "0", "--cycles", "7",
                                                "--no-pin"])))
    assert (again.graph, again.rt_priority, again.cycles, again.no_netns, again.pin) == ("inprocess", 0, 7, True, False)
    assert args.pin and p.parse_args(_forward(args)).pin
    ok = {"missed_deadlines": 0, "cycles": 10, "cycles_asked": 10, "rate_hz": 20.0,
          "period_jitter_ms_p99": 1.0, "latency_ms_p99": 5.0}
    assert judge(ok) == []
    assert judge({**ok, "missed_deadlines": 1}) and judge({**ok, "latency_ms_p99": 11.0})
    assert judge({**ok, "rate_hz": 100.0, "latency_ms_p99": 11.0}) == []
    assert judge({**ok, "rt_refused": ["policy"]})


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


def test_bringup_runs_real_time_graphs_one_process_per_node() -> None:
    import argparse

    from omnipianist_ros.cli import add_bringup_args, one_process_per_node

    p = argparse.ArgumentParser()
    add_bringup_args(p)
    hw, sim = load_bringup_config(config_path("hardware.yaml")), load_bringup_config(config_path("sim.yaml"))
    assert one_process_per_node(hw) and not one_process_per_node(sim)
    args = p.parse_args(["x.yaml", "--one-process"])
    assert not one_process_per_node(hw, args.processes, args.one_process)
    args = p.parse_args(["x.yaml", "--processes"])
    assert one_process_per_node(sim, args.processes, args.one_process)
    with pytest.raises(SystemExit):
        p.parse_args(["x.yaml", "--processes", "--one-process"])
