"""The demo's pipeline, headless, on a short piece: shipped ONNX generalist in simulation, then the full ROS
graph through the serial HIL path (a child process on loopback DDS); report, piano roll, WAV, MCAP."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest

from omnipianist.cli import main
from omnipianist.demo import DEFAULT_POLICY

pytestmark = [pytest.mark.dds, pytest.mark.timeout(600)]


def test_demo_pipeline_on_a_short_piece(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert DEFAULT_POLICY.exists(), "the shipped generalist is part of the repository"
    rc = main(["demo", "--piece", "c_major_scale", "--no-video", "--out", str(tmp_path), "--json"])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0, printed.get("ros", {}).get("error")
    (run,) = list(tmp_path.iterdir())
    report = json.loads((run / "report.json").read_text())
    assert report["sim"]["f1"] == printed["sim"]["f1"]
    sim, ros = report["sim"], report["ros"]
    for key in ("f1", "precision", "recall", "onset_f1", "steps", "do_nothing_f1"):
        assert key in sim and key in ros, key
    assert sim["steps"] == ros["steps"] == 150  # floor(7.45 s / 50 ms) + 1 (RoboPianist timing)
    assert 0.0 <= sim["f1"] <= 1.0 and sim["refused_observations"] == 0
    # the ROS + serial path plays what the simulator plays, through the servos' goals: close, not identical
    assert abs(ros["f1"] - sim["f1"]) <= 0.1, (ros["f1"], sim["f1"])
    assert ros["out_of_limits"] == 0  # no goal outside a servo's safe range reached the wire
    # outputs: a real PNG, a real WAV with sound in it, a readable MCAP with the commands and key states
    png = run / "piano_roll.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image as mpimg

    assert mpimg.imread(str(png)).shape[0] > 100
    with wave.open(str(run / "played.wav")) as w:
        assert w.getnchannels() == 1 and w.getnframes() >= 149 * 0.05 * w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    assert (np.abs(pcm).max() > 0) == (sim["recall"] > 0)  # sound exactly when keys went down
    assert (run / "score.wav").stat().st_size > 44 and (run / "fingering.csv").read_text().count("\n") >= 20
    from omnipianist_ros.mcap_writer import read_mcap

    topics = {m.topic for m in read_mcap(run / "ros_run.mcap", decode=False).messages}
    assert {"/piano/keys", "/left_hand/position_controller/commands", "/right_hand/servo_states"} <= topics
