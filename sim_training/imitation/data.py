"""The imitation dataset as the trainer sees it: a zarr store -> episodes -> (obs history, action chunk) windows.

Store contract (written by :mod:`sim_training.dataset`)::

    data/obs              (N, D) float32   observations (layout: root attr ``observation_layout``)
    data/action           (N, A) float32   the label: the expert's (relabelled) action at that step
    meta/episode_ends     (E,)   int64     exclusive end index of each episode in the N rows
    meta/piece_id         (E,)   str       the piece each episode plays
    attrs: observation_layout, embodiment, action_names [, control_dt]

Windows (diffusion-policy convention): for step ``i`` of an episode ``[s, e)`` the observation
history is rows ``i - To + 1 .. i`` and the action chunk rows ``i .. i + H - 1``; indices before
``s`` repeat row ``s`` and indices at or past ``e`` repeat row ``e - 1`` (padding at the episode
borders, never crossing into another episode). At deployment the first observation of an episode
is likewise repeated to fill the history.

The arrays are read into memory (D = 1150 float32: ~4.6 kB a step, ~4.6 GB per million steps).
Stores written by :mod:`sim_training.dataset` are read through its ``DatasetReader``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim_training.constants import CONTROL_DT_S
from sim_training.imitation.residual import augment_layout, augment_obs


@dataclass
class EpisodeData:
    """Everything the trainer needs from a store. ``obs`` (N, D), ``action`` (N, A), ``episode_ends`` (E,)."""

    obs: np.ndarray
    action: np.ndarray
    episode_ends: np.ndarray
    piece_id: np.ndarray
    observation_layout: dict[str, Any]
    embodiment: Any
    action_names: list[str]
    control_dt: float = CONTROL_DT_S
    source: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.obs)
        ends = np.asarray(self.episode_ends, dtype=np.int64)
        where = self.source or "dataset"
        if len(self.action) != n:
            raise ValueError(f"{where}: data/obs has {n} rows, data/action {len(self.action)}")
        if ends.ndim != 1 or len(ends) == 0 or ends[-1] != n or np.any(np.diff(ends) <= 0) or ends[0] <= 0:
            raise ValueError(f"{where}: meta/episode_ends must increase strictly and end at N={n}, got {ends[:5]}...")
        if len(self.piece_id) != len(ends):
            raise ValueError(f"{where}: meta/piece_id has {len(self.piece_id)} entries, episode_ends {len(ends)}")
        size = int(self.observation_layout["size"])
        if self.obs.shape[1] != size:
            raise ValueError(f"{where}: data/obs has {self.obs.shape[1]} columns, observation_layout size {size}")
        if self.action_names and len(self.action_names) != self.action.shape[1]:
            raise ValueError(f"{where}: {len(self.action_names)} action_names, data/action has {self.action.shape[1]} columns")
        self.episode_ends = ends
        self.piece_id = np.asarray([str(p) for p in self.piece_id])

    @property
    def episode_starts(self) -> np.ndarray:
        return np.concatenate([[0], self.episode_ends[:-1]])

    @property
    def n_episodes(self) -> int:
        return len(self.episode_ends)

    @property
    def obs_dim(self) -> int:
        return int(self.obs.shape[1])

    @property
    def action_dim(self) -> int:
        return int(self.action.shape[1])

    def data_card_id(self) -> str:
        """16 hex digits identifying the data: sha256 of the episode ends and the piece ids."""
        h = hashlib.sha256(self.episode_ends.astype("<i8").tobytes())
        h.update("\n".join(self.piece_id.tolist()).encode())
        return h.hexdigest()[:16]


def open_store(store: str | Path, residual_on_prior: bool = False) -> EpisodeData:
    """Read the COMMITTED episodes of a store into memory.

    ``residual_on_prior``: return the residual view (:mod:`sim_training.imitation.residual`):
    ``obs ⊕ prior_action`` as observations (layout with a ``prior_action`` field) and
    ``action - prior_action`` as labels; needs a store with the ``prior_action`` column.

    Stores written by :class:`sim_training.dataset.DatasetWriter` (root attr ``schema_version``) are
    read through :class:`sim_training.dataset.DatasetReader` (which drops an uncommitted tail left by
    a killed writer); a bare store with just the contract's arrays and attrs is read directly.
    Raises FileNotFoundError / KeyError / ValueError naming the path and what is missing.
    """
    import zarr

    path = Path(store)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such dataset store")
    attrs = dict(zarr.open_group(str(path), mode="r").attrs)
    if "schema_version" in attrs:
        from sim_training.dataset import DatasetReader

        reader = DatasetReader(path)
        s = reader.schema
        obs, action, layout = reader.column("obs"), reader.column("action"), s.observation_layout
        attrs = dict(reader.attrs)
        if residual_on_prior:
            prior = reader.column("prior_action")
            obs, action = augment_obs(obs, prior), (action - prior).astype(np.float32)
            layout = augment_layout(layout, action.shape[1])
            attrs["residual_on_prior"] = True
        return EpisodeData(obs=obs, action=action, episode_ends=reader.episode_ends,
                           piece_id=reader.meta["piece_id"], observation_layout=layout,
                           embodiment=s.embodiment, action_names=list(s.action_names), control_dt=s.control_dt,
                           source=str(path), attrs=attrs)
    if residual_on_prior:
        raise KeyError(f"{path}: a bare store has no prior_action column; residual_on_prior needs a dataset store")
    root = zarr.open_group(str(path), mode="r")
    arrays = {}
    for name in ("data/obs", "data/action", "meta/episode_ends", "meta/piece_id"):
        node = root.get(name)
        if not isinstance(node, zarr.Array):
            raise KeyError(f"{path}: store has no array {name!r}")
        arrays[name] = node[:]
    for name in ("observation_layout", "embodiment", "action_names"):
        if name not in attrs:
            raise KeyError(f"{path}: store has no root attribute {name!r}")
    bare_layout, names, control_dt = (attrs["observation_layout"], attrs["action_names"],
                                      attrs.get("control_dt", CONTROL_DT_S))
    if not isinstance(bare_layout, dict) or not isinstance(names, list) or not isinstance(control_dt, int | float):
        raise ValueError(f"{path}: root attributes observation_layout (an object), action_names (a list) and "
                         f"control_dt (a number) have the wrong types")
    return EpisodeData(
        obs=np.asarray(arrays["data/obs"], dtype=np.float32),
        action=np.asarray(arrays["data/action"], dtype=np.float32),
        episode_ends=np.asarray(arrays["meta/episode_ends"], dtype=np.int64),
        piece_id=np.asarray(arrays["meta/piece_id"]),
        observation_layout=bare_layout, embodiment=attrs["embodiment"],
        action_names=[str(n) for n in names], control_dt=float(control_dt),
        source=str(path), attrs=attrs,
    )


def write_store(data: EpisodeData, store: str | Path) -> None:
    """Write ``data`` as a BARE zarr v3 store (the contract's arrays and attrs only; for tests and small tools).

    Real datasets are written by :class:`sim_training.dataset.DatasetWriter`."""
    import zarr

    root = zarr.open_group(str(store), mode="w", zarr_format=3)
    root.create_array("data/obs", data=np.asarray(data.obs, dtype=np.float32))
    root.create_array("data/action", data=np.asarray(data.action, dtype=np.float32))
    root.create_array("meta/episode_ends", data=np.asarray(data.episode_ends, dtype=np.int64))
    pieces = root.create_array("meta/piece_id", shape=(len(data.piece_id),), dtype=str)  # variable-length UTF-8
    pieces[:] = np.asarray([str(p) for p in data.piece_id], dtype=object)
    root.attrs.update({"observation_layout": data.observation_layout, "embodiment": data.embodiment,
                       "action_names": list(data.action_names), "control_dt": data.control_dt})


def split_episodes(data: EpisodeData, val_fraction: float, seed: int,
                   train_pieces: tuple[str, ...] | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Train / validation episode indices, split BY PIECE (held-out pieces measure generalisation).

    ``train_pieces`` (if given) restricts the whole dataset to those pieces first. With one piece
    left the split falls back to episodes; with one episode, validation reuses it (``val_is_train``).
    Returns (train (E_t,), val (E_v,), info dict with the piece lists).
    """
    pieces = data.piece_id
    keep = np.arange(data.n_episodes)
    if train_pieces:
        missing = sorted(set(train_pieces) - set(pieces.tolist()))
        if missing:
            raise KeyError(f"{data.source}: train_pieces not in the store: {missing[:5]}")
        keep = keep[np.isin(pieces, list(train_pieces))]
    rng = np.random.default_rng(seed)
    names = sorted(set(pieces[keep].tolist()))
    info: dict[str, Any] = {"split": "piece", "val_is_train": False}
    if len(names) >= 2:
        n_val = min(max(int(round(val_fraction * len(names))), 1 if val_fraction > 0 else 0), len(names) - 1)
        val_names = set(rng.permutation(names)[:n_val].tolist())
        is_val = np.isin(pieces[keep], list(val_names))
        train, val = keep[~is_val], keep[is_val]
    elif len(keep) >= 2 and val_fraction > 0:
        info["split"] = "episode"
        n_val = min(max(int(round(val_fraction * len(keep))), 1), len(keep) - 1)
        perm = rng.permutation(keep)
        train, val = np.sort(perm[n_val:]), np.sort(perm[:n_val])
    else:
        info["split"] = "none"
        train, val = keep, keep[:0]
    if len(val) == 0:
        val, info["val_is_train"] = train, True
    info["train_pieces"] = sorted(set(pieces[train].tolist()))
    info["val_pieces"] = sorted(set(pieces[val].tolist()))
    return train, val, info


class WindowSampler:
    """Uniform random windows over the steps of a set of episodes (padding: see the module docstring).

    The window rule is :func:`sim_training.dataset.window_indices` (one definition for the dataset and
    the trainer); this class binds it to the in-memory arrays and an episode subset.
    """

    def __init__(self, data: EpisodeData, episodes: np.ndarray, obs_horizon: int, pred_horizon: int) -> None:
        if len(episodes) == 0:
            raise ValueError(f"{data.source}: no episodes to sample from")
        self.data, self.to, self.h = data, obs_horizon, pred_horizon
        self.episodes = np.asarray(episodes, dtype=np.int64)
        starts, ends = data.episode_starts[self.episodes], data.episode_ends[self.episodes]
        self._rows = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)])

    def __len__(self) -> int:
        """Steps (= distinct windows) in the sampler's episodes."""
        return len(self._rows)

    def indices(self, rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """Row indices of ``batch`` uniform windows: obs (B, To), action (B, H)."""
        from sim_training.dataset import window_indices

        d = self.data
        return window_indices(rng, d.episode_starts, d.episode_ends, batch, self.to, self.h, self.episodes)

    def sample(self, rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """``batch`` uniform windows: obs (B, To, D) float32, action (B, H, A) float32."""
        obs_idx, act_idx = self.indices(rng, batch)
        return self.data.obs[obs_idx], self.data.action[act_idx]

    def rows(self) -> np.ndarray:
        """Row indices of every step of the sampler's episodes (for normalisation statistics)."""
        return self._rows
