"""Play a whole piece with a generalist policy and score it like ``omnipianist prior --json``.

Keys: ``f1``, ``precision``, ``recall``, ``onset_f1``, ``steps`` (as the prior command), plus
``note_step_f1``, ``sustain_f1``, ``do_nothing_f1`` (print it beside every F1: silent steps score 1),
``piece``, ``embodiment``, ``policy``, ``steps_per_s``, ``act_ms_p50`` / ``act_ms_p99`` (policy time
per control step, the 50 ms budget's share) and ``return``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from omnipianist.cliutil import progress
from sim_training.env.piano_env import EnvConfig, PianoEnv
from sim_training.env.rollout import rollout
from sim_training.fingering.piece import note_fingering
from sim_training.imitation.checkpoint import embodiment_from_meta
from sim_training.imitation.policy import ActingPolicy
from sim_training.imitation.residual import base_layout
from sim_training.models.embodiment import Embodiment
from sim_training.music import PianoRoll, Score

EVALUATION_KEYS: tuple[str, ...] = ("f1", "precision", "recall", "onset_f1", "steps", "note_step_f1",
                                    "sustain_f1", "do_nothing_f1")


def evaluate_policy(piece: str | Score | PianoRoll, policy: ActingPolicy, embodiment: str | Embodiment | None = None,
                    stretch: float = 1.0, show_progress: bool = False) -> dict[str, Any]:
    """Play ``piece`` from its first step to its end (no clip, no random start) and return the metrics.

    ``embodiment`` defaults to the policy's; the env's observation layout must match the one the
    policy was trained on (``ContractError`` naming the first differing field otherwise). Keys:
    :data:`EVALUATION_KEYS` plus ``piece``, ``embodiment``, ``policy``, ``return``, ``steps_per_s``,
    ``act_ms_p50``, ``act_ms_p99`` (:func:`play_policy` without what it keeps for plots).
    """
    r = play_policy(piece, policy, embodiment, stretch=stretch, show_progress=show_progress)
    return {k: v for k, v in r.items() if k not in ("roll", "active", "notes", "frames")}


@dataclass(frozen=True, kw_only=True)
class EvaluationResult:
    """``omnipianist evaluate``'s result: :func:`evaluate_policy`'s dict, its keys in its order
    (:data:`EVALUATION_KEYS` among them; ``return`` is the field ``return_``)."""

    piece: str
    embodiment: str
    policy: str
    """The policy's source (checkpoint, .onnx or expert folder)."""
    f1: float
    precision: float
    recall: float
    onset_f1: float
    steps: int
    note_step_f1: float
    sustain_f1: float
    do_nothing_f1: float
    return_: float = field(metadata={"json": "return"})
    """The episode's summed reward."""
    steps_per_s: float
    act_ms_p50: float
    act_ms_p99: float
    """Policy time per control step (50th / 99th percentile), ms."""

    @classmethod
    def of(cls, r: dict[str, Any]) -> EvaluationResult:
        """From :func:`evaluate_policy`'s dict (a key without a field fails loudly)."""
        values = dict(r)
        values["return_"] = values.pop("return")
        return cls(**values)


def format_evaluation(r: EvaluationResult) -> str:
    """One human-readable line (the shape of ``omnipianist prior``'s)."""
    return (f"{r.piece} ({r.embodiment}, generalist {r.policy}): F1 {r.f1:.3f} (P {r.precision:.3f} "
            f"R {r.recall:.3f}; note steps {r.note_step_f1:.3f}; onset F1 {r.onset_f1:.3f}; "
            f"do-nothing F1 {r.do_nothing_f1:.3f}); {r.steps} steps, {r.steps_per_s:.0f} steps/s, "
            f"policy p99 {r.act_ms_p99:.2f} ms")


def play_policy(piece: str | Score | PianoRoll, policy: ActingPolicy, embodiment: str | Embodiment | None = None,
                *, video: bool = False, stretch: float = 1.0, show_progress: bool = False) -> dict[str, Any]:
    """Play ``piece`` like :func:`evaluate_policy` and keep what the demo shows.

    Returns the evaluation dict plus ``roll``, ``active`` (T, 88) key-down per step, ``notes``
    (:class:`~sim_training.fingering.piece.NoteFingering` per score note: which finger was nearest the
    key when it had to go down — read off the simulated fingertips, so it works for any policy) and
    ``frames`` (RGB, when ``video``).
    """
    emb = policy.embodiment if embodiment is None else embodiment_from_meta(embodiment)
    env = PianoEnv(piece, emb, EnvConfig(clip_steps=None, random_start=False, stretch=stretch),
                   render_mode="rgb_array" if video else None)
    per_hand = emb.n_fingertips // 2
    per_step: list[dict[int, tuple[int, int]]] = []
    try:
        env.layout.check_matches(base_layout(policy.meta["observation_layout"]), where=f"{policy.source} observation_layout")
        targets = env.scene.key_target_xyz_m

        def nearest_finger(t: int, action: np.ndarray, e: PianoEnv) -> None:
            tips = e.fingertip_xyz()
            keys = np.flatnonzero(e.roll.keys[min(t, e.roll.n_steps - 1)])
            per_step.append({int(k): divmod(int(np.argmin(np.linalg.norm(tips - targets[k], axis=1))), per_hand)
                             for k in keys})

        policy.reset()
        ep = rollout(env, policy.act, seed=0, start_step=None, frames=video, on_step=nearest_finger,
                     steps_iter=lambda r: progress(r, desc=f"play {policy.source}", disable=not show_progress))
    finally:
        env.close()
    m, active, roll = ep.metrics, ep.active, ep.roll
    return {
        "piece": piece if isinstance(piece, str) else type(piece).__name__, "embodiment": emb.key,
        "policy": policy.source, "f1": m["f1"], "precision": m["precision"], "recall": m["recall"],
        "onset_f1": m["onset_f1"], "steps": int(m["steps"]), "note_step_f1": m["note_step_f1"],
        "sustain_f1": m["sustain_f1"], "do_nothing_f1": m["do_nothing_f1"], "return": ep.reward,
        "steps_per_s": ep.steps_per_s, "act_ms_p50": ep.act_ms(50), "act_ms_p99": ep.act_ms(99),
        "roll": roll, "active": active, "notes": note_fingering(roll, per_step, active), "frames": ep.frames,
    }
