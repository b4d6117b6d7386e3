"""The bringup YAML: which nodes to run and their parameters (also read by ``ros2_ws/launch/*.launch.py``).

Format (ROS 2 parameter-file style, plus a ``bringup`` section)::

    bringup:
      nodes: [mujoco_mock, score, policy, evaluator]   # node names = node kinds, started in this order
    /**:
      ros__parameters:                                 # given to every node that declares the key
        use_sim_time: true
        file: c_major_scale
    score:
      ros__parameters:
        tick_source: clock

Every key is checked against the node's parameter dataclass (:mod:`omnipianist_ros.params`): an
unknown node or key, a wrong type or a bad value raises ConfigError naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from omnipianist.errors import ConfigError
from omnipianist.resources import candidates
from omnipianist_ros.params import HandDriverParams, coerce, field_types
from omnipianist_ros.registry import NODES

NODE_PARAMS: dict[str, type] = {name: kind.params_class() for name, kind in NODES.items()}
"""Node name -> its parameter dataclass (a view of :data:`omnipianist_ros.registry.NODES`)."""

EXECUTABLES: dict[str, str] = {name: kind.executable for name, kind in NODES.items()}
"""Node name -> console script (``omnipianist_ros.nodes.main``) that launch_ros starts (a registry view)."""
GLOBAL_KEY = "/**"
COMMON_PARAMS = ("use_sim_time",)


@dataclass(frozen=True)
class NodeSpec:
    name: str
    params: Any
    """The node's parameter dataclass instance."""
    use_sim_time: bool = False

    def ros_parameters(self) -> dict[str, Any]:
        """Flat dict for ``launch_ros`` / ``parameter_overrides``."""
        return {**dataclasses.asdict(self.params), "use_sim_time": self.use_sim_time}


@dataclass(frozen=True)
class BringupConfig:
    path: str
    nodes: tuple[NodeSpec, ...]

    def node(self, name: str) -> NodeSpec:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"{self.path}: no node {name!r} in bringup.nodes")

    def replace(self, name: str, **params: Any) -> BringupConfig:
        """A copy with some parameters of node ``name`` replaced (validated)."""
        spec = self.node(name)
        new = dataclasses.replace(spec, params=dataclasses.replace(spec.params, **params))
        return dataclasses.replace(self, nodes=tuple(new if n.name == name else n for n in self.nodes))


def _suggest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _section(path: str, raw: dict[str, Any], key: str) -> dict[str, Any]:
    sec = raw.get(key)
    if sec is None:
        return {}
    if not isinstance(sec, dict) or set(sec) != {"ros__parameters"} or not isinstance(sec["ros__parameters"], dict):
        raise ConfigError(f"{path}: {key}: expected a mapping with exactly one key 'ros__parameters' (a mapping)")
    return dict(sec["ros__parameters"])


def parse_bringup_config(raw: Any, path: str = "<config>") -> BringupConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    bringup = raw.get("bringup")
    if not isinstance(bringup, dict) or not isinstance(bringup.get("nodes"), list) or not bringup["nodes"]:
        raise ConfigError(f"{path}: bringup.nodes: expected a non-empty list of node names "
                          f"({', '.join(NODE_PARAMS)})")
    unknown_bringup = set(bringup) - {"nodes"}
    if unknown_bringup:
        raise ConfigError(f"{path}: bringup: unknown key(s) {sorted(unknown_bringup)}; only 'nodes'")
    names: list[str] = bringup["nodes"]
    for name in names:
        if name not in NODE_PARAMS:
            raise ConfigError(f"{path}: bringup.nodes: unknown node {name!r}{_suggest(str(name), list(NODE_PARAMS))}; "
                              f"known: {list(NODE_PARAMS)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: bringup.nodes: a node is listed twice: {names}")
    for key in raw:
        if key not in ("bringup", GLOBAL_KEY) and key not in names:
            raise ConfigError(f"{path}: {key}: not a node in bringup.nodes {names}{_suggest(str(key), names)}")
    shared = _section(path, raw, GLOBAL_KEY)
    declared = set(COMMON_PARAMS).union(*(field_types(NODE_PARAMS[n]) for n in names))
    for key in shared:
        if key not in declared:
            raise ConfigError(f"{path}: {GLOBAL_KEY}.ros__parameters.{key}: no node declares it"
                              f"{_suggest(key, sorted(declared))}")
    nodes = []
    for name in names:
        cls = NODE_PARAMS[name]
        own = _section(path, raw, name)
        fields = field_types(cls)
        values = {k: v for k, v in shared.items() if k in fields}
        use_sim_time = shared.get("use_sim_time", False)
        for key, value in own.items():
            if key == "use_sim_time":
                use_sim_time = value
            elif key not in fields:
                raise ConfigError(f"{path}: {name}.ros__parameters.{key}: unknown parameter"
                                  f"{_suggest(key, sorted(fields))}; known: {sorted(fields)}")
            else:
                values[key] = value
        if not isinstance(use_sim_time, bool):
            raise ConfigError(f"{path}: {name}: use_sim_time must be true or false, got {use_sim_time!r}")
        if cls is HandDriverParams:
            values.setdefault("side", name.rsplit("_", 1)[1])
        try:
            params: object = coerce(cls, values, f"{path}: {name}.ros__parameters")
        except ConfigError as exc:
            msg = str(exc)
            raise ConfigError(msg if msg.startswith(path) else f"{path}: {msg}") from exc
        if isinstance(params, HandDriverParams) and name != f"hand_driver_{params.side}":
            raise ConfigError(f"{path}: {name}.ros__parameters.side: {params.side!r} does not match the node name")
        nodes.append(NodeSpec(name, params, use_sim_time))
    return BringupConfig(path, tuple(nodes))


def load_bringup_config(path: str | Path) -> BringupConfig:
    """Read and validate a bringup YAML. ConfigError names the file and the key (or line) at fault."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read bringup config ({exc.strerror})") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise ConfigError(f"{p}: {where}invalid YAML ({getattr(exc, 'problem', exc)})") from exc
    return parse_bringup_config(raw, str(p))


def config_path(name: str) -> Path:
    """A shipped config (``sim.yaml``): the repository's ``ros2_ws/config`` or the installed share dir
    (colcon's ament share directory, or pip's ``<prefix>/share``): :mod:`omnipianist.resources`."""
    tried = candidates("config", name)
    for c in tried:
        if c.is_file():
            return c
    raise ConfigError(f"config {name!r} not found in {', '.join(str(c) for c in tried)}")
