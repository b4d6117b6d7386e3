"""What the launch files do, in plain Python (they only wrap it in launch / launch_ros actions).

``ros2 launch omnipianist sim.launch.py [config:=...] [policy:=...] [piece:=...] [tempo:=...]``: the
launch file declares :func:`launch_arguments` for its graph and, at launch time (an ``OpaqueFunction``),
hands their values to :func:`launch_nodes`, which

1. resolves ``config`` (:func:`resolve_config`: an existing path as given; otherwise a shipped
   config's name, found through :mod:`omnipianist.resources`: the ament share directory of a colcon
   install first, then the source checkout) and loads it with the bringup loader;
2. applies the other arguments as parameter overrides (:func:`apply_arguments`: an argument sets its
   parameter on every node of the graph that declares it; '' = keep the YAML's value);
3. returns one :class:`LaunchNode` per node: the console script of the node registry, lifecycle or
   not, and the node's full parameter dict.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from omnipianist.errors import ConfigError
from omnipianist_ros.config import BringupConfig, config_path, load_bringup_config
from omnipianist_ros.params import field_types
from omnipianist_ros.registry import NODES

PACKAGE = "omnipianist"


@dataclass(frozen=True)
class LaunchArgument:
    name: str
    default: str
    description: str
    parameter: str = ""
    """The node parameter it overrides ('' = not a parameter: ``config``)."""


def _arg(name: str, parameter: str, what: str) -> LaunchArgument:
    return LaunchArgument(name, "", f"{what} ('' = the config's); sets {parameter} of every node that has it",
                          parameter)


_COMMON = (
    _arg("policy", "policy", "'prior' or an exported .onnx policy (a path, or models/... of the shipped models)"),
    _arg("piece", "file", "built-in piece name, corpus id or MIDI file (score and evaluator)"),
    _arg("tempo", "tempo_scale", "time stretch of the score, > 1 plays slower (score and evaluator)"),
    _arg("embodiment", "embodiment", "embodiment (shadow | leap)"),
    _arg("report", "report", "the evaluator's end-of-piece JSON report path"),
)
GRAPHS: dict[str, tuple[str, tuple[LaunchArgument, ...]]] = {
    "sim": ("sim.yaml", _COMMON),
    "hil": ("hil.yaml", _COMMON),
    "hardware": ("hardware.yaml", (*_COMMON, _arg("hardware_config", "hardware_config",
                                                  "hardware_config/ folder (hand YAMLs, bus.yaml, safety.yaml)"))),
}
"""Launch file (``<graph>.launch.py``) -> (its default bringup YAML, its arguments besides ``config``)."""


def launch_arguments(graph: str) -> list[LaunchArgument]:
    """The arguments ``<graph>.launch.py`` declares: ``config`` first."""
    if graph not in GRAPHS:
        raise ConfigError(f"unknown launch graph {graph!r}; known: {sorted(GRAPHS)}")
    default, args = GRAPHS[graph]
    return [LaunchArgument("config", default, "bringup YAML: a path, or the name of a shipped config "
                                              "(ros2_ws/config/*.yaml, installed in share/omnipianist/config)"),
            *args]


def resolve_config(value: str) -> Path:
    """The bringup YAML named by ``config:=``: an existing file as given, else a shipped config of that
    name (ament share directory first, then the checkout). ConfigError listing where it looked."""
    p = Path(value).expanduser()
    if p.is_file():
        return p
    if p.is_absolute():
        raise ConfigError(f"config {value!r}: no such file")
    return config_path(str(p))


def _convert(tp: type, value: str, where: str) -> Any:
    if tp is str:
        return value
    try:
        if tp is bool:
            if value.lower() not in ("true", "false"):
                raise ValueError(value)
            return value.lower() == "true"
        return tp(value)
    except ValueError:
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}") from None


def apply_arguments(cfg: BringupConfig, graph: str, values: dict[str, str]) -> BringupConfig:
    """``cfg`` with the launch arguments of ``graph`` applied ('' = not given). ConfigError for a bad
    value or an argument no node of the config takes."""
    for arg in launch_arguments(graph):
        value = values.get(arg.name, "")
        if not arg.parameter or value == "":
            continue
        takers = [spec.name for spec in cfg.nodes if arg.parameter in field_types(type(spec.params))]
        if not takers:
            raise ConfigError(f"{arg.name}:={value}: no node of {cfg.path} has the parameter {arg.parameter!r}")
        for name in takers:
            tp = field_types(type(cfg.node(name).params))[arg.parameter]
            cfg = cfg.replace(name, **{arg.parameter: _convert(tp, value, f"{arg.name}:={value}")})
    return cfg


@dataclass(frozen=True)
class LaunchNode:
    """One node for launch_ros (``Node`` or ``LifecycleNode`` of package ``omnipianist``) or for the
    launch-free multi-process bringup (:class:`omnipianist_ros.bringup.ProcessGraph`)."""

    name: str
    executable: str
    lifecycle: bool
    parameters: dict[str, Any]

    def params_yaml(self) -> str:
        """The node's parameters as a ROS 2 parameter file (``/**`` key: valid under any remapping).

        A file, not a dict for launch_ros: launch_ros reads every string in a parameter dict as YAML
        (``''`` becomes None and is refused, ``'1.0'`` would become a float); a dumped file keeps
        strings strings."""
        return yaml.safe_dump({"/**": {"ros__parameters": dict(self.parameters)}}, sort_keys=False)

    def write_params(self, directory: str | Path) -> Path:
        path = Path(directory) / f"{self.name}.params.yaml"
        path.write_text(self.params_yaml())
        return path

    def kwargs(self, params_file: str | Path) -> dict[str, Any]:
        """Keyword arguments of ``launch_ros.actions.Node`` / ``LifecycleNode``."""
        return {"package": PACKAGE, "executable": self.executable, "name": self.name, "namespace": "",
                "output": "screen", "parameters": [str(params_file)]}


def node_list(cfg: BringupConfig) -> list[LaunchNode]:
    out = []
    for spec in cfg.nodes:
        kind = NODES[spec.name]
        out.append(LaunchNode(spec.name, kind.executable, kind.lifecycle, spec.ros_parameters()))
    return out


def launch_nodes(graph: str, values: dict[str, str]) -> list[LaunchNode]:
    """The nodes ``<graph>.launch.py`` starts for these argument values (config resolved now)."""
    default = GRAPHS[graph][0] if graph in GRAPHS else ""
    cfg = load_bringup_config(resolve_config(values.get("config") or default))
    return node_list(apply_arguments(cfg, graph, values))


def launch_actions(graph: str, values: dict[str, str], node_action: Any, lifecycle_action: Any) -> list[Any]:
    """The launch_ros actions (``node_action`` = ``launch_ros.actions.Node``, ``lifecycle_action`` =
    ``LifecycleNode``) for ``<graph>.launch.py``; each node's parameter file is written to a fresh
    temporary folder (as launch_ros does with parameter dicts)."""
    import tempfile

    nodes = launch_nodes(graph, values)
    directory = tempfile.mkdtemp(prefix=f"omnipianist-{graph}-launch-")
    return [(lifecycle_action if n.lifecycle else node_action)(**n.kwargs(n.write_params(directory)))
            for n in nodes]

