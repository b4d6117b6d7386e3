"""What a dataset store holds: the column tables, the store-level schema and one episode in memory.

Store layout (a zarr v3 group; all per-step columns stacked over every step of every episode)::

    /                     attrs: schema_version, embodiment, observation_layout, action_names,
                                 control_dt, obs_dim, action_dim, prior_config, collect_runs
    data/obs              (N, obs_dim) float32   env observation before the action (layout in attrs)
    data/action           (N, A) float32         the LABEL: what the imitation policy must output
    data/executed_action  (N, A) float32         what was executed while collecting (noisy / student)
    data/prior_action     (N, A) float32         the OT/IK prior's action at the same state
    data/reward           (N,) float32           env reward of the executed action
    data/key_state        (N, 88) float16        copy of obs field key_state (for analysis)
    data/goal_now         (N, 89) uint8          copy of goal row 0 (keys + sustain due now)
    meta/episode_ends     (E,) int64             exclusive end of each episode in N (the commit point)
    meta/<field>          (E,)                   one entry per episode, see EPISODE_META_COLUMNS

``data/*`` rows beyond ``episode_ends[-1]`` and ``meta/*`` entries beyond ``len(episode_ends)``
are an uncommitted partial write: readers ignore them and the next writer truncates them.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import numpy as np

from sim_training.constants import CONTROL_DT_S, GOAL_WIDTH, LOOKAHEAD_STEPS, NUM_KEYS
from sim_training.env.observation import ObservationLayout
from sim_training.models.embodiment import Embodiment

SCHEMA_VERSION = 1
"""Bumped on any change a reader of an older store would misread."""

DEFAULT_CHUNK_STEPS = 4096
"""Rows per chunk of the per-step columns."""
META_CHUNK_EPISODES = 1024
"""Entries per chunk of the per-episode columns."""

Mode = Literal["rollout", "relabel"]
MODES: tuple[str, ...] = ("rollout", "relabel")
LabelSource = Literal["prior", "expert", "expert-relabel", "planner", "planner-relabel"]
LABEL_SOURCES: tuple[str, ...] = ("prior", "expert", "expert-relabel", "planner", "planner-relabel")
"""``prior``: labelled by the OT/IK prior (any piece, free, lower quality); ``expert``: a trained
expert's own (noisy) rollouts; ``expert-relabel``: states visited by a student, labelled by an expert;
``planner``: the receding-horizon planner's own (noisy) rollouts, re-planning from where the noise left it;
``planner-relabel``: states visited by a student, labelled by the planner re-planning from them."""


@dataclass(frozen=True)
class StepColumn:
    """A per-step column: ``data/<name>`` of shape (N, *width) (width () for scalars)."""

    name: str
    dtype: str
    width: Literal["obs", "action", "keys", "goal", "scalar"]


STEP_COLUMNS: tuple[StepColumn, ...] = (
    StepColumn("obs", "float32", "obs"),
    StepColumn("action", "float32", "action"),
    StepColumn("executed_action", "float32", "action"),
    StepColumn("prior_action", "float32", "action"),
    StepColumn("reward", "float32", "scalar"),
    StepColumn("key_state", "float16", "keys"),
    StepColumn("goal_now", "uint8", "goal"),
)
STEP_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in STEP_COLUMNS)
DERIVED_COLUMNS: tuple[str, ...] = ("key_state", "goal_now")
"""Columns the writer computes from ``obs`` (never passed in)."""


@dataclass(frozen=True)
class EpisodeMeta:
    """Per-episode facts (one entry of each ``meta/<field>`` array)."""

    piece_id: str
    """Built-in piece name, corpus clip id, or MIDI file stem."""
    embodiment: str
    """Embodiment key (``shadow``, ``leap``, ``shadow-full-z`` ...)."""
    seed: int
    f1: float
    """Step-level F1 of the EXECUTED trajectory (noisy rollout or student), whole episode."""
    note_step_f1: float = math.nan
    """F1 on the steps that have notes."""
    do_nothing_f1: float = math.nan
    """F1 a policy that never presses scores on the same steps (report beside ``f1``)."""
    label_source: str = "prior"
    """One of LABEL_SOURCES."""
    mode: str = "rollout"
    """One of MODES."""
    round: int = 0
    """Relabel iteration (0 for rollouts)."""
    noise_std: float = 0.0
    """Std of the Gaussian noise added to the label to get the executed action (rollout mode)."""
    labeller: str = ""
    """Which labeller: ``otik-prior`` or the expert's directory name."""
    labeller_f1: float = math.nan
    """The labeller's own noise-free F1 on this piece, when known."""

    def __post_init__(self) -> None:
        if self.label_source not in LABEL_SOURCES:
            raise ValueError(f"label_source {self.label_source!r}: expected one of {LABEL_SOURCES}")
        if self.mode not in MODES:
            raise ValueError(f"mode {self.mode!r}: expected one of {MODES}")
        if not self.piece_id:
            raise ValueError("piece_id must not be empty")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _meta_dtype(tp: Any) -> str:
    return {"str": "str", "int": "int64", "float": "float64"}[tp if isinstance(tp, str) else tp.__name__]


EPISODE_META_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (f.name, _meta_dtype(f.type)) for f in fields(EpisodeMeta))
"""(name, dtype) of each ``meta/<name>`` array besides ``episode_ends`` (dtype ``str`` = UTF-8 strings)."""

META_FILL: dict[str, Any] = {"str": "", "int64": -1, "float64": math.nan}


@dataclass(frozen=True)
class StoreSchema:
    """Store-level facts fixed when the store is created (root attrs)."""

    embodiment: str
    obs_dim: int
    action_dim: int
    action_names: tuple[str, ...]
    observation_layout: dict[str, Any] = field(hash=False)
    control_dt: float = CONTROL_DT_S
    prior_config: dict[str, Any] = field(default_factory=dict, hash=False)
    """PriorConfig of the ``prior_action`` column (and of the prior labeller)."""

    @classmethod
    def for_embodiment(cls, embodiment: Embodiment, lookahead: int = LOOKAHEAD_STEPS,
                       prior_config: dict[str, Any] | None = None) -> StoreSchema:
        layout = ObservationLayout.for_embodiment(embodiment, lookahead)
        return cls(embodiment.key, layout.size, embodiment.action_dim, tuple(embodiment.action_names),
                   layout.to_dict(), CONTROL_DT_S, json.loads(_canon(prior_config or {})))

    def column_shape(self, col: StepColumn) -> tuple[int, ...]:
        return {"obs": (self.obs_dim,), "action": (self.action_dim,), "keys": (NUM_KEYS,),
                "goal": (GOAL_WIDTH,), "scalar": ()}[col.width]

    def field_slice(self, name: str) -> slice:
        """Slice of observation field ``name`` (from the stored layout)."""
        for f in self.observation_layout["fields"]:
            if f["name"] == name:
                return slice(int(f["offset"]), int(f["offset"]) + int(np.prod(f["shape"])))
        raise KeyError(f"observation layout has no field {name!r}")

    def derived(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        """``key_state`` (T, 88) float16 and ``goal_now`` (T, 89) uint8 from observations (T, obs_dim)."""
        g = self.field_slice("goal")
        goal_now = obs[:, g.start:g.start + GOAL_WIDTH]
        return {"key_state": obs[:, self.field_slice("key_state")].astype(np.float16),
                "goal_now": (goal_now > 0.5).astype(np.uint8)}

    def to_attrs(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "embodiment": self.embodiment, "obs_dim": self.obs_dim,
                "action_dim": self.action_dim, "action_names": list(self.action_names),
                "observation_layout": self.observation_layout, "control_dt": self.control_dt,
                "prior_config": self.prior_config}

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any], where: str = "store") -> StoreSchema:
        version = attrs.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"{where}: schema_version {version!r}, this code reads {SCHEMA_VERSION}")
        try:
            return cls(str(attrs["embodiment"]), int(attrs["obs_dim"]), int(attrs["action_dim"]),
                       tuple(attrs["action_names"]), dict(attrs["observation_layout"]),
                       float(attrs["control_dt"]), dict(attrs.get("prior_config") or {}))
        except KeyError as exc:
            raise ValueError(f"{where}: root attrs lack {exc}") from exc

    def check_compatible(self, other: StoreSchema, where: str = "store") -> None:
        """Raise ValueError naming the first store-level fact that differs."""
        for name in ("embodiment", "obs_dim", "action_dim", "action_names", "control_dt"):
            if getattr(self, name) != getattr(other, name):
                raise ValueError(f"{where}: {name} is {getattr(self, name)!r}, the data to append has "
                                 f"{getattr(other, name)!r} (one store per embodiment)")
        if self.observation_layout != other.observation_layout:
            raise ValueError(f"{where}: observation_layout differs from the data to append")
        if other.prior_config and self.prior_config and _canon(self.prior_config) != _canon(other.prior_config):
            raise ValueError(f"{where}: the prior_action column was made with another PriorConfig "
                             f"({self.prior_config} vs {other.prior_config}); use a new store")


def _canon(x: Any) -> str:
    return json.dumps(x, sort_keys=True, default=str)


@dataclass
class Episode:
    """One episode in memory: per-step arrays (T rows each) and its meta.

    ``obs[t]`` is the observation before step t; ``action[t]`` the label at that state;
    ``executed_action[t]`` what was sent to the env; ``reward[t]`` the reward of that step.
    ``key_state`` / ``goal_now`` are filled when read back from a store (the writer derives them).
    """

    obs: np.ndarray
    action: np.ndarray
    executed_action: np.ndarray
    prior_action: np.ndarray
    reward: np.ndarray
    meta: EpisodeMeta
    key_state: np.ndarray | None = None
    goal_now: np.ndarray | None = None

    @property
    def n_steps(self) -> int:
        return int(self.obs.shape[0])

    def arrays(self) -> dict[str, np.ndarray]:
        """The given (non-derived) step arrays by column name."""
        return {"obs": self.obs, "action": self.action, "executed_action": self.executed_action,
                "prior_action": self.prior_action, "reward": self.reward}
