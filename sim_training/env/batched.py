"""Step N environments on several cores: MuJoCo releases the GIL inside ``mj_step``.

The envs are split into ``n_threads`` contiguous groups; a persistent thread pool steps each group
sequentially. Each env owns its MjData (the compiled MjModel is shared read-only), so results are
bit-identical to stepping the same envs one after another (tested).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from sim_training.env.piano_env import PianoEnv

StepResult = tuple[np.ndarray, float, bool, bool, dict[str, Any]]


class BatchedPianoEnv:
    """N :class:`PianoEnv` stepped together; auto-reset is left to the caller (explicit is clearer)."""

    def __init__(self, envs: Sequence[PianoEnv], n_threads: int = 2) -> None:
        if not envs:
            raise ValueError("BatchedPianoEnv needs at least one env")
        self.envs = list(envs)
        self.n_threads = max(1, min(n_threads, len(self.envs)))
        bounds = np.linspace(0, len(self.envs), self.n_threads + 1).round().astype(int)
        self._groups = [range(bounds[i], bounds[i + 1]) for i in range(self.n_threads)]
        self._pool = ThreadPoolExecutor(self.n_threads) if self.n_threads > 1 else None

    @classmethod
    def make(cls, n_envs: int, factory: Callable[[int], PianoEnv], n_threads: int = 2) -> BatchedPianoEnv:
        return cls([factory(i) for i in range(n_envs)], n_threads)

    @property
    def n_envs(self) -> int:
        return len(self.envs)

    def reset(self, seeds: Sequence[int | None] | None = None, options: Sequence[dict | None] | None = None
              ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        seeds = seeds if seeds is not None else [None] * self.n_envs
        options = options if options is not None else [None] * self.n_envs
        out = [env.reset(seed=s, options=o) for env, s, o in zip(self.envs, seeds, options, strict=True)]
        return np.stack([o for o, _ in out]), [i for _, i in out]

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        """Step every env with its row of ``actions`` (N, action_dim)."""
        actions = np.asarray(actions)
        if actions.shape[0] != self.n_envs:
            raise ValueError(f"actions has {actions.shape[0]} rows for {self.n_envs} envs")
        results: list[StepResult | None] = [None] * self.n_envs

        def run(group: range) -> None:
            for i in group:
                results[i] = self.envs[i].step(actions[i])

        if self._pool is None:
            run(range(self.n_envs))
        else:
            for fut in [self._pool.submit(run, g) for g in self._groups]:
                fut.result()
        stepped = [r for r in results if r is not None]  # all of them: the groups cover every env
        obs, rew, term, trunc, infos = zip(*stepped, strict=True)
        return (np.stack(obs), np.asarray(rew), np.asarray(term), np.asarray(trunc), list(infos))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        for env in self.envs:
            env.close()
