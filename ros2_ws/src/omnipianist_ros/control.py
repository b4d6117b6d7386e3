"""One control step of the policy node (plain Python): observation -> policy -> safety filter -> commands.

Command units: **actuator ctrl units** of the embodiment's scene model, per hand in
``embodiment.actuator_names(side)`` order (hand actuators, then forearm slides): a joint target [rad]
for a joint actuator, the slide position [m] for a forearm slide, and for a coupled-tendon
actuator (Shadow's J0 = J1 + J2) the summed joint target [rad]. They are exactly the values
:meth:`sim_training.models.scene.Scene.action_to_ctrl` writes into ``data.ctrl`` for the policy's
normalised action, so the MuJoCo mock applies them as ctrl unchanged. The safety filter works in
the same units, with limits = the actuators' ctrl ranges (minus ``safety_margin``).
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

import numpy as np

from omnipianist.errors import ConfigError
from omnipianist.safety.filter import EstopConfig, FilterResult, SafetyFilter, WatchdogConfig
from omnipianist_ros.observation import ObservationAssembler
from omnipianist_ros.params import SIM_MAX_RATE, SIM_MAX_RATE_RAIL
from omnipianist_ros.policies import PolicyProvider, check_contract
from sim_training.constants import CONTROL_DT_S, HAND_SIDES, SUSTAIN_ACTIVE_THRESHOLD
from sim_training.models.embodiment import SIDE_PREFIX
from sim_training.models.scene import Scene


@dataclass(frozen=True)
class SafetySettings:
    margin: float = 0.0
    """Kept from each actuator's ctrl range [ctrl units]."""
    max_rate: float = SIM_MAX_RATE
    """Hand actuators [ctrl units/s] (:data:`omnipianist_ros.params.SIM_MAX_RATE`)."""
    max_rate_rail: float = SIM_MAX_RATE_RAIL
    """Forearm slides [m/s]."""
    heartbeat_timeout_s: float = 0.0
    """0: no /estop heartbeat monitoring (only the latched value counts)."""


def sim_safety_filters(scene: Scene, settings: SafetySettings, dt: float = CONTROL_DT_S) -> dict[str, SafetyFilter]:
    """One :class:`SafetyFilter` per hand over its commanded actuators, limits = ctrl ranges.

    (The hardware path uses :meth:`SafetyFilter.for_hand` with the hardware YAML instead.)
    """
    emb = scene.embodiment
    n = len(emb.actuator_names("left"))
    estop = EstopConfig(heartbeat_timeout_s=settings.heartbeat_timeout_s or 1.0,
                        require_heartbeat=False)
    out = {}
    for i, side in enumerate(HAND_SIDES):
        names = emb.actuator_names(side)
        rows = slice(i * n, (i + 1) * n)
        slides = {SIDE_PREFIX[side] + s for s in emb.slide_names}
        rate = np.array([settings.max_rate_rail if nm in slides else settings.max_rate for nm in names])
        out[side] = SafetyFilter(names, scene.action_ctrl_low[rows], scene.action_ctrl_high[rows], settings.margin,
                                 rate, dt, WatchdogConfig(), estop)
    return out


def hardware_safety_filters(scene: Scene, hardware_dir: str, dt: float = CONTROL_DT_S) -> tuple[dict[str, SafetyFilter], float]:
    """Per-hand filters from ``hardware_dir`` (hand YAMLs + safety.yaml) in the embodiment's actuator
    order (hand joints, then slides), and the e-stop heartbeat timeout [s] they use.

    Raises ConfigError (HardwareConfigError) naming the file and key, or when the hardware's actuator
    order differs from the embodiment's.
    """
    from omnipianist.hardware.config import load_hardware, safety_filter_for

    emb = scene.embodiment
    hw = load_hardware(hardware_dir, emb.name)
    filters = {side: safety_filter_for(hw.hands[side], hw.safety, dt, include_rails=True) for side in HAND_SIDES}
    for side, f in filters.items():
        if f.joint_names != tuple(emb.actuator_names(side)):
            raise ConfigError(f"{hardware_dir}: {side} hand: safety filter order {list(f.joint_names)} differs from "
                              f"the embodiment's actuators {list(emb.actuator_names(side))}")
    return filters, hw.safety.estop.heartbeat_timeout_s


@dataclass
class LoopStats:
    """Timing of the control loop (wall clock, seconds)."""

    infer_s: list[float] = field(default_factory=list)
    step_s: list[float] = field(default_factory=list)
    period_s: list[float] = field(default_factory=list)
    overruns: int = 0
    stale_inputs: int = 0
    steps: int = 0
    _last_wall: float | None = None

    def add(self, infer_s: float, step_s: float, wall_now: float, dt: float) -> None:
        self.steps += 1
        self.infer_s.append(infer_s)
        self.step_s.append(step_s)
        if self._last_wall is not None:
            self.period_s.append(wall_now - self._last_wall)
        self._last_wall = wall_now
        if step_s > dt:
            self.overruns += 1

    def summary(self) -> dict[str, float | int]:
        def pct(xs: list[float], q: float) -> float:
            return float(np.percentile(xs, q) * 1e3) if xs else 0.0

        return {"loop_steps": self.steps, "inference_ms_p50": pct(self.infer_s, 50),
                "inference_ms_p99": pct(self.infer_s, 99), "step_ms_p99": pct(self.step_s, 99),
                "loop_period_ms_p50": pct(self.period_s, 50), "loop_period_ms_p99": pct(self.period_s, 99),
                "overruns": self.overruns, "stale_inputs": self.stale_inputs}


@dataclass(frozen=True)
class StepResult:
    commands: dict[str, np.ndarray | None]
    """Per side: the filtered command (ctrl units), or None = send nothing (e-stop, disarmed)."""
    sustain: float
    """Pedal command 0 | 1."""
    obs: np.ndarray
    action: np.ndarray | None
    """None when the policy refused the observation (NaN/Inf): the filters' watchdogs ran instead."""
    filtered: dict[str, FilterResult]


class PolicyController:
    """Observation assembly, the policy, the per-hand safety filters and loop statistics."""

    def __init__(self, scene: Scene, policy: PolicyProvider, lookahead: int, safety: SafetySettings,
                 dt: float = CONTROL_DT_S, filters: dict[str, SafetyFilter] | None = None) -> None:
        emb = scene.embodiment
        self.scene = scene
        self.policy = policy
        self.dt = dt
        self.assembler = ObservationAssembler(scene, lookahead)
        check_contract(policy, self.assembler.layout, emb.action_dim, emb.key)
        self.filters = filters if filters is not None else sim_safety_filters(scene, safety, dt)
        self.heartbeat_timeout_s = safety.heartbeat_timeout_s
        self.n_side = len(emb.actuator_names("left"))
        self.actuator_names = {side: tuple(emb.actuator_names(side)) for side in HAND_SIDES}
        self._chunk_rest: dict[str, list[np.ndarray]] = {side: [] for side in HAND_SIDES}
        self.sustain_state = 0.0
        self.stats = LoopStats()
        self.refused_observations = 0
        self._ctrl = np.zeros(scene.model.nu)

    @property
    def layout(self):  # noqa: ANN201 - ObservationLayout
        return self.assembler.layout

    def reset(self) -> None:
        self.policy.reset()
        self.sustain_state = 0.0

    def arm(self, now_s: float, hand_q: np.ndarray) -> None:
        """Arm both filters at the measured actuator positions, timestamped one period before ``now_s``
        so that the first command may already move ``max_rate * dt``."""
        measured = self.assembler.kinematics.actuator_positions(hand_q)
        for i, side in enumerate(HAND_SIDES):
            self.filters[side].rearm(now_s - self.dt, measured[i * self.n_side:(i + 1) * self.n_side])

    @property
    def armed(self) -> bool:
        return all(f.state.value in ("active", "hold") for f in self.filters.values())

    def estop(self, now_s: float, reason: str) -> None:
        for f in self.filters.values():
            f.estop(now_s, reason)

    def heartbeat(self, now_s: float) -> None:
        if self.heartbeat_timeout_s > 0:
            for f in self.filters.values():
                f.heartbeat(now_s)

    def action_to_commands(self, action: np.ndarray) -> dict[str, np.ndarray]:
        """Normalised action -> per-side ctrl-unit commands (exactly ``Scene.action_to_ctrl``)."""
        self.scene.action_to_ctrl(np.asarray(action, dtype=np.float64), self._ctrl)
        ctrl = self._ctrl[self.scene.action_actuator_ids]
        return {side: ctrl[i * self.n_side:(i + 1) * self.n_side].copy() for i, side in enumerate(HAND_SIDES)}

    def step(self, now_s: float, goal: np.ndarray, key_state: np.ndarray, hand_q: np.ndarray) -> StepResult:
        """One control step at ``now_s`` (ROS time) from the newest inputs."""
        t0 = time.perf_counter()
        obs = self.assembler.build(goal, key_state, self.sustain_state, hand_q)
        t1 = time.perf_counter()
        raw = self.policy.act(obs)
        t2 = time.perf_counter()
        if raw is None:  # the runtime refused the observation (NaN/Inf): no new command this period
            self.refused_observations += 1
            held = self.tick(now_s)
            self.stats.add(t2 - t1, time.perf_counter() - t0, time.perf_counter(), self.dt)
            return StepResult({side: r.command for side, r in held.items()}, self.sustain_state, obs, None, held)
        action = np.asarray(raw, dtype=np.float64)
        if action.shape != (self.scene.embodiment.action_dim,):
            raise ValueError(f"policy returned an action of shape {action.shape}, "
                             f"expected ({self.scene.embodiment.action_dim},)")
        wanted = self.action_to_commands(action)
        measured = self.assembler.kinematics.actuator_positions(hand_q)
        results = {side: self.filters[side].filter(wanted[side], now_s,
                                                   measured[i * self.n_side:(i + 1) * self.n_side])
                   for i, side in enumerate(HAND_SIDES)}
        commands = {side: r.command for side, r in results.items()}
        self._remember_chunk()
        # the simulator's sustain: pressed when the normalised pedal action maps to >= 0.5
        sustain = 1.0 if 0.5 * (action[-1] + 1.0) >= SUSTAIN_ACTIVE_THRESHOLD else 0.0
        if all(c is not None for c in commands.values()):
            self.sustain_state = sustain
        t3 = time.perf_counter()
        self.stats.add(t2 - t1, t3 - t0, t3, self.dt)
        return StepResult(commands, self.sustain_state, obs, action, results)

    def _remember_chunk(self) -> None:
        """The rest of the policy's last action chunk (rows after the executed one; a generalist predicts
        ``pred_horizon`` actions), in ctrl units clipped to the safe range; empty for one-action policies."""
        chunk = getattr(self.policy, "last_chunk", None)  # policy_export.runtime.Policy (generalists)
        queued = list(chunk[1:]) if chunk is not None else []
        rest: dict[str, list[np.ndarray]] = {side: [] for side in HAND_SIDES}
        for a in queued:
            a = np.asarray(a, dtype=np.float64)
            if a.shape != (self.scene.embodiment.action_dim,) or not np.isfinite(a).all():
                break
            for side, cmd in self.action_to_commands(a).items():
                f = self.filters[side]
                rest[side].append(np.clip(cmd, f.lower_safe, f.upper_safe))
        self._chunk_rest = rest

    def chunk_commands(self, side: str) -> list[np.ndarray]:
        """Commands after this step's one, from the last step's action chunk (see :meth:`_remember_chunk`)."""
        return self._chunk_rest[side]

    def tick(self, now_s: float) -> dict[str, FilterResult]:
        """No step this period (stale inputs): run the filters' watchdogs."""
        return {side: f.tick(now_s) for side, f in self.filters.items()}

    def diagnostics(self) -> dict[str, str]:
        out = {k: f"{v:.3f}" if isinstance(v, float) else str(v) for k, v in self.stats.summary().items()}
        out["policy"] = getattr(self.policy, "name", type(self.policy).__name__)
        out["refused_observations"] = str(self.refused_observations)
        for side, f in self.filters.items():
            for k, v in f.diagnostics().items():
                out[f"{side}.{k}"] = v
        return out


class Action(enum.Enum):
    NONE = "none"
    """Nothing to do."""
    STEP = "step"
    """Run one control step (:meth:`PolicyController.step`) at ``Decision.now_s``."""
    TICK = "tick"
    """No step: run the filters' watchdogs (:meth:`PolicyController.tick`) at ``Decision.now_s``."""


@dataclass(frozen=True)
class Decision:
    action: Action
    now_s: float = 0.0
    """ROS time [s] of the step or tick (lock-step: the inputs' common stamp)."""
    stale: bool = False
    """TICK because an input is missing or older than ``stale_after_s`` (count it)."""


NOTHING = Decision(Action.NONE)


class StepScheduler:
    """When the policy node steps (plain Python: the node feeds it input stamps and timer ticks and does
    what the returned :class:`Decision` says), and the e-stop latch and first arming.

    Triggers (``PolicyParams.trigger``):

    * ``timer``: every control period, with the newest inputs; an input missing or older than
      ``stale_after_s`` makes it a (counted) watchdog TICK instead.
    * ``lockstep``: once per simulation step: when both hands' joint states and the keys carry the same
      stamp, newer than the last step's, and a goal arrived since the last step.
    * ``goal``: on each new goal (the score paces the loop), staleness as for ``timer``; the timer only
      ticks the watchdogs when no step came for 1.5 periods (wall clock).
    """

    def __init__(self, trigger: str, stale_after_s: float, arm_on_start: bool = True, dt: float = CONTROL_DT_S,
                 sides: tuple[str, ...] = tuple(HAND_SIDES)) -> None:
        if trigger not in ("timer", "lockstep", "goal"):
            raise ValueError(f"trigger must be timer, lockstep or goal, got {trigger!r}")
        self.trigger = trigger
        self.stale_after_s = stale_after_s
        self.arm_on_start = arm_on_start
        self.dt = dt
        self.joint_state_ns: dict[str, int | None] = {s: None for s in sides}
        self.keys_ns: int | None = None
        self.has_goal = False
        self.goal_seq = 0
        self._goal_used = 0
        self._last_step_ns: int | None = None
        self._last_step_wall: float | None = None
        self.estopped = False
        self.armed_once = False

    # ---------------------------------------------------------------------------------------- inputs
    def joint_states(self, side: str, stamp_ns: int) -> Decision:
        self.joint_state_ns[side] = stamp_ns
        return self._lockstep()

    def keys(self, stamp_ns: int) -> Decision:
        self.keys_ns = stamp_ns
        return self._lockstep()

    def goal(self, now_s: float) -> Decision:
        self.has_goal = True
        self.goal_seq += 1
        return self._control(now_s) if self.trigger == "goal" else self._lockstep()

    def timer(self, now_s: float, wall_s: float) -> Decision:
        """The control timer fired (``now_s`` ROS time, ``wall_s`` monotonic)."""
        if self.trigger == "goal":
            if self._last_step_wall is None or wall_s - self._last_step_wall > 1.5 * self.dt:
                return Decision(Action.TICK, now_s)
            return NOTHING
        if self.trigger == "timer":
            return self._control(now_s)
        return NOTHING

    def stepped(self, wall_s: float) -> None:
        """The node ran the step it was told to (at monotonic ``wall_s``)."""
        self._goal_used = self.goal_seq
        self._last_step_wall = wall_s

    @property
    def has_joint_states(self) -> bool:
        return all(v is not None for v in self.joint_state_ns.values())

    def _lockstep(self) -> Decision:
        if self.trigger != "lockstep" or self.keys_ns is None or self.goal_seq == self._goal_used:
            return NOTHING
        stamps = set(self.joint_state_ns.values())
        if len(stamps) != 1 or None in stamps or self.keys_ns not in stamps:
            return NOTHING
        t_ns = self.keys_ns
        if self._last_step_ns is not None and t_ns <= self._last_step_ns:
            return NOTHING
        self._last_step_ns = t_ns
        return Decision(Action.STEP, t_ns * 1e-9)

    def _control(self, now_s: float) -> Decision:
        stamps = [*self.joint_state_ns.values(), self.keys_ns]
        if (not self.has_goal or any(t is None for t in stamps)
                or any(now_s - t * 1e-9 > self.stale_after_s for t in stamps if t is not None)):
            return Decision(Action.TICK, now_s, stale=True)
        return Decision(Action.STEP, now_s)

    # ------------------------------------------------------------------------------ e-stop and arming
    def estop(self, asserted: bool) -> bool:
        """An /estop message; True when it newly latches the e-stop (False clears the latch's input,
        not the filters: re-arming is :meth:`rearm_refusal` + the rearm service)."""
        if asserted and not self.estopped:
            self.estopped = True
            return True
        if not asserted:
            self.estopped = False
        return False

    def wants_first_arm(self, armed: bool) -> bool:
        """Arm at this step? Only the first arm is automatic (``arm_on_start``), never during an e-stop."""
        return self.arm_on_start and not self.estopped and not self.armed_once and not armed

    def first_arm_done(self) -> None:
        self.armed_once = True

    def rearm_refusal(self) -> str | None:
        """Why /policy/rearm must refuse now (None: it may re-arm)."""
        if self.estopped:
            return "/estop is still asserted"
        if not self.has_joint_states:
            return "no joint states yet"
        return None
