"""``ros2 launch omnipianist <graph>.launch.py`` from a colcon install, without launch / launch_ros.

The install is simulated as colcon lays it out: ``setup.py install_data`` (setup.py's own data_files)
into ``<prefix>/share/...`` (the ament index marker included), the Python packages copied to
``<prefix>/lib/python3.X/site-packages`` and imported from there (no checkout on the path), and
``AMENT_PREFIX_PATH=<prefix>``. The launch files are the installed copies, run against a minimal
stand-in of the launch / launch_ros API (the calls they make: DeclareLaunchArgument, OpaqueFunction,
LaunchConfiguration.perform, Node / LifecycleNode keyword arguments), with launch's semantics: declared
defaults unless the user gave the argument, the OpaqueFunction called at launch time with the context.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

_FAKE_LAUNCH = {
    "launch/__init__.py": """
        class LaunchDescription:
            def __init__(self, entities=()):
                self.entities = list(entities)
    """,
    "launch/actions.py": """
        class DeclareLaunchArgument:
            def __init__(self, name, *, default_value=None, description='', choices=None):
                self.name, self.default_value, self.description = name, default_value, description

        class OpaqueFunction:
            def __init__(self, *, function, args=None, kwargs=None):
                self.function, self.args, self.kwargs = function, args or [], kwargs or {}

            def execute(self, context):
                return self.function(context, *self.args, **self.kwargs)
    """,
    "launch/substitutions.py": """
        class LaunchConfiguration:
            def __init__(self, variable_name, *, default=None):
                self.variable_name = variable_name

            def perform(self, context):
                return context.launch_configurations[self.variable_name]  # launch: SubstitutionFailure
    """,
    "launch_ros/__init__.py": "",
    "launch_ros/actions.py": """
        class Node:
            def __init__(self, *, executable, package=None, name=None, namespace=None, parameters=None, **kw):
                self.executable, self.package, self.name = executable, package, name
                self.parameters, self.kw = list(parameters or []), kw

        class LifecycleNode(Node):
            def __init__(self, *, name, namespace, **kw):  # launch_ros requires both
                super().__init__(name=name, namespace=namespace, **kw)
    """,
}

_RUN = """
import importlib.util, json, sys, types
from pathlib import Path

prefix, graph, user_args = Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
share = prefix / "share" / "omnipianist"
spec = importlib.util.spec_from_file_location(f"{graph}_launch", share / "launch" / f"{graph}.launch.py")
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
desc = mod.generate_launch_description()          # nothing is resolved yet: config:= may be anything
context = types.SimpleNamespace(launch_configurations=dict(user_args))
out = {"declared": [], "nodes": []}
for entity in desc.entities:
    if type(entity).__name__ == "DeclareLaunchArgument":
        out["declared"].append(entity.name)
        context.launch_configurations.setdefault(entity.name, entity.default_value)
    else:
        try:
            actions = entity.execute(context)
        except Exception as exc:
            out["error"] = f"{type(exc).__name__}: {exc}"
            actions = []
        for a in actions:
            out["nodes"].append({"action": type(a).__name__, "name": a.name, "executable": a.executable,
                                 "package": a.package, "parameters": [str(p) for p in a.parameters]})
import omnipianist, omnipianist_ros
from omnipianist.hardware.config import HARDWARE_CONFIG_DIR, shipped_or_given
from omnipianist.resources import resource_path
from omnipianist_ros.policies import shipped_model
from omnipianist_ros.registry import console_scripts
out["modules"] = [omnipianist.__file__, omnipianist_ros.__file__]
out["hardware_config"] = str(HARDWARE_CONFIG_DIR)
out["hil_safety"] = str(shipped_or_given("hardware_config/hil") / "safety.yaml")
out["sim_yaml"] = str(resource_path("config", "sim.yaml"))
out["model"] = str(shipped_model(Path("models/generalist/fmt_residual_shadow.onnx")))
out["console_scripts"] = console_scripts()
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def colcon_prefix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    prefix = tmp_path_factory.mktemp("install") / "omnipianist"
    done = subprocess.run([sys.executable, "setup.py", "-q", "install_data", "--install-dir", str(prefix)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    site = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for pkg in ("omnipianist", "sim_training", "policy_export"):
        shutil.copytree(REPO / pkg, site / pkg, ignore=ignore)
    shutil.copytree(REPO / "ros2_ws" / "src" / "omnipianist_ros", site / "omnipianist_ros", ignore=ignore)
    fake = prefix.parent / "fake_launch"
    for rel, text in _FAKE_LAUNCH.items():
        (fake / rel).parent.mkdir(parents=True, exist_ok=True)
        (fake / rel).write_text(textwrap.dedent(text))
    return prefix


def _launch(prefix: Path, graph: str, **args: str) -> dict:
    site = next(prefix.glob("lib/python*/site-packages"))
    env = dict(os.environ, AMENT_PREFIX_PATH=str(prefix),
               PYTHONPATH=os.pathsep.join([str(site), str(prefix.parent / "fake_launch")]))
    done = subprocess.run([sys.executable, "-c", _RUN, str(prefix), graph, json.dumps(args)], env=env,
                          cwd=prefix.parent, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    return json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])


def _params(node: dict) -> dict:
    (path,) = node["parameters"]
    return yaml.safe_load(Path(path).read_text())["/**"]["ros__parameters"]


def test_setup_installs_every_config_hardware_config_and_model(colcon_prefix: Path) -> None:
    share = colcon_prefix / "share" / "omnipianist"
    assert (colcon_prefix / "share/ament_index/resource_index/packages/omnipianist").is_file()
    for sub in ("ros2_ws/config", "hardware_config", "models", "ros2_ws/launch"):
        src = REPO / sub
        dest = share / ("config" if sub == "ros2_ws/config" else "launch" if sub == "ros2_ws/launch" else sub)
        tracked = subprocess.run(["git", "ls-files", sub], cwd=REPO, capture_output=True, text=True).stdout.split()
        assert tracked, sub
        missing = [t for t in tracked if not (dest / Path(t).relative_to(sub)).is_file()]
        assert not missing, f"not installed from {src}: {missing}"


def test_installed_files_resolve_through_the_ament_index(colcon_prefix: Path) -> None:
    r = _launch(colcon_prefix, "sim")
    share = colcon_prefix / "share" / "omnipianist"
    assert all(m.startswith(str(colcon_prefix)) for m in r["modules"]), r["modules"]  # not the checkout
    assert r["sim_yaml"] == str(share / "config" / "sim.yaml")
    assert r["hardware_config"] == str(share / "hardware_config")
    assert r["hil_safety"] == str(share / "hardware_config" / "hil" / "safety.yaml")
    assert r["model"] == str(share / "models" / "generalist" / "fmt_residual_shadow.onnx")
    assert "error" not in r, r["error"]


@pytest.mark.parametrize("graph, n_nodes", [("sim", 4), ("hil", 7), ("hardware", 7)])
def test_launch_builds_every_node_of_the_installed_config(colcon_prefix: Path, graph: str, n_nodes: int) -> None:
    r = _launch(colcon_prefix, graph)
    assert "error" not in r, r["error"]
    assert r["declared"][:5] == ["config", "policy", "piece", "tempo", "embodiment"]
    names = [n["name"] for n in r["nodes"]]
    assert len(names) == n_nodes and len(set(names)) == n_nodes
    scripts = {line.split(" = ")[0] for line in r["console_scripts"]}
    for node in r["nodes"]:
        assert node["package"] == "omnipianist" and node["executable"] in scripts
        assert node["action"] == ("LifecycleNode" if node["name"].startswith("hand_driver") else "Node")
        assert _params(node)["use_sim_time"] is (graph != "hardware")
    if graph == "hil":
        from omnipianist_ros.params import HandDriverParams

        left = _params(next(n for n in r["nodes"] if n["name"] == "hand_driver_left"))
        del left["use_sim_time"]
        share = str(colcon_prefix / "share" / "omnipianist")
        hand, bus, safety = (Path(p) for p in _in_prefix(colcon_prefix, HandDriverParams(**left)))
        assert all(str(p).startswith(share) and p.is_file() for p in (hand, bus, safety)), (hand, bus, safety)


def _in_prefix(prefix: Path, params: object) -> list[str]:
    """``params.paths()`` evaluated in the installed layout (a subprocess with the prefix's packages)."""
    site = next(prefix.glob("lib/python*/site-packages"))
    code = ("import json, sys; from omnipianist_ros.params import HandDriverParams; "
            "print(json.dumps(list(HandDriverParams(**json.loads(sys.argv[1])).paths())))")
    env = dict(os.environ, AMENT_PREFIX_PATH=str(prefix), PYTHONPATH=str(site))
    import dataclasses

    done = subprocess.run([sys.executable, "-c", code, json.dumps(dataclasses.asdict(params))],  # type: ignore[call-overload]
                          env=env, cwd=prefix.parent, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_launch_arguments_become_parameter_overrides(colcon_prefix: Path) -> None:
    r = _launch(colcon_prefix, "sim", policy="models/generalist/fmt_residual_shadow.onnx", piece="c_major_scale",
                tempo="1.5", report="/tmp/omnipianist_report.json")
    assert "error" not in r, r["error"]
    params = {n["name"]: _params(n) for n in r["nodes"]}
    assert params["policy"]["policy"] == "models/generalist/fmt_residual_shadow.onnx"
    assert params["score"]["file"] == params["evaluator"]["file"] == "c_major_scale"
    assert params["score"]["tempo_scale"] == params["evaluator"]["tempo_scale"] == 1.5
    assert params["evaluator"]["report"] == "/tmp/omnipianist_report.json"
    assert params["mujoco_mock"]["embodiment"] == "shadow"  # not given: the YAML's
    # strings stay strings in the parameter file (launch_ros would read '' in a dict as YAML null)
    assert params["mujoco_mock"]["hil_port_dir"] == "" and isinstance(params["score"]["lookahead"], int)


def test_config_is_resolved_at_launch_time(colcon_prefix: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text("bringup:\n  nodes: [score]\nscore:\n  ros__parameters:\n    file: arpeggios\n")
    r = _launch(colcon_prefix, "sim", config=str(mine))
    assert [n["name"] for n in r["nodes"]] == ["score"] and _params(r["nodes"][0])["file"] == "arpeggios"
    r = _launch(colcon_prefix, "hil", config="sim.yaml")  # a shipped config by name
    assert len(r["nodes"]) == 4
    r = _launch(colcon_prefix, "sim", config=str(tmp_path / "nope.yaml"))
    assert r["declared"] and "nope.yaml" in r["error"]  # the description was built; the launch failed
    r = _launch(colcon_prefix, "sim", tempo="fast")
    assert "tempo:=fast" in r["error"]
    r = _launch(colcon_prefix, "sim", config=str(mine), policy="prior")
    assert "no node" in r["error"] and "'policy'" in r["error"]
