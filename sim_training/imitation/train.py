"""Distil the experts' dataset into one generalist policy (flow-matching transformer, or the BC-MLP baseline).

One loop, read top to bottom (CleanRL style):

1. Open the store, split episodes BY PIECE into train / validation (held-out pieces), fit the
   normaliser on training rows (observation mean/std of fingertips and joints, action min/max).
2. Each step: ``batch_size`` random windows (obs history (B, To, D), action chunk (B, H, A)), the
   model's loss (flow matching: ``mean (u(a_t, t | obs) - (a1 - a0))^2``; BC: MSE), AdamW with
   linear warm-up then cosine decay, gradient clipping, EMA of the weights.
3. Every ``eval_every`` steps: the EMA model's validation loss on FIXED validation windows, noise and
   flow times (so points are comparable), and its sampled-action MSE on them (the one number that
   means the same for both models), appended to ``loss.json`` / ``loss.png``.
4. Every ``checkpoint_every_min`` minutes and at the end: ``last.pt`` (weights, EMA, optimiser,
   counters, curve, RNG states) and ``policy.pt`` (EMA weights + metadata), written atomically.
   Calling :func:`train_policy` again on the same ``out`` resumes: ``minutes`` and ``max_steps`` are
   totals over all sessions, the step count continues.

The learning-rate schedule runs on ``progress = max(step / max_steps, wall / (minutes * 60))``, so a
time-budgeted run still decays to its final rate when the budget ends.

Outputs in ``out``: ``policy.pt``, ``last.pt``, ``loss.json``, ``loss.png``, ``config.json``, ``result.json``.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from omnipianist.cliutil import progress
from omnipianist.errors import ModelError
from sim_training.imitation.base import GeneralistModel
from sim_training.imitation.bc import BCConfig
from sim_training.imitation.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_KIND,
    LAST,
    POLICY,
    atomic_write,
    build_model,
    config_dict,
    embodiment_from_meta,
    save_json,
    save_torch,
)
from sim_training.imitation.data import EpisodeData, WindowSampler, open_store, split_episodes
from sim_training.imitation.model import FMTConfig

EXECUTE_HORIZON = 1
"""Actions executed per sampled chunk at deployment (OmniPianist: predict 4, execute 1)."""


@dataclass(frozen=True)
class PolicyTrainConfig:
    """One generalist run. ``minutes`` and ``max_steps`` are totals across resumed sessions."""

    store: str
    """zarr store written by sim_training.dataset."""
    out: str = "runs/generalist"
    model: Literal["fmt", "bc"] = "fmt"
    minutes: float = 60.0
    max_steps: int | None = None
    batch_size: int = 256
    lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 500
    final_lr_fraction: float = 0.1
    """The cosine decays from lr to lr * final_lr_fraction."""
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    """EMA of the weights (warmed up as min(decay, (1 + step) / (10 + step)))."""
    eval_every: int = 250
    """Steps between validation points on the loss curve."""
    val_windows: int = 512
    checkpoint_every_min: float = 5.0
    seed: int = 0
    val_fraction: float = 0.1
    """Fraction of the PIECES held out for validation."""
    residual_on_prior: bool = False
    """Learn the residual on the OT/IK prior (input obs ⊕ prior action, target action - prior action;
    see sim_training.imitation.residual) instead of the whole action."""
    train_pieces: str = ""
    """Comma-separated piece ids to train (and validate) on; empty = every piece in the store."""
    stats_rows: int = 200_000
    """Training rows (random) for the normalisation statistics."""
    threads: int = 2
    """torch.set_num_threads during training. Use 1 when the other core is busy: OpenMP threads that
    must wait for a busy core make a step ~10x slower, not 2x faster."""
    show_progress: bool = True
    log: bool = True
    """One line per validation point on stderr."""
    fmt: FMTConfig = field(default_factory=FMTConfig, metadata={
        "prefix": "fmt_", "group": "flow-matching transformer (flags prefixed --fmt-)"})
    bc: BCConfig = field(default_factory=BCConfig, metadata={
        "prefix": "bc_", "group": "BC-MLP baseline (flags prefixed --bc-)"})

    @property
    def model_config(self) -> FMTConfig | BCConfig:
        return self.fmt if self.model == "fmt" else self.bc

    @property
    def piece_filter(self) -> tuple[str, ...] | None:
        names = tuple(p.strip() for p in self.train_pieces.split(",") if p.strip())
        return names or None


_MUST_MATCH = ("store_card", "model", "model_config", "seed", "val_fraction", "train_pieces", "residual_on_prior")


def lr_at(cfg: PolicyTrainConfig, step: int, progress_fraction: float) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine from ``lr`` to ``lr * final_lr_fraction``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    p = min(max(progress_fraction, 0.0), 1.0)
    lo = cfg.lr * cfg.final_lr_fraction
    return lo + 0.5 * (cfg.lr - lo) * (1.0 + math.cos(math.pi * p))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * model`` for parameters; buffers copied."""
    for pe, p in zip(ema.parameters(), model.parameters(), strict=True):
        pe.lerp_(p, 1.0 - decay)
    for be, b in zip(ema.buffers(), model.buffers(), strict=True):
        be.copy_(b)


@torch.no_grad()
def validate(model: GeneralistModel, obs: torch.Tensor, act: torch.Tensor, seed: int, batch: int) -> dict[str, float]:
    """Loss (fixed noise and t from ``seed``) and sampled-action MSE (normalised units) on fixed windows."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    losses, errors, n = [], [], len(obs)
    for i in range(0, n, batch):
        o, a = obs[i:i + batch], act[i:i + batch]
        losses.append(float(model.loss(o, a, generator=gen)) * len(o))
        noise = torch.randn(a.shape, generator=gen)
        pred = model.sample(o, noise)
        norm = model.normalizer.normalize_action
        errors.append(float(torch.mean((norm(pred) - norm(a)) ** 2)) * len(o))
    model.train()
    return {"val_loss": sum(losses) / n, "val_action_mse": sum(errors) / n}


def plot_loss(curve: list[dict[str, Any]], path: Path, title: str) -> None:
    """PNG: train loss, validation loss and validation action MSE vs steps and vs wall minutes (log y)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100, sharey=True)
    for ax, key, label in ((axes[0], "step", "optimiser steps"), (axes[1], "wall_min", "wall minutes")):
        pts = [c for c in curve if c.get("train_loss") is not None]
        ax.plot([c[key] for c in pts], [c["train_loss"] for c in pts], "-", label="train loss")
        ax.plot([c[key] for c in curve], [c["val_loss"] for c in curve], "o-", ms=3, label="validation loss")
        ax.plot([c[key] for c in curve], [c["val_action_mse"] for c in curve], "s--", ms=3,
                label="validation sampled-action MSE")
        ax.set_xlabel(label)
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("normalised units")
    axes[1].legend(loc="upper right", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png"))
    plt.close(fig)


def _fixed_windows(sampler: WindowSampler, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` windows drawn once with their own seed: every validation point scores the same windows."""
    obs, act = sampler.sample(np.random.default_rng(seed), n)
    return torch.from_numpy(obs), torch.from_numpy(act)


def _meta(cfg: PolicyTrainConfig, data: EpisodeData, split: dict[str, Any], model: GeneralistModel) -> dict[str, Any]:
    try:
        emb_key: str | None = embodiment_from_meta(data.embodiment).key
    except ModelError:
        emb_key = None  # synthetic stores; evaluation will refuse to guess
    mc = cfg.model_config
    return {
        "format": CHECKPOINT_FORMAT, "kind": CHECKPOINT_KIND, "model": cfg.model,
        "observation_layout": data.observation_layout, "embodiment": data.embodiment, "embodiment_key": emb_key,
        "action_names": list(data.action_names), "action_dim": data.action_dim, "obs_dim": data.obs_dim,
        "control_dt": data.control_dt, "obs_horizon": mc.obs_horizon, "pred_horizon": mc.pred_horizon,
        "execute_horizon": EXECUTE_HORIZON, "k_steps": mc.k_steps, "data_card_id": data.data_card_id(),
        "store": data.source, "train_pieces": split["train_pieces"], "val_pieces": split["val_pieces"],
        "split": split["split"], "params": model.n_params(),
        "residual_on_prior": bool(cfg.residual_on_prior),
        "prior_config": dict(data.attrs.get("prior_config") or {}) if cfg.residual_on_prior else None,
    }


# ----------------------------------------------------------------------------------- training
def train_policy(cfg: PolicyTrainConfig) -> dict[str, Any]:
    """Train (or resume) the generalist in ``cfg.out``; returns the result dict (also ``result.json``)."""
    threads_before = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _train(cfg)
    finally:
        torch.set_num_threads(threads_before)


def _train(cfg: PolicyTrainConfig) -> dict[str, Any]:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    data = open_store(cfg.store, residual_on_prior=cfg.residual_on_prior)
    mc = cfg.model_config
    train_eps, val_eps, split = split_episodes(data, cfg.val_fraction, cfg.seed, cfg.piece_filter)
    train_set = WindowSampler(data, train_eps, mc.obs_horizon, mc.pred_horizon)
    val_set = WindowSampler(data, val_eps, mc.obs_horizon, mc.pred_horizon)
    val_obs, val_act = _fixed_windows(val_set, cfg.val_windows, cfg.seed + 1)

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)  # flow noise and times
    model = build_model(cfg.model, mc, data.observation_layout, data.action_dim)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    run_cfg = {**config_dict(cfg), "store_card": data.data_card_id(), "model_config": config_dict(mc)}
    c: dict[str, Any] = {"step": 0, "samples": 0, "wall_s": 0.0, "train_s": 0.0, "val_s": 0.0, "sessions": 0}
    curve: list[dict[str, Any]] = []
    resumed = (out / LAST).exists()
    if resumed:
        state = torch.load(out / LAST, map_location="cpu", weights_only=False)
        saved = state["run_config"]
        for key in _MUST_MATCH:
            if saved.get(key) != run_cfg[key]:
                raise ValueError(f"{out / LAST}: cannot resume, {key!r} was {saved.get(key)!r}, now {run_cfg[key]!r} "
                                 f"(use a new --out or the same settings)")
        model.load_state_dict(state["weights"])
        opt.load_state_dict(state["optimizer"])
        c.update(state["counters"])
        curve = state["curve"]
        rng.bit_generator.state = state["rng"]["numpy"]
        torch.set_rng_state(state["rng"]["torch"])
        gen.set_state(state["rng"]["flow"])
    else:
        rows = train_set.rows()
        pick = rng.choice(rows, size=min(cfg.stats_rows, len(rows)), replace=False)
        model.normalizer.fit(data.obs[np.sort(pick)], data.action[np.sort(pick)], data.observation_layout)
    ema = copy.deepcopy(model).requires_grad_(False)
    if resumed:
        ema.load_state_dict(state["ema"])
    c["sessions"] += 1
    meta = _meta(cfg, data, split, model)
    save_json(run_cfg, out / "config.json")

    t_session = time.perf_counter()
    wall0 = float(c["wall_s"])

    def wall() -> float:
        return wall0 + time.perf_counter() - t_session

    def save() -> None:
        c["wall_s"] = wall()
        meta["step"] = c["step"]
        spec = {"kind": cfg.model, "config": config_dict(mc)}
        normalizer = {k: v.clone() for k, v in ema.normalizer.state_dict().items()}
        save_torch({"meta": meta, "model": spec, "state_dict": ema.state_dict(), "normalizer": normalizer},
                   out / POLICY)
        save_torch({"meta": meta, "model": spec, "run_config": run_cfg, "weights": model.state_dict(),
                    "ema": ema.state_dict(), "normalizer": normalizer, "optimizer": opt.state_dict(),
                    "counters": dict(c), "curve": curve,
                    "rng": {"numpy": rng.bit_generator.state, "torch": torch.get_rng_state(), "flow": gen.get_state()}},
                   out / LAST)

    running: list[float] = []

    def validation_point() -> dict[str, Any]:
        t0 = time.perf_counter()
        v = validate(ema, val_obs, val_act, cfg.seed + 2, cfg.batch_size)
        c["val_s"] += time.perf_counter() - t0
        point = {"step": c["step"], "wall_min": wall() / 60.0, "samples": c["samples"],
                 "lr": opt.param_groups[0]["lr"], "train_loss": float(np.mean(running)) if running else None, **v}
        running.clear()
        curve.append(point)
        save_json(curve, out / "loss.json")
        plot_loss(curve, out / "loss.png", f"{cfg.model} on {Path(cfg.store).name} "
                  f"({len(split['train_pieces'])} train / {len(split['val_pieces'])} val pieces)")
        if cfg.log:
            tl = "-" if point["train_loss"] is None else f"{point['train_loss']:.4f}"
            print(f"[train-policy {cfg.model}] step {c['step']:>7d} train {tl} val {v['val_loss']:.4f} "
                  f"action MSE {v['val_action_mse']:.4f} lr {point['lr']:.2e} | "
                  f"{c['step'] / max(c['train_s'], 1e-9):.2f} steps/s", file=sys.stderr, flush=True)
        return point

    if not curve:
        validation_point()
        save()

    budget_s = max(cfg.minutes * 60.0, 1e-9)
    last_ckpt = time.perf_counter()
    bar = progress(total=cfg.max_steps, desc=f"train-policy {cfg.model}", disable=not cfg.show_progress)
    bar.update(c["step"])
    model.train()
    while wall() < budget_s and (cfg.max_steps is None or c["step"] < cfg.max_steps):
        t0 = time.perf_counter()
        frac = max(c["step"] / cfg.max_steps if cfg.max_steps else 0.0, wall() / budget_s)
        lr = lr_at(cfg, c["step"], frac)
        for group in opt.param_groups:
            group["lr"] = lr
        obs, act = train_set.sample(rng, cfg.batch_size)
        loss = model.loss(torch.from_numpy(obs), torch.from_numpy(act), generator=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        ema_update(ema, model, min(cfg.ema_decay, (1.0 + c["step"]) / (10.0 + c["step"])))
        c["step"] += 1
        c["samples"] += cfg.batch_size
        running.append(loss.detach().item())
        c["train_s"] += time.perf_counter() - t0
        bar.update(1)
        if c["step"] % cfg.eval_every == 0:
            p = validation_point()
            bar.set_postfix(loss=f"{p['train_loss']:.4f}", val=f"{p['val_loss']:.4f}")
        if time.perf_counter() - last_ckpt >= cfg.checkpoint_every_min * 60.0:
            save()
            last_ckpt = time.perf_counter()
    bar.close()
    if curve[-1]["step"] != c["step"]:
        validation_point()
    save()

    final = curve[-1]
    w = max(c["train_s"], 1e-9)
    result = {
        "model": cfg.model, "params": meta["params"], "step": c["step"], "samples": c["samples"],
        "sessions": c["sessions"], "resumed": resumed, "wall_s": c["wall_s"], "train_s": c["train_s"],
        "val_s": c["val_s"], "steps_per_s": c["step"] / w, "samples_per_s": c["samples"] / w,
        "ms_per_step": 1e3 * w / max(c["step"], 1), "threads": cfg.threads,
        "train_loss": final["train_loss"], "val_loss": final["val_loss"], "val_action_mse": final["val_action_mse"],
        "first_val_loss": curve[0]["val_loss"], "data_card_id": meta["data_card_id"], "split": split["split"],
        "val_is_train": split["val_is_train"], "train_episodes": len(train_eps), "val_episodes": len(val_eps),
        "train_steps_in_data": len(train_set), "train_pieces": len(split["train_pieces"]),
        "val_pieces": len(split["val_pieces"]), "checkpoint": str(out / POLICY), "last_checkpoint": str(out / LAST),
        "loss_curve": str(out / "loss.json"), "loss_plot": str(out / "loss.png"),
    }
    save_json(result, out / "result.json")
    return result
