"""Plots users look at: the score's piano roll against what was played, coloured by finger."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sim_training.constants import LOWEST_MIDI_PITCH


def plot_piano_roll(
    roll: Any,
    active: np.ndarray | None,
    path: str | Path,
    *,
    fingering: Sequence[Any] | None = None,
    title: str = "",
) -> str:
    """PNG: score notes as bars (coloured by finger when ``fingering`` is given), played key
    activity as black ticks, misses outlined in red. Returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    keys = np.asarray(roll.keys)
    dt = roll.dt_s
    used = np.flatnonzero(keys.any(axis=0) | (active.any(axis=0) if active is not None else False))
    lo, hi = (used.min() - 2, used.max() + 2) if used.size else (30, 60)
    fig, ax = plt.subplots(figsize=(max(8.0, min(24.0, keys.shape[0] * dt * 0.9)), 5), dpi=110)
    cmap = plt.get_cmap("tab10")
    finger_of = {}
    if fingering is not None:
        for n in fingering:
            finger_of[(n.onset_step, n.key)] = n
    for step, key in roll.onsets:
        end = step
        while end < keys.shape[0] and keys[end, key]:
            end += 1
        n = finger_of.get((step, key))
        if n is not None and n.hand is not None:
            color = cmap((0 if n.hand == "left" else 5) + (n.digit - 1) % 5)
        else:
            color = (0.7, 0.7, 0.7, 1.0)
        missed = active is not None and not active[step:end, key].any()
        ax.add_patch(Rectangle((step * dt, key + LOWEST_MIDI_PITCH - 0.4), (end - step) * dt, 0.8,
                               facecolor=color, edgecolor="red" if missed else "none", linewidth=1.2, alpha=0.85))
    if active is not None:
        t_idx, k_idx = np.nonzero(active)
        ax.scatter((t_idx + 0.5) * dt, k_idx + LOWEST_MIDI_PITCH, s=4, c="black", marker="s", linewidths=0,
                   label="played (key active)")
    ax.set_xlim(0, keys.shape[0] * dt)
    ax.set_ylim(lo + LOWEST_MIDI_PITCH, hi + LOWEST_MIDI_PITCH)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title)
    handles = [Patch(color=cmap(i), label=f"L{i + 1}") for i in range(5)]
    handles += [Patch(color=cmap(5 + i), label=f"R{i + 1}") for i in range(5)]
    handles += [Patch(facecolor="white", edgecolor="red", label="missed")]
    if active is not None:
        handles.append(Patch(color="black", label="played"))
    ax.legend(handles=handles, ncol=6, fontsize=7, loc="upper right")
    ax.grid(alpha=0.2)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return str(path)
