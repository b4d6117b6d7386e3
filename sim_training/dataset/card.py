"""The dataset card: what a store holds, computed from the store alone.

:func:`dataset_card` returns a JSON-able dict; :func:`write_card` writes ``<store>.CARD.md`` and the
F1 histogram ``<store>.CARD.f1_hist.png`` next to the store (outside it, so zarr sees only its own files).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from sim_training.dataset.schema import LABEL_SOURCES, SCHEMA_VERSION
from sim_training.dataset.store import DatasetReader, is_local, local_path, store_size_bytes

F1_BINS = np.linspace(0.0, 1.0, 11)
"""F1 histogram bin edges (0.1 wide; the last bin includes 1.0)."""


def _mean(x: np.ndarray) -> float | None:
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else None


def _group(reader: DatasetReader, idx: np.ndarray) -> dict[str, Any]:
    m = reader.meta
    steps = int(reader.episode_lengths()[idx].sum())
    return {"episodes": int(idx.size), "steps": steps, "pieces": len(set(m["piece_id"][idx].tolist())),
            "hours": steps * reader.schema.control_dt / 3600.0, "f1_mean": _mean(m["f1"][idx]),
            "note_step_f1_mean": _mean(m["note_step_f1"][idx]), "do_nothing_f1_mean": _mean(m["do_nothing_f1"][idx])}


def dataset_card(store: str | os.PathLike[str] | DatasetReader, generated_by: str = "sim_training.dataset.card"
                 ) -> dict[str, Any]:
    """Pieces, episodes, steps, hours of motion, F1 histogram, counts by label source / mode / round,
    embodiment, size on disk and the commands that made the store (``generated_by``: what made the card)."""
    r = store if isinstance(store, DatasetReader) else DatasetReader(store)
    m = r.meta
    f1 = np.asarray(m["f1"], dtype=np.float64)
    hist = np.histogram(np.clip(f1, 0.0, 1.0), bins=F1_BINS)[0] if f1.size else np.zeros(len(F1_BINS) - 1, int)
    sources = {s: _group(r, r.select(label_source=s)) for s in LABEL_SOURCES}
    piece_sources: dict[str, set[str]] = {}
    for p, s in zip(m["piece_id"].tolist(), m["label_source"].tolist(), strict=True):
        piece_sources.setdefault(p, set()).add("prior" if s == "prior" else "expert")
    size = store_size_bytes(r.url)
    runs = list(r.attrs.get("collect_runs") or [])
    return {
        "store": r.url, "schema_version": SCHEMA_VERSION, "embodiment": r.schema.embodiment,
        "obs_dim": r.obs_dim, "action_dim": r.action_dim, "control_dt": r.schema.control_dt,
        "pieces": len(piece_sources), "episodes": r.n_episodes, "steps": r.n_steps,
        "hours_of_motion": r.n_steps * r.schema.control_dt / 3600.0,
        "f1_mean": _mean(f1), "f1_median": float(np.median(f1)) if f1.size else None,
        "note_step_f1_mean": _mean(m["note_step_f1"]), "do_nothing_f1_mean": _mean(m["do_nothing_f1"]),
        "f1_histogram": {"edges": F1_BINS.round(2).tolist(), "counts": hist.astype(int).tolist()},
        "by_label_source": sources,
        "pieces_by_labeller": {
            "expert_only": sum(1 for v in piece_sources.values() if v == {"expert"}),
            "prior_only": sum(1 for v in piece_sources.values() if v == {"prior"}),
            "both": sum(1 for v in piece_sources.values() if len(v) == 2)},
        "by_mode": {mo: _group(r, r.select(mode=mo)) for mo in sorted(set(m["mode"].tolist()))},
        "by_round": {int(k): int((m["round"] == k).sum()) for k in sorted(set(m["round"].tolist()))},
        "by_noise_std": {float(k): int((m["noise_std"] == k).sum()) for k in sorted(set(m["noise_std"].tolist()))},
        "size_bytes": size,
        "bytes_per_1k_steps": (size / r.n_steps * 1000.0) if size and r.n_steps else None,
        "generated_by": [run.get("command", "") for run in runs],
        "collect_runs": runs,
        "card_generated_by": generated_by,
        "card_generated": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def card_markdown(card: dict[str, Any], png_name: str | None = None) -> str:
    """The card as Markdown (tables + a text F1 histogram)."""
    lines = [f"# Dataset card: `{card['store']}`", "",
             f"Embodiment **{card['embodiment']}** (obs {card['obs_dim']}, action {card['action_dim']}, "
             f"dt {card['control_dt']} s), schema v{card['schema_version']}.", "",
             "| pieces | episodes | steps | hours of motion | F1 mean (median) | note-step F1 | do-nothing F1 | size |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|",
             f"| {card['pieces']} | {card['episodes']} | {card['steps']} | {card['hours_of_motion']:.3f} | "
             f"{_fmt(card['f1_mean'])} ({_fmt(card['f1_median'])}) | {_fmt(card['note_step_f1_mean'])} | "
             f"{_fmt(card['do_nothing_f1_mean'])} | "
             f"{_fmt(None if card['size_bytes'] is None else card['size_bytes'] / 1e6, 1)} MB |", "",
             "F1 is that of the executed trajectory (noisy rollout or student), step-level, whole episode; "
             "do-nothing F1 is what never pressing a key scores on the same steps.", "",
             "## Labels by source", "",
             "| label source | episodes | steps | pieces | hours | F1 mean | do-nothing F1 |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for s, g in card["by_label_source"].items():
        lines.append(f"| {s} | {g['episodes']} | {g['steps']} | {g['pieces']} | {g['hours']:.3f} | "
                     f"{_fmt(g['f1_mean'])} | {_fmt(g['do_nothing_f1_mean'])} |")
    pb = card["pieces_by_labeller"]
    lines += ["", f"Pieces labelled by experts only: {pb['expert_only']}, by the OT/IK prior only: {pb['prior_only']}, "
              f"by both: {pb['both']}.", "", "## Modes, rounds, noise", "",
              "| mode | episodes | steps | F1 mean |", "|---|---:|---:|---:|"]
    for mo, g in card["by_mode"].items():
        lines.append(f"| {mo} | {g['episodes']} | {g['steps']} | {_fmt(g['f1_mean'])} |")
    lines += ["", "Episodes per relabel round: " + (", ".join(f"{k}: {v}" for k, v in card["by_round"].items()) or "–"),
              "", "Episodes per action-noise std: "
              + (", ".join(f"{k:g}: {v}" for k, v in card["by_noise_std"].items()) or "–"), "",
              "## F1 histogram (episodes)", "", "```"]
    counts = card["f1_histogram"]["counts"]
    edges = card["f1_histogram"]["edges"]
    top = max(counts) if counts and max(counts) > 0 else 1
    for i, c in enumerate(counts):
        lines.append(f"{edges[i]:.1f}-{edges[i + 1]:.1f} {c:6d} {'#' * int(round(40 * c / top))}")
    lines += ["```", ""]
    if png_name:
        lines += [f"![F1 histogram]({png_name})", ""]
    lines += ["## Generated by", ""]
    lines += [f"- `{c}`" for c in card["generated_by"]] or ["- (no collect runs recorded)"]
    lines += [f"- card: `{card['card_generated_by']}` at {card['card_generated']}", ""]
    return "\n".join(lines)


def plot_f1_histogram(reader: DatasetReader, path: str | Path) -> str:
    """PNG of the episode F1 histogram, stacked by label source. Returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 3.6), dpi=110)
    ax = fig.add_subplot()
    data, labels = [], []
    for s in LABEL_SOURCES:
        idx = reader.select(label_source=s)
        if idx.size:
            data.append(np.clip(reader.meta["f1"][idx], 0.0, 1.0))
            labels.append(f"{s} ({idx.size})")
    if data:
        ax.hist(data, bins=F1_BINS.tolist(), stacked=True, label=labels)
        ax.legend(loc="upper left")
    dn = _mean(reader.meta["do_nothing_f1"])
    if dn is not None:
        ax.axvline(dn, color="k", linestyle="--", linewidth=1)
        ax.text(dn, ax.get_ylim()[1] * 0.95, " do nothing", fontsize=8, va="top")
    ax.set_xlabel("episode F1 (executed trajectory)")
    ax.set_ylabel("episodes")
    ax.set_xlim(0, 1)
    ax.set_title(f"{reader.n_episodes} episodes, {len(reader.pieces())} pieces")
    fig.tight_layout()
    fig.savefig(path)
    return str(path)


def card_path(store_url: str | os.PathLike[str]) -> str:
    """Default card path, next to the store: ``<store>.CARD.md``."""
    return os.fspath(store_url).rstrip("/") + ".CARD.md"


def png_path_for(md_path: str) -> str:
    """The histogram PNG beside a card: ``X.md`` -> ``X.f1_hist.png``."""
    return (md_path[:-3] if md_path.endswith(".md") else md_path) + ".f1_hist.png"


def write_card(store_url: str | os.PathLike[str], md_path: str | None = None, png: bool = True,
               generated_by: str = "sim_training.dataset.card") -> dict[str, Any]:
    """Compute the card and write the Markdown (+ PNG when the card is local); returns the card with the paths."""
    reader = DatasetReader(store_url)
    card = dataset_card(reader, generated_by)
    md = md_path or card_path(store_url)
    png_written = None
    if png and is_local(md) and reader.n_episodes:
        local_path(md).parent.mkdir(parents=True, exist_ok=True)
        png_written = plot_f1_histogram(reader, local_path(png_path_for(md)))
    text = card_markdown(card, Path(png_written).name if png_written else None)
    if is_local(md):
        local_path(md).parent.mkdir(parents=True, exist_ok=True)
        local_path(md).write_text(text, encoding="utf-8")
    else:
        import fsspec

        with fsspec.open(md, "w") as f:
            f.write(text)
    card["card_path"], card["png_path"] = md, png_written
    return card
