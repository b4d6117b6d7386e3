"""Who labels the states: the OT/IK prior (any piece, free) or trained experts (best, minutes each).

A *policy* here is anything with ``reset()`` and ``act(obs) -> action`` (the OT/IK prior, an expert,
a student). Labellers are described by a picklable :class:`LabellerSpec` and built where they run
(Ray workers build their own; scenes and experts are cached per process).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from sim_training.experts.pipeline import load_expert
from sim_training.experts.planner import Planner, PlannerConfig, PlannerLabeller
from sim_training.fingering.prior import OTIKPrior, PriorConfig
from sim_training.models.embodiment import ActionSet, Embodiment, action_set_of, get_embodiment
from sim_training.models.scene import Scene, build_scene
from sim_training.music.builtin import BUILTIN_PIECES, MIDI_SUFFIXES
from sim_training.music.corpus import load_manifest

PRIOR_LABELLER = "otik-prior"
PLANNER_LABELLER = "planner"
EXPERT_FILES = ("expert.json", "best.pt", "last.pt")
"""A directory holding any of these is one expert."""


@runtime_checkable
class Policy(Protocol):
    """A stateful controller: ``reset()`` at each episode start, then ``act(obs)`` every step."""

    def reset(self) -> None: ...

    def act(self, obs: np.ndarray) -> np.ndarray: ...


# ----------------------------------------------------------------------------------- embodiments
@dataclass(frozen=True)
class EmbodimentRef:
    """Picklable name of an embodiment (what :func:`get_embodiment` takes)."""

    name: str = "shadow"
    action_set: ActionSet = "reduced"
    forearm_z: bool = False

    def get(self) -> Embodiment:
        return get_embodiment(self.name, self.action_set, self.forearm_z)

    @property
    def key(self) -> str:
        return self.get().key

    @classmethod
    def of(cls, emb: Embodiment) -> EmbodimentRef:
        return cls(emb.name, emb.action_set, emb.forearm_z)


@functools.cache
def cached_scene(ref: EmbodimentRef) -> Scene:
    """One compiled scene per embodiment per process."""
    return build_scene(ref.get())


from sim_training.fingering.knobs import prior_config_from_dict  # noqa: E402,F401 - re-exported (one home)


def prior_config_dict(cfg: PriorConfig) -> dict[str, Any]:
    """JSON-able dict of a PriorConfig."""
    return json.loads(json.dumps(asdict(cfg), default=str))


# ----------------------------------------------------------------------------------- pieces
@dataclass(frozen=True)
class PieceRef:
    """A piece: its id in the store and what :class:`PianoEnv` loads (built-in name or MIDI path)."""

    piece_id: str
    source: str


def resolve_piece(piece: str, manifest: Any = None) -> PieceRef:
    """A built-in name, a corpus clip id (``manifest`` or the shipped one) or a MIDI path -> PieceRef.

    Raises ValueError naming the piece when it is none of these.
    """
    if piece in BUILTIN_PIECES:
        return PieceRef(piece, piece)

    p = Path(piece)
    if p.suffix.lower() in MIDI_SUFFIXES:
        if p.is_file():
            return PieceRef(p.stem, str(p.resolve()))
        m = manifest if manifest is not None else load_manifest()
        try:  # a corpus clip recorded by its path in another checkout: the clip of that id here
            return PieceRef(p.stem, str(m.corpus_path(p.stem)))
        except Exception as exc:
            raise ValueError(f"piece {piece!r}: no such MIDI file") from exc
    m = manifest if manifest is not None else load_manifest()
    try:
        return PieceRef(piece, str(m.corpus_path(piece)))
    except Exception as exc:
        raise ValueError(f"piece {piece!r}: not a built-in ({sorted(BUILTIN_PIECES)}), corpus id or MIDI file") from exc


# ----------------------------------------------------------------------------------- labellers
@dataclass(frozen=True)
class LabellerSpec:
    """How to build a labeller: the prior (with a PriorConfig) or the expert in ``path``."""

    kind: Literal["prior", "expert", "planner"]
    embodiment: EmbodimentRef = field(default_factory=EmbodimentRef)
    path: str = ""
    prior_config: str = ""
    """JSON of PriorConfig fields ('' = defaults); a string so that the spec stays hashable."""
    f1: float = math.nan
    """The labeller's noise-free F1 on its piece when known (expert.json / result.json)."""
    planner_config: str = ""
    """JSON of PlannerConfig fields for the planner labeller ('' = defaults)."""

    @property
    def name(self) -> str:
        if self.kind == "planner":
            return PLANNER_LABELLER
        return PRIOR_LABELLER if self.kind == "prior" else Path(self.path).name

    def label_source(self, mode: str) -> str:
        if self.kind == "prior":
            return "prior"
        base = "planner" if self.kind == "planner" else "expert"
        return f"{base}-relabel" if mode == "relabel" else base

    def build_for(self, piece: PieceRef, scene: Scene | None = None) -> Policy:
        """A fresh labeller for ``piece`` (the planner plans one piece; the others ignore it). The
        planner labeller must be ``attach``-ed to the episode's env (``collect_episode`` does)."""
        if self.kind != "planner":
            return self.build(scene)
        return self.build_planner(piece, scene)

    def build_planner(self, piece: PieceRef, scene: Scene | None = None) -> PlannerLabeller:
        """:meth:`build_for` of a ``planner`` spec (its labeller: the caller closes ``.planner``)."""
        if self.kind != "planner":
            raise ValueError(f"a {self.kind!r} labeller is no planner")
        sc = scene if scene is not None else cached_scene(self.embodiment)
        cfg = PlannerConfig(**json.loads(self.planner_config or "{}"))
        base = prior_config_from_dict(json.loads(self.prior_config or "{}"))
        return PlannerLabeller(Planner(piece.source, self.embodiment.get(), cfg, scene=sc, base=base))

    def build(self, scene: Scene | None = None) -> Policy:
        """A fresh labeller (experts are cached per process; call ``reset()`` before each episode)."""
        if self.kind == "planner":
            raise ValueError("the planner labeller plans one piece: use build_for(piece)")
        if self.kind == "prior":
            sc = scene if scene is not None else cached_scene(self.embodiment)
            return OTIKPrior(sc, prior_config_from_dict(json.loads(self.prior_config or "{}")))
        return load_expert_policy(self.path, self.embodiment)


@functools.cache
def load_expert_policy(path: str, embodiment: EmbodimentRef | None = None) -> Policy:
    """The expert in directory ``path`` (cached per process; torch on one thread).

    A ``train_piece_expert`` folder (``expert.json``) loads with
    :func:`sim_training.experts.pipeline.load_expert` (residual policy or searched prior); a bare
    ``train_expert`` run (``best.pt`` / ``last.pt``) with :meth:`ExpertPolicy.load`. ``embodiment``
    shares this process's compiled scene (the loaders raise ValueError on a mismatch).
    """
    import torch

    torch.set_num_threads(1)
    scene = cached_scene(embodiment) if embodiment is not None else None
    if (Path(path) / "expert.json").is_file():
        return load_expert(path, scene=scene)
    from sim_training.experts.policy import ExpertPolicy

    return ExpertPolicy.load(path, scene=scene)


@dataclass(frozen=True)
class ExpertInfo:
    """One expert directory and what it plays."""

    path: str
    piece: PieceRef
    embodiment: EmbodimentRef
    f1: float = math.nan

    def spec(self) -> LabellerSpec:
        return LabellerSpec("expert", self.embodiment, self.path, "", self.f1)


def _read_json(p: Path) -> dict[str, Any]:
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def is_expert_dir(path: Path) -> bool:
    return path.is_dir() and any((path / n).is_file() for n in EXPERT_FILES)


def describe_expert(path: str | Path, manifest: Any = None) -> ExpertInfo:
    """Piece, embodiment and F1 of an expert directory from ``expert.json``, ``config.json`` and
    ``result.json`` (the checkpoint is loaded only when they do not name the piece or embodiment).

    Raises ValueError naming the directory when its piece cannot be found.
    """
    d = Path(path)
    info: dict[str, Any] = {}
    for name in ("result.json", "config.json", "expert.json"):  # later files win
        info.update({k: v for k, v in _read_json(d / name).items() if v is not None})
    emb = info.get("embodiment")
    if isinstance(emb, dict):  # checkpoint-style {"name", "action_set", "forearm_z"}
        info.setdefault("action_set", emb.get("action_set"))
        info.setdefault("forearm_z", emb.get("forearm_z"))
        emb = emb.get("name")
    if "piece" not in info or not isinstance(emb, str):
        policy = load_expert_policy(str(d))
        meta = getattr(policy, "meta", {}) or {}
        info.setdefault("piece", meta.get("piece"))
        e = getattr(policy, "embodiment", None)
        if isinstance(e, Embodiment):
            emb, info["action_set"], info["forearm_z"] = e.name, e.action_set, e.forearm_z
    if not info.get("piece"):
        raise ValueError(f"{d}: expert names no piece (expert.json / config.json 'piece')")
    name = str(emb or "shadow").split("-")[0]
    ref = EmbodimentRef(name, action_set_of(info.get("action_set") or "reduced"), bool(info.get("forearm_z") or False))
    f1 = math.nan
    for k in ("expert_f1", "best_f1", "f1"):  # expert.json, then a train_expert result.json
        if isinstance(info.get(k), int | float) and info[k] >= 0:
            f1 = float(info[k])
            break
    return ExpertInfo(str(d), resolve_piece(str(info["piece"]), manifest), ref, f1)


def find_experts(experts_dir: str | Path, manifest: Any = None) -> list[ExpertInfo]:
    """Experts in ``experts_dir``: the directory itself if it is one, else each expert subdirectory
    (sorted). Raises FileNotFoundError when there is none."""
    root = Path(experts_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory of experts")
    dirs = [root] if is_expert_dir(root) else sorted(p for p in root.iterdir() if is_expert_dir(p))
    if not dirs:
        raise FileNotFoundError(f"{root}: no expert directories (each holds one of {EXPERT_FILES})")
    return [describe_expert(p, manifest) for p in dirs]


# ----------------------------------------------------------------------------------- students
class NoisyPolicy:
    """``base`` plus Gaussian action noise (clipped to [-1, 1]); a stand-in student for relabelling."""

    def __init__(self, base: Policy, noise_std: float, seed: int = 0) -> None:
        self.base = base
        self.noise_std = float(noise_std)
        self._seed = seed
        self.rng = np.random.default_rng(seed)
        self._episodes = 0

    def reset(self) -> None:
        self.base.reset()
        self.rng = np.random.default_rng((self._seed, self._episodes))
        self._episodes += 1

    def act(self, obs: np.ndarray) -> np.ndarray:
        a = np.asarray(self.base.act(obs), dtype=np.float64)
        return np.clip(a + self.rng.normal(0.0, self.noise_std, a.shape), -1.0, 1.0)


@dataclass(frozen=True)
class NoisyPriorStudent:
    """Picklable student builder: the OT/IK prior with action noise (until the imitation trainer
    provides real students). Call it (in any process) to get a fresh :class:`NoisyPolicy`."""

    embodiment: EmbodimentRef = field(default_factory=EmbodimentRef)
    noise_std: float = 0.1
    prior_config: str = ""
    seed: int = 0

    def __call__(self) -> Policy:
        prior = OTIKPrior(cached_scene(self.embodiment), prior_config_from_dict(json.loads(self.prior_config or "{}")))
        return NoisyPolicy(prior, self.noise_std, self.seed)
