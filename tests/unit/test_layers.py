"""The layers at run time: what a deployment needs does not load what it must not.

import-linter (``make check``) checks the import graph statically; these tests run the imports in a
fresh interpreter with a module made unimportable, the way a machine without it would fail.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

_BLOCK = textwrap.dedent("""
    import importlib.abc, sys
    class _Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] == {blocked!r}:
                raise ImportError("blocked for the test: " + name)
            return None
    sys.meta_path.insert(0, _Block())
""")


def _run(blocked: str, body: str) -> subprocess.CompletedProcess[str]:
    code = _BLOCK.format(blocked=blocked) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=240)


def test_the_blocker_blocks() -> None:
    r = _run("numpy", "import numpy\n")
    assert r.returncode != 0 and "blocked for the test: numpy" in r.stderr


@pytest.mark.parametrize("model", ["models/generalist/shadow.onnx", "models/generalist/fmt_residual_shadow.onnx"])
def test_deployment_runtime_plays_the_shipped_policy_without_torch(model: str) -> None:
    r = _run("torch", """
        import numpy as np
        from policy_export.runtime import Policy
        from sim_training.env.piano_env import EnvConfig, PianoEnv
        env = PianoEnv("c_major_scale", "shadow", EnvConfig(clip_steps=20, random_start=False))
        policy = Policy.load("MODEL", scene=env.scene, warmup=0)
        obs, _ = env.reset(seed=0)
        for _ in range(20):
            action = policy.act(obs)
            assert action is not None and np.all(np.isfinite(action))
            obs, *_ = env.step(action)
        import sys
        assert "torch" not in sys.modules
        print("ok")
    """.replace("MODEL", model))
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-3000:]


def test_planner_runs_without_torch() -> None:
    r = _run("torch", """
        from sim_training.experts.planner import PlannerConfig, plan_piece
        import tempfile
        out = tempfile.mkdtemp()
        res = plan_piece("single_note", out, config=PlannerConfig(window=5, horizon=5, budget=2))
        assert 0.0 <= res["f1"] <= 1.0
        print("ok")
    """)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-3000:]


def test_the_real_hand_driver_node_imports_without_mujoco() -> None:
    r = _run("mujoco", """
        import omnipianist_ros.nodes.hand_driver_node
        import sys
        assert "mujoco" not in sys.modules and "omnipianist.hardware.hil" not in sys.modules
        print("ok")
    """)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-3000:]


def test_hardware_driver_and_safety_import_without_mujoco() -> None:
    r = _run("mujoco", """
        import omnipianist.hardware.calibration, omnipianist.hardware.channels, omnipianist.hardware.config
        import omnipianist.hardware.joints
        import omnipianist.hardware.driver, omnipianist.hardware.dynamixel.bus, omnipianist.safety.filter
        import omnipianist.safety.rail
        import omnipianist.hardware.hil_config  # the hand files, virtual or real (the driver node reads them)
        from sim_training.models.embodiment import get_embodiment
        emb = get_embodiment("leap")
        assert emb.all_joint_names  # joint order facts need no simulator
        import sys
        assert "mujoco" not in sys.modules
        print("ok")
    """)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-3000:]
