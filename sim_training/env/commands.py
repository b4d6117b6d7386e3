"""``omnipianist info``, ``omnipianist sim PIECE`` and ``omnipianist bench sim``: configs, runs, results, text.

Importing this module loads no MuJoCo; the runs import what they use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from omnipianist import __version__
from omnipianist.cliutil import progress
from omnipianist.command import Command, ok_or_1
from omnipianist.media import write_video
from sim_training.env.observation import ObservationLayout
from sim_training.models.embodiment import embodiment_names, get_embodiment

if TYPE_CHECKING:
    from sim_training.env.bench import SimBenchResult

EmbodimentName = Literal["shadow", "leap"]
ActionSet = Literal["reduced", "full"]


@dataclass(frozen=True)
class HandChoice:
    """The hand model and its commanded joints (``--embodiment``, ``--action-set``, ``--forearm-z``)."""

    embodiment: EmbodimentName = "shadow"
    """hand model"""
    action_set: ActionSet = "reduced"
    """commanded joints: RP1M's reduced set or every actuator"""
    forearm_z: bool = field(default=False, metadata={"action": "store_true"})
    """add a vertical forearm slide (PianoMime)"""

    def get(self) -> Any:
        """The :class:`~sim_training.models.embodiment.Embodiment`."""
        return get_embodiment(self.embodiment, self.action_set, self.forearm_z)


# ---------------------------------------------------------------------------------------- info
@dataclass(frozen=True)
class InfoConfig:
    action_set: ActionSet = "reduced"
    forearm_z: bool = field(default=False, metadata={"action": "store_true"})


@dataclass(frozen=True)
class EmbodimentInfo:
    model: dict[str, int]
    action_dim: int
    observation_dim: int
    fingertips: int
    hand_joints: int
    observation_fields: dict[str, int]


@dataclass(frozen=True)
class InfoResult:
    version: str
    embodiments: dict[str, EmbodimentInfo]


def run_info(cfg: InfoConfig) -> InfoResult:
    """Every embodiment's model sizes, action and observation sizes."""
    from sim_training.models.scene import build_scene

    out: dict[str, EmbodimentInfo] = {}
    for name in embodiment_names():
        emb = get_embodiment(name, cfg.action_set, cfg.forearm_z)
        scene = build_scene(emb)
        layout = ObservationLayout.for_embodiment(emb)
        out[emb.key] = EmbodimentInfo(model=scene.sizes(), action_dim=emb.action_dim, observation_dim=layout.size,
                                      fingertips=emb.n_fingertips, hand_joints=len(emb.all_joint_names),
                                      observation_fields={f.name: f.size for f in layout.fields})
    return InfoResult(version=__version__, embodiments=out)


def format_info(r: InfoResult) -> str:
    lines = [f"omnipianist {r.version}"]
    for key, v in r.embodiments.items():
        lines.append(f"  {key:8s} obs {v.observation_dim:5d}  action {v.action_dim:3d}  "
                     f"fingertips {v.fingertips:2d}  model {v.model}")
    return "\n".join(lines)


INFO = Command("info", "embodiments, model sizes and observation layouts", InfoConfig, run_info, format_info)


# ---------------------------------------------------------------------------------------- sim
@dataclass(frozen=True)
class SimConfig:
    piece: str
    """built-in piece name or a MIDI file"""
    hand: HandChoice = field(default_factory=HandChoice, metadata={"prefix": ""})
    policy: Literal["home", "random"] = "home"
    """baseline: hold the home posture, or uniform random actions"""
    stretch: float = 1.0
    """time stretch"""
    seed: int = 0
    """seed"""
    video: str | None = None
    """write an MP4 of the hands to this path"""
    show_progress: bool = field(default=True, metadata={"cli": False})


@dataclass(frozen=True)
class SimResult:
    piece: str
    embodiment: str
    policy: str
    metrics: dict[str, float] = field(metadata={"flatten": True})
    """The episode's metrics (F1, precision, recall, note-step, onset and do-nothing F1, steps, ...)."""
    return_: float = field(metadata={"json": "return"})
    steps_per_s: float
    video: str | None = field(default=None, metadata={"omit_none": True})


def run_sim(cfg: SimConfig) -> SimResult:
    """Play a piece with a baseline policy (hold the home posture, or random actions)."""
    import numpy as np

    from sim_training.env.piano_env import EnvConfig, PianoEnv
    from sim_training.env.rollout import rollout

    emb = cfg.hand.get()
    env = PianoEnv(cfg.piece, emb, EnvConfig(clip_steps=None, random_start=False, stretch=cfg.stretch),
                   render_mode="rgb_array" if cfg.video else None)
    rng = np.random.default_rng(cfg.seed)
    home = env.scene.ctrl_to_action(env.scene.home_ctrl)
    ep = rollout(env, lambda obs: home if cfg.policy == "home" else rng.uniform(-1, 1, emb.action_dim),
                 seed=cfg.seed, start_step=None, frames=bool(cfg.video),
                 steps_iter=lambda r: progress(r, desc=f"{cfg.policy} on {cfg.piece}", disable=not cfg.show_progress))
    video = None
    if cfg.video:
        video = write_video(ep.frames, cfg.video, fps=env.metadata["render_fps"])
    env.close()
    return SimResult(piece=cfg.piece, embodiment=emb.key, policy=cfg.policy,
                     metrics={k: v for k, v in ep.metrics.items() if k not in ("onset_precision", "onset_recall")},
                     return_=ep.reward, steps_per_s=ep.steps_per_s, video=video)


def format_sim(r: SimResult) -> str:
    m = r.metrics
    return (f"{r.piece} ({r.embodiment}, {r.policy}): F1 {m['f1']:.3f} "
            f"(P {m['precision']:.3f} R {m['recall']:.3f}; note steps {m['note_step_f1']:.3f}; "
            f"onset F1 {m['onset_f1']:.3f}; do-nothing F1 {m['do_nothing_f1']:.3f}) "
            f"{m['steps']} steps at {r.steps_per_s:.0f} steps/s")


SIM = Command("sim", "play a piece in the simulator with a baseline policy", SimConfig, run_sim, format_sim,
              positionals=("piece",))


# ---------------------------------------------------------------------------------------- bench sim
def format_bench_sim(r: SimBenchResult) -> str:
    return (f"sim bench ({r.embodiment}, {r.model}):\n"
            f"  env      {r.env_steps_per_s:8.1f} control steps/s\n"
            f"  raw      {r.raw_mj_step_control_steps_per_s:8.1f} control steps/s  "
            f"env/raw {r.env_over_raw:.3f} (target >= {r.targets.env_over_raw})\n"
            f"  batched  {r.batched_steps_per_s:8.1f} control steps/s  "
            f"({r.batched_envs} envs, {r.batched_threads} threads) "
            f"x{r.batched_over_single:.2f} (target >= {r.targets.batched_over_single})\n"
            f"  {'OK' if r.ok else 'MISSED TARGET'}")


BENCH_SIM: Command[Any, SimBenchResult] = Command("sim", "env vs raw mj_step control-steps/s, and batched speed-up",
                    "sim_training.env.bench:SimBenchConfig", "sim_training.env.bench:run_sim_bench", format_bench_sim,
                    exit_code=ok_or_1)
