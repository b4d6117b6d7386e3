"""The HIL graph with one process per node (``ProcessGraph``, what launch_ros starts): eight processes
(mock, two hand drivers, e-stop heartbeat, score, policy, evaluator, recorder) discover each other on
the loopback profile and play a piece end to end (the evaluator's report covers every step), no socket
of theirs leaves 127.0.0.1, and SIGINT twice (what launch forwards after a Ctrl-C) ends every one of
them within 2 s, exit status 0, no traceback.

The drivers start before the mock has created their ports (``hil_port_dir`` is a fresh folder): they
come up through the autostart configure retry."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.dds

LOOPBACK_V4 = "0100007F"  # 127.0.0.1 as /proc/net/{udp,tcp} print it (little-endian hex)


def _socket_inodes(pid: int) -> set[str]:
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[8:-1])
    return out


def _inet_sockets(pid: int) -> list[tuple[str, str]]:
    """(table, local address) of every UDP / TCP socket (v4 and v6) that process ``pid`` holds."""
    inodes = _socket_inodes(pid)
    found = []
    for table in ("udp", "udp6", "tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            cols = line.split()
            if len(cols) > 9 and cols[9] in inodes:
                found.append((table, cols[1]))
    return found


def test_hil_graph_in_eight_processes(tmp_path: Path) -> None:
    from omnipianist_ros.bringup import ProcessGraph
    from omnipianist_ros.cli import with_recorder
    from omnipianist_ros.config import config_path, load_bringup_config
    from omnipianist_ros.params import hil_port

    ports, report, mcap = tmp_path / "ports", tmp_path / "report.json", tmp_path / "run.mcap"
    cfg = load_bringup_config(config_path("hil.yaml"))
    cfg = cfg.replace("score", file="single_note").replace("evaluator", file="single_note", report=str(report))
    cfg = cfg.replace("mujoco_mock", hil_port_dir=str(ports))
    for side in ("left", "right"):
        cfg = cfg.replace(f"hand_driver_{side}", port=hil_port(str(ports), side))
    cfg = with_recorder(cfg, str(mcap))
    assert len(cfg.nodes) == 8
    with ProcessGraph(cfg) as g:
        played = g.wait_for(report.exists, 120)
        logs = {name: g.log(name) for name in g.processes}
        assert played, f"no evaluator report; exited: {g.exited()}\n" + "\n".join(
            f"--- {n}\n{text[-1500:]}" for n, text in logs.items())
        sockets = {name: _inet_sockets(pid) for name, pid in g.pids.items()}
        t0 = time.monotonic()
        g.signal_all(signal.SIGINT)
        time.sleep(0.05)
        g.signal_all(signal.SIGINT)
        for p in g.processes.values():
            p.wait(timeout=10)
        took = time.monotonic() - t0
        codes = g.stop()
        logs = {name: g.log(name) for name in g.processes}
    r = json.loads(report.read_text())
    assert r["steps_seen"] == r["steps"] > 0 and r["f1"] > 0.5, r
    # every process holds DDS sockets, all of them on 127.0.0.1
    assert all(sockets.values()), f"a node holds no UDP/TCP socket (is the check looking at the right pids?): {sockets}"
    bad = {n: [s for s in socks if s[0].endswith("6") or not s[1].startswith(LOOPBACK_V4 + ":")]
           for n, socks in sockets.items()}
    assert not any(bad.values()), f"sockets outside 127.0.0.1: {bad}"
    # shutdown: fast, clean, quiet
    failed = {n: c for n, c in codes.items() if c != 0}
    assert not failed, f"exit codes {failed}\n" + "\n".join(f"--- {n}\n{logs[n][-3000:]}" for n in failed)
    assert took < 2.0, f"the graph took {took:.2f} s to exit after SIGINT x2"
    tracebacks = [n for n, text in logs.items() if "Traceback" in text]
    assert not tracebacks, {n: logs[n][-2000:] for n in tracebacks}
    assert mcap.stat().st_size > 0


def test_bringup_processes_ctrl_c(tmp_path: Path) -> None:
    """``omnipianist bringup sim.yaml --processes`` and a terminal's Ctrl-C (SIGINT to the whole process
    group, twice: the nodes get it from the terminal and again from the bringup): everything exits
    within 2 s with status 0 and no traceback."""
    import subprocess
    import sys

    log = tmp_path / "bringup.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "omnipianist_ros.cli", "bringup", "ros2_ws/config/sim.yaml",
                                 "--processes"], stdout=out, stderr=out, start_new_session=True)
        try:
            # running: the score has started playing in its own process
            end = time.monotonic() + 120
            while time.monotonic() < end and b"score: playing" not in log.read_bytes() and proc.poll() is None:
                time.sleep(0.2)
            assert proc.poll() is None and b"score: playing" in log.read_bytes(), log.read_text()[-3000:]
            children = [int(p) for p in subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True,
                                                       text=True).stdout.split()]
            assert len(children) >= 5, children  # the bringup and its four nodes
            t0 = time.monotonic()
            os.killpg(proc.pid, signal.SIGINT)
            time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGINT)
            rc = proc.wait(timeout=10)
            took = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    left = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert rc == 0 and not left, (rc, left, text[-3000:])
    assert took < 2.0, f"{took:.2f} s to exit"
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text[-3000:]


def test_bringup_one_process_ctrl_c(tmp_path: Path) -> None:
    """The same for the one-process bringup (``--one-process``): SIGINT twice, out within 2 s, quietly."""
    import subprocess
    import sys

    log = tmp_path / "bringup.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "omnipianist_ros.cli", "bringup", "ros2_ws/config/sim.yaml",
                                 "--one-process"], stdout=out, stderr=out, start_new_session=True)
        try:
            end = time.monotonic() + 120
            while time.monotonic() < end and b"score: playing" not in log.read_bytes() and proc.poll() is None:
                time.sleep(0.2)
            assert proc.poll() is None and b"score: playing" in log.read_bytes(), log.read_text()[-3000:]
            t0 = time.monotonic()
            os.killpg(proc.pid, signal.SIGINT)
            time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGINT)
            rc = proc.wait(timeout=10)
            took = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    assert rc == 0 and took < 2.0, (rc, took, text[-3000:])
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text[-3000:]


def test_play_sim_in_processes_matches_one_process() -> None:
    """``play --sim --processes``: the lock-step sim graph, one process per node, plays as the one-process
    graph, with the policy's loop figures from /diagnostics.

    Open: on a loaded machine the two differ by one step of keys now and then (single_note: F1 0.636 vs
    0.727 = one of its 11 note steps, in 2 of 3 full-suite runs; never when run alone); the cause is not
    found yet, so this asserts every step answered and F1 within one note step, not bit equality."""
    from omnipianist_ros.cli import LOOP_KEYS, play

    one = play("single_note", timeout_s=120)
    many = play("single_note", processes=True, timeout_s=120)
    assert many["graph"] == "processes" and many["steps_seen"] == many["steps"] == one["steps"]
    assert many["f1"] == pytest.approx(one["f1"], abs=0.1), (many["f1"], one["f1"])
    assert all(key in many for key in LOOP_KEYS) and many["loop_steps"] > 0
    assert many["safety"] == {"left": "active", "right": "active"}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_realtime_hil_play_one_process_per_node() -> None:
    """`play --hil --realtime --processes`: the drivers come up before the policy (they hold the armed
    pose until its first command instead of torquing off after the watchdog's 0.5 s), and the evaluator
    reports even when a late tick left a step without keys (it used to wait for every step forever)."""
    from omnipianist_ros.cli import play

    r = play("c_major_scale", hil=True, realtime=True, processes=True, timeout_s=200.0)
    assert r["mode"] == "hil-realtime" and r["graph"] == "processes"
    # the score's clock starts on its own (start_delay), as on the rig: on a loaded machine the hands can
    # start late and the first steps go unanswered (counted as silent), so this asserts a play, not a score
    assert r["steps_seen"] >= 0.5 * r["steps"] > 0, r
    assert r["f1"] > 0.3, r
    assert set(r["bus_diagnostics"]) == {"left", "right"}, r
