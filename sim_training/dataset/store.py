"""Append-only zarr store of episodes: :class:`DatasetWriter` and :class:`DatasetReader`.

Crash safety (what a kill at any instant can and cannot do):

* Every file the local store writes (chunk or ``zarr.json``) goes to a temporary file that is then
  renamed over the target, so each file is either its old or its new version, never half-written.
  Object stores (fsspec URLs such as ``s3://``) replace whole objects, which gives the same.
* :meth:`DatasetWriter.append_episode` appends, in this order: every ``data/*`` column, every
  ``meta/*`` column, then ``meta/episode_ends`` (the commit point). An episode exists once its
  end is in ``episode_ends``; until then its rows are an uncommitted tail.
* ``zarr`` appends by growing the array's shape first and writing chunks after, so a kill inside the
  ``episode_ends`` append can leave a trailing entry that reads as the fill value (-1). Readers take
  the longest valid prefix of ``episode_ends`` (strictly increasing, within every column's length),
  so that entry is ignored too.
* Rewriting a chunk that straddles the committed end rewrites committed rows with their own values
  (atomically), so committed episodes never change.
* A new writer truncates every column to the committed counts and deletes stray temporary files
  (``*.partial``) before appending. Only one writer at a time: local stores are locked with
  ``flock`` on the store directory (released by the OS when a writer dies).

Not covered: power loss (no fsync) and concurrent writers on object stores.
"""

from __future__ import annotations

import fcntl
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import zarr
import zarr.codecs
from zarr.abc.store import Store
from zarr.storage import FsspecStore, LocalStore

from sim_training.dataset.schema import (
    DEFAULT_CHUNK_STEPS,
    EPISODE_META_COLUMNS,
    META_CHUNK_EPISODES,
    META_FILL,
    STEP_COLUMN_NAMES,
    STEP_COLUMNS,
    Episode,
    EpisodeMeta,
    StoreSchema,
)

EPISODE_ENDS = "episode_ends"
MAX_CHUNK_BYTES = 8 * 2**20
"""Uncompressed bytes per chunk at most (see :func:`chunk_rows`)."""
_ENDS_FILL = -1


def is_local(url: str | os.PathLike[str]) -> bool:
    """True for a plain path or a ``file://`` URL."""
    s = os.fspath(url)
    return "://" not in s or s.startswith("file://")


def local_path(url: str | os.PathLike[str]) -> Path:
    s = os.fspath(url)
    return Path(s[len("file://"):] if s.startswith("file://") else s)


def open_store(url: str | os.PathLike[str], read_only: bool) -> Store:
    """A zarr store for a local directory (default) or any fsspec URL (``memory://``, ``s3://`` ...)."""
    if is_local(url):
        return LocalStore(local_path(url), read_only=read_only)
    return FsspecStore.from_url(os.fspath(url), read_only=read_only)


def _compressor() -> zarr.codecs.BloscCodec:
    return zarr.codecs.BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")


def _read_all(arr: zarr.Array) -> np.ndarray:
    return np.asarray(arr[...])


def chunk_rows(chunk_steps: int, row_bytes: int) -> int:
    """Rows per chunk: ``chunk_steps``, halved until a chunk holds at most MAX_CHUNK_BYTES (min 256).

    Appending an episode rewrites the last chunk of each column, so wide columns (``obs``: 4.6 kB per
    row for shadow) get shorter chunks (1024 rows = 4.7 MB) to keep that cheap."""
    rows = chunk_steps
    while rows > 256 and rows * row_bytes > MAX_CHUNK_BYTES:
        rows //= 2
    return rows


def committed_counts(ends: np.ndarray, step_lengths: Iterable[int], meta_lengths: Iterable[int]) -> tuple[int, int]:
    """(episodes, steps) committed: the longest prefix of ``ends`` that is strictly increasing, > 0,
    and covered by every step column (``step_lengths``) and every meta column (``meta_lengths``)."""
    max_steps = min(step_lengths, default=0)
    max_eps = min(min(meta_lengths, default=len(ends)), len(ends))
    prev, n = 0, 0
    for e in np.asarray(ends[:max_eps], dtype=np.int64):
        if e <= prev or e > max_steps:
            break
        prev, n = int(e), n + 1
    return n, prev


class _Layout(NamedTuple):
    root: zarr.Group
    step: dict[str, zarr.Array]
    meta: dict[str, zarr.Array]
    ends: zarr.Array


def _array(root: zarr.Group, name: str) -> zarr.Array:
    """The array ``name`` of ``root`` (KeyError when missing, ValueError when it is a group)."""
    node = root[name]
    if not isinstance(node, zarr.Array):
        raise ValueError(f"store node {name!r} is a group, not an array")
    return node


def _open_layout(root: zarr.Group) -> _Layout:
    step = {c: _array(root, f"data/{c}") for c in STEP_COLUMN_NAMES}
    meta = {name: _array(root, f"meta/{name}") for name, _ in EPISODE_META_COLUMNS}
    return _Layout(root, step, meta, _array(root, f"meta/{EPISODE_ENDS}"))


def _counts(lay: _Layout) -> tuple[int, int]:
    ends = _read_all(lay.ends)
    return committed_counts(ends, (a.shape[0] for a in lay.step.values()), (a.shape[0] for a in lay.meta.values()))


# ----------------------------------------------------------------------------------------- writer
class DatasetWriter:
    """The only writer of a store; appends whole episodes (see the module docstring for the protocol).

    ``schema`` is required to create a new store; for an existing store it is checked against the
    stored one (ValueError naming the difference). ``chunk_steps`` applies to new stores only.
    Use as a context manager or call :meth:`close` (releases the lock).
    """

    def __init__(self, store_url: str | os.PathLike[str], schema: StoreSchema | None = None, *,
                 chunk_steps: int = DEFAULT_CHUNK_STEPS) -> None:
        self.url = os.fspath(store_url)
        self._lock_fd: int | None = None
        if is_local(self.url):
            path = local_path(self.url)
            path.mkdir(parents=True, exist_ok=True)
            self._lock(path)
            for stray in path.rglob("*.partial"):  # temp files of writes killed before their rename
                stray.unlink(missing_ok=True)
        store = open_store(self.url, read_only=False)
        root = zarr.open_group(store, mode="a")
        stored = None
        if root.attrs.get("schema_version") is not None:
            stored = StoreSchema.from_attrs(dict(root.attrs), self.url)
        if stored is None:  # new store, or one whose creation was killed before its attrs were written
            if schema is None:
                raise ValueError(f"{self.url}: no dataset here yet; a StoreSchema is needed to create one")
            ends = root.get(f"meta/{EPISODE_ENDS}")
            if isinstance(ends, zarr.Array) and ends.shape[0] > 0:
                raise ValueError(f"{self.url}: has episodes but no schema attrs; not a dataset store")
            self._create(root, schema, chunk_steps)
            stored = schema
        elif schema is not None:
            stored.check_compatible(schema, self.url)
        self.schema = stored
        self._lay = _open_layout(root)
        self.n_episodes, self.n_steps = self._truncate_uncommitted()

    # ------------------------------------------------------------------------------- set-up
    def _lock(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise RuntimeError(f"{path}: another DatasetWriter holds this store (one writer at a time)") from exc
        self._lock_fd = fd

    @staticmethod
    def _create(root: zarr.Group, schema: StoreSchema, chunk_steps: int) -> None:
        data = root.require_group("data")
        for col in STEP_COLUMNS:
            shape = schema.column_shape(col)
            rows = chunk_rows(chunk_steps, int(np.prod(shape)) * np.dtype(col.dtype).itemsize)
            data.create_array(col.name, shape=(0, *shape), chunks=(rows, *shape), dtype=col.dtype,
                              compressors=_compressor(), fill_value=0, overwrite=True)
        meta = root.require_group("meta")
        meta.create_array(EPISODE_ENDS, shape=(0,), chunks=(META_CHUNK_EPISODES,), dtype="int64",
                          fill_value=_ENDS_FILL, overwrite=True)
        for name, dtype in EPISODE_META_COLUMNS:
            kw: dict[str, Any] = {} if dtype == "str" else {"compressors": _compressor()}
            meta.create_array(name, shape=(0,), chunks=(META_CHUNK_EPISODES,), dtype=dtype,
                              fill_value=META_FILL[dtype], overwrite=True, **kw)
        # schema_version last: its presence marks a completely created store
        root.attrs.update({**schema.to_attrs(), "collect_runs": [], "created": time.strftime("%Y-%m-%dT%H:%M:%S")})

    def _truncate_uncommitted(self) -> tuple[int, int]:
        lay = self._lay
        n_eps, n_steps = _counts(lay)
        if lay.ends.shape[0] > n_eps:  # invalid tail: overwrite with the fill value, then shrink
            lay.ends[n_eps:] = _ENDS_FILL
            lay.ends.resize((n_eps,))
        for arr in lay.meta.values():
            if arr.shape[0] > n_eps:
                arr.resize((n_eps,))
        for arr in lay.step.values():
            if arr.shape[0] > n_steps:
                arr.resize((n_steps, *arr.shape[1:]))
        return n_eps, n_steps

    # ------------------------------------------------------------------------------- writing
    def _append_column(self, arr: zarr.Array, values: np.ndarray) -> None:
        """One column append (a seam for tests that slow writes down)."""
        arr.append(values)

    def append_episode(self, obs: np.ndarray, action: np.ndarray, executed_action: np.ndarray | None,
                       prior_action: np.ndarray, reward: np.ndarray, meta: EpisodeMeta | Mapping[str, Any]) -> int:
        """Append one episode; returns its index. ``executed_action`` None = the label was executed.

        Shapes: obs (T, obs_dim), action / executed_action / prior_action (T, A), reward (T,), T >= 1.
        Raises ValueError naming the column whose shape or values are wrong (nothing is written then).
        """
        m = meta if isinstance(meta, EpisodeMeta) else EpisodeMeta(**dict(meta))
        if m.embodiment != self.schema.embodiment:
            raise ValueError(f"{self.url}: episode embodiment {m.embodiment!r}, store is {self.schema.embodiment!r}")
        arrays = {"obs": obs, "action": action, "executed_action": action if executed_action is None else executed_action,
                  "prior_action": prior_action, "reward": reward}
        cols = {c.name: c for c in STEP_COLUMNS}
        t = int(np.shape(obs)[0]) if np.ndim(obs) else 0
        if t < 1:
            raise ValueError(f"{self.url}: an episode needs at least one step (obs has shape {np.shape(obs)})")
        out: dict[str, np.ndarray] = {}
        for name, values in arrays.items():
            col = cols[name]
            a = np.asarray(values, dtype=col.dtype)
            want = (t, *self.schema.column_shape(col))
            if a.shape != want:
                raise ValueError(f"{self.url}: column {name!r} has shape {a.shape}, expected {want}")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{self.url}: column {name!r} has non-finite values")
            out[name] = a
        out.update(self.schema.derived(out["obs"]))
        lay = self._lay
        for name in STEP_COLUMN_NAMES:
            self._append_column(lay.step[name], out[name])
        meta_values = m.to_dict()
        for name, dtype in EPISODE_META_COLUMNS:
            v = meta_values[name]
            self._append_column(lay.meta[name], np.array([v], dtype=str if dtype == "str" else dtype))
        self._append_column(lay.ends, np.array([self.n_steps + t], dtype=np.int64))  # commit
        self.n_episodes += 1
        self.n_steps += t
        return self.n_episodes - 1

    def append(self, episode: Episode) -> int:
        """:meth:`append_episode` for an :class:`Episode`."""
        return self.append_episode(episode.obs, episode.action, episode.executed_action, episode.prior_action,
                                   episode.reward, episode.meta)

    # ------------------------------------------------------------------------------- attrs
    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self._lay.root.attrs)

    def update_attrs(self, **values: Any) -> None:
        """Set root attributes (JSON values); the schema keys cannot be changed."""
        fixed = set(self.schema.to_attrs())
        bad = fixed.intersection(values)
        if bad:
            raise ValueError(f"{self.url}: attrs {sorted(bad)} are fixed at creation")
        self._lay.root.attrs.update(values)

    def record_run(self, run: dict[str, Any]) -> None:
        """Append one entry to the ``collect_runs`` history (command, times, counts)."""
        before = self._lay.root.attrs.get("collect_runs")
        runs = list(before) if isinstance(before, list) else []
        runs.append(run)
        self._lay.root.attrs.update({"collect_runs": runs})

    def close(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


# ----------------------------------------------------------------------------------------- reader
class DatasetReader:
    """Read-only view of the committed episodes of a store (re-open or :meth:`refresh` to see new ones).

    Per-step arrays come trimmed to ``episode_ends[-1]`` and per-episode arrays to
    ``len(episode_ends)``. :meth:`column` loads a whole column into memory once (cached);
    :meth:`episode` reads just one episode's rows.
    """

    def __init__(self, store_url: str | os.PathLike[str]) -> None:
        self.url = os.fspath(store_url)
        if is_local(self.url) and not (local_path(self.url) / "zarr.json").is_file():
            raise FileNotFoundError(f"{self.url}: no dataset store here")
        try:
            root = zarr.open_group(open_store(self.url, read_only=True), mode="r")
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"{self.url}: no dataset store here") from exc
        self.schema = StoreSchema.from_attrs(dict(root.attrs), self.url)
        self._lay = _open_layout(root)
        self._cache: dict[str, np.ndarray] = {}
        self.refresh()

    def refresh(self) -> None:
        """Re-read the committed counts (after another process appended)."""
        root = zarr.open_group(open_store(self.url, read_only=True), mode="r")
        self._lay = _open_layout(root)
        self.attrs: dict[str, Any] = dict(root.attrs)
        ends = _read_all(self._lay.ends)
        self.n_episodes, self.n_steps = _counts(self._lay)
        self.episode_ends = ends[: self.n_episodes].astype(np.int64)
        self.episode_starts = np.concatenate([[0], self.episode_ends])[:-1].astype(np.int64)
        self.meta: dict[str, np.ndarray] = {}
        for name, dtype in EPISODE_META_COLUMNS:
            values = _read_all(self._lay.meta[name])[: self.n_episodes]
            self.meta[name] = np.array(values.tolist(), dtype=str) if dtype == "str" else values
        self._cache.clear()

    # ------------------------------------------------------------------------------- episodes
    @property
    def obs_dim(self) -> int:
        return self.schema.obs_dim

    @property
    def action_dim(self) -> int:
        return self.schema.action_dim

    def episode_slice(self, i: int) -> slice:
        """Rows of episode ``i`` in the per-step columns (negative i counts from the end)."""
        i = self._check_episode(i)
        return slice(int(self.episode_starts[i]), int(self.episode_ends[i]))

    def episode_lengths(self) -> np.ndarray:
        return self.episode_ends - self.episode_starts

    def episode_meta(self, i: int) -> EpisodeMeta:
        i = self._check_episode(i)
        values: dict[str, Any] = {}
        for name, dtype in EPISODE_META_COLUMNS:
            v = self.meta[name][i]
            values[name] = str(v) if dtype == "str" else (int(v) if dtype == "int64" else float(v))
        return EpisodeMeta(**values)

    def episode(self, i: int) -> Episode:
        """Episode ``i`` with every column (read from the cache when loaded, else from the store)."""
        sl = self.episode_slice(i)
        cols = {name: (self._cache[name][sl] if name in self._cache else np.asarray(self._lay.step[name][sl]))
                for name in STEP_COLUMN_NAMES}
        return Episode(cols["obs"], cols["action"], cols["executed_action"], cols["prior_action"], cols["reward"],
                       self.episode_meta(i), key_state=cols["key_state"], goal_now=cols["goal_now"])

    def _check_episode(self, i: int) -> int:
        j = i + self.n_episodes if i < 0 else i
        if not 0 <= j < self.n_episodes:
            raise IndexError(f"{self.url}: episode {i} out of range ({self.n_episodes} committed)")
        return j

    def column(self, name: str) -> np.ndarray:
        """Committed rows of per-step column ``name`` (N, ...), loaded once and cached.

        Memory: ``obs`` is 4 x obs_dim bytes per step (4.6 kB for shadow; 1M steps = 4.6 GB).
        """
        if name not in STEP_COLUMN_NAMES:
            raise KeyError(f"no per-step column {name!r}; columns: {STEP_COLUMN_NAMES}")
        if name not in self._cache:
            self._cache[name] = np.asarray(self._lay.step[name][: self.n_steps])
        return self._cache[name]

    def zarr_array(self, name: str) -> zarr.Array:
        """The raw zarr array ``data/<name>`` (NOT trimmed: slice it to ``n_steps``)."""
        return self._lay.step[name]

    # ------------------------------------------------------------------------------- pieces
    def pieces(self) -> list[str]:
        """Sorted distinct piece ids."""
        return sorted(set(self.meta["piece_id"].tolist()))

    def episodes_for_pieces(self, piece_ids: Iterable[str]) -> np.ndarray:
        """Indices of the episodes whose piece is in ``piece_ids``."""
        return np.flatnonzero(np.isin(self.meta["piece_id"], np.array(sorted(set(piece_ids)), dtype=str)))

    def split_by_piece(self, train_ids: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """(episodes of the pieces in ``train_ids``, episodes of every other piece)."""
        train = self.episodes_for_pieces(train_ids)
        rest = np.setdiff1d(np.arange(self.n_episodes), train)
        return train, rest

    def select(self, **conditions: Any) -> np.ndarray:
        """Episode indices whose meta equals each given value, e.g. ``select(label_source="prior")``
        (a list/tuple/set value matches any of its members)."""
        mask = np.ones(self.n_episodes, dtype=bool)
        for name, value in conditions.items():
            if name not in self.meta:
                raise KeyError(f"no episode meta {name!r}; fields: {sorted(self.meta)}")
            vals = list(value) if isinstance(value, list | tuple | set | frozenset) else [value]
            # not cast to the column's dtype: a fixed-width string column ('<U6' when every value is
            # 'expert') would truncate 'expert-relabel' to 'expert' and match it
            mask &= np.isin(self.meta[name], np.asarray(vals))
        return np.flatnonzero(mask)

    def episode_keys(self) -> set[tuple[str, int, str, int, str, float]]:
        """(piece_id, seed, mode, round, label_source, noise_std) of every committed episode."""
        m = self.meta
        return {episode_key(str(p), int(s), str(mo), int(r), str(ls), float(n))
                for p, s, mo, r, ls, n in zip(m["piece_id"], m["seed"], m["mode"], m["round"],
                                              m["label_source"], m["noise_std"], strict=True)}

    # ------------------------------------------------------------------------------- sampling
    def window_indices(self, rng: np.random.Generator, batch: int, obs_horizon: int = 2, pred_horizon: int = 4,
                       episodes: Sequence[int] | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Global row indices of ``batch`` random windows: (obs_idx (B, obs_horizon), act_idx (B, pred_horizon)).

        A window is centred on a step t drawn uniformly from the steps of ``episodes`` (all when None):
        observations t-obs_horizon+1 .. t and actions t .. t+pred_horizon-1, clamped to the episode
        (first observation / last action repeated, as diffusion policy pads), never crossing episodes.
        """
        return window_indices(rng, self.episode_starts, self.episode_ends, batch, obs_horizon, pred_horizon, episodes)

    def sample_windows(self, rng: np.random.Generator, batch: int, obs_horizon: int = 2, pred_horizon: int = 4,
                       episodes: Sequence[int] | np.ndarray | None = None, action_key: str = "action"
                       ) -> tuple[np.ndarray, np.ndarray]:
        """(obs (B, obs_horizon, obs_dim) float32, action (B, pred_horizon, A) float32) for training.

        See :meth:`window_indices` for the window and padding rules; ``action_key`` picks the action
        column (``action`` = the label; ``executed_action`` or ``prior_action`` for analysis).
        Loads ``obs`` and the action column into memory on first use.
        """
        oi, ai = self.window_indices(rng, batch, obs_horizon, pred_horizon, episodes)
        return self.column("obs")[oi], self.column(action_key)[ai]


def window_indices(rng: np.random.Generator, starts: np.ndarray, ends: np.ndarray, batch: int, obs_horizon: int,
                   pred_horizon: int, episodes: Sequence[int] | np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Pure-array version of :meth:`DatasetReader.window_indices` (``starts``/``ends`` per episode)."""
    if obs_horizon < 1 or pred_horizon < 1:
        raise ValueError(f"horizons must be >= 1 (got obs {obs_horizon}, pred {pred_horizon})")
    eps = np.arange(len(ends)) if episodes is None else np.asarray(episodes, dtype=np.int64)
    if eps.size == 0:
        raise ValueError("no episodes to sample from")
    lengths = ends[eps] - starts[eps]
    cum = np.cumsum(lengths)
    k = rng.integers(0, int(cum[-1]), size=batch)
    which = np.searchsorted(cum, k, side="right")
    s, e = starts[eps][which], ends[eps][which]
    t = s + k - (cum[which] - lengths[which])
    oi = np.clip(t[:, None] + np.arange(-obs_horizon + 1, 1)[None], s[:, None], e[:, None] - 1)
    ai = np.clip(t[:, None] + np.arange(pred_horizon)[None], s[:, None], e[:, None] - 1)
    return oi, ai


def episode_key(piece_id: str, seed: int, mode: str, round_: int, label_source: str, noise_std: float
                ) -> tuple[str, int, str, int, str, float]:
    """The identity of an episode for resuming (noise rounded to 1e-6)."""
    return (piece_id, int(seed), mode, int(round_), label_source, round(float(noise_std), 6))


def store_size_bytes(store_url: str | os.PathLike[str]) -> int | None:
    """Bytes on disk of a local store (None for remote URLs)."""
    if not is_local(store_url):
        return None
    return sum(p.stat().st_size for p in local_path(store_url).rglob("*") if p.is_file())


def nan_to_none(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x
