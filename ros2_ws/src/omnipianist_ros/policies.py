"""Policy providers: anything with ``reset()`` and ``act(obs) -> action`` (the env's action space).

``policy`` parameter: ``"prior"`` -> the OT/IK prior (:class:`sim_training.fingering.prior.OTIKPrior`);
a path ending in ``.onnx`` -> ``policy_export.runtime.Policy.load(path, embodiment)`` (an exported policy
whose metadata is its contract). :func:`check_contract` refuses a policy whose contract does not
match the embodiment before the node starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from omnipianist.errors import ConfigError, ContractError
from omnipianist.resources import candidates
from sim_training.env.observation import ObservationLayout, build_observation
from sim_training.models.piano import KEY_GEOMETRY
from sim_training.models.scene import Scene


class PolicyProvider(Protocol):
    name: str

    def reset(self) -> None: ...

    def act(self, obs: np.ndarray) -> np.ndarray: ...


class PriorPolicy:
    """The zero-training OT/IK prior; its contract is the embodiment's own layout."""

    def __init__(self, scene: Scene, lookahead: int) -> None:
        from sim_training.fingering.prior import OTIKPrior

        self.name = "prior"
        self.prior = OTIKPrior(scene, lookahead=lookahead)
        self.layout = self.prior.layout
        self.action_dim = scene.embodiment.action_dim
        self.embodiment = scene.embodiment.key
        self._warm_up(scene)

    def _warm_up(self, scene: Scene) -> None:
        """One act on the home-posture observation, then reset: the first call pays one-off costs
        (imports, allocations; measured ~0.5 s) that would otherwise trip the command watchdog."""
        lay = self.layout
        goal = np.zeros(lay.field("goal").shape, dtype=np.float32)
        tips = np.zeros(lay.field("fingertip_xyz").shape)
        tips[:] = KEY_GEOMETRY.target_xyz_m[39]
        self.prior.act(build_observation(lay, goal, np.zeros(88), 0.0, tips, scene.home_qpos[scene.hand_qpos_adr]))
        self.prior.reset()

    def reset(self) -> None:
        self.prior.reset()

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.prior.act(obs)


def shipped_model(path: Path) -> Path:
    """``path`` as given when it exists (or is absolute); a relative ``models/...`` path that does not
    exist from here is looked up among the shipped models (:mod:`omnipianist.resources`: the colcon
    install's share directory, the checkout), so ``policy:=models/generalist/fmt_shadow.onnx`` works
    from any working directory."""
    if path.is_absolute() or path.is_file():
        return path

    rel = Path(*path.parts[1:]) if path.parts and path.parts[0] == "models" else path
    for c in candidates("models", str(rel)):
        if c.is_file():
            return c
    return path


def load_policy(spec: str, scene: Scene, lookahead: int) -> PolicyProvider:
    """The provider named by the ``policy`` parameter. ConfigError for an unknown spec or a missing file."""
    if spec == "prior":
        return PriorPolicy(scene, lookahead)
    path = Path(spec)
    if path.suffix != ".onnx":
        raise ConfigError(f"policy: {spec!r} is neither 'prior' nor a .onnx file")
    path = shipped_model(path)
    if not path.is_file():
        raise ConfigError(f"policy: {path} does not exist")
    try:  # lazy: optional, its ImportError is reported below
        from policy_export.runtime import Policy
    except ImportError as exc:
        raise ConfigError(f"policy: cannot load {path}: policy_export.runtime is not available ({exc})") from exc
    policy: Any = Policy.load(str(path), scene.embodiment)
    if not hasattr(policy, "name"):
        try:
            policy.name = str(path)
        except AttributeError:
            pass
    return policy


def _described_layout(policy: Any) -> dict[str, Any] | None:
    for attr in ("observation_layout", "layout"):
        value = getattr(policy, attr, None)
        if isinstance(value, ObservationLayout):
            return value.to_dict()
        if isinstance(value, dict):
            return value
    return None


def check_contract(policy: Any, layout: ObservationLayout, action_dim: int, embodiment_key: str) -> None:
    """Raise ContractError when what ``policy`` declares (observation layout, action size, embodiment)
    differs from the node's embodiment; ``policy`` must declare at least its observation layout."""
    described = _described_layout(policy)
    name = getattr(policy, "name", type(policy).__name__)
    if described is None:
        raise ContractError(f"policy {name}: declares no observation layout; refusing to guess its contract")
    layout.check_matches(described, where=f"policy {name}")
    theirs = getattr(policy, "action_dim", None)
    if theirs is not None and int(theirs) != action_dim:
        raise ContractError(f"policy {name}: action_dim {theirs}, embodiment {embodiment_key!r} has {action_dim}")
    emb = getattr(policy, "embodiment", None)
    emb_key = getattr(emb, "key", emb)
    if isinstance(emb_key, str) and emb_key != embodiment_key:
        raise ContractError(f"policy {name}: trained for embodiment {emb_key!r}, the node drives {embodiment_key!r}")
