"""The hardware-in-the-loop rig: policy -> safety filter -> HandDriver -> pty -> emulator -> MuJoCo.

One :class:`HilRig` = one scene (built for the rig alone: torque off edits its actuator gains), one
:class:`~omnipianist.hardware.emulator.ServoBusEmulator` per hand whose servos are that hand's actuators
(:class:`~omnipianist.hardware.sim_servos.SimServoBackend`), and one
:class:`~omnipianist.hardware.driver.HandDriver` per hand talking real bytes to it over a pty.

Lock-step (default): each control step the policy sees the simulator's observation, each driver runs one
cycle (filter, Sync Write goals, Fast Sync Read state) with the step's sim time as its clock, and then the
physics advances one control period with the goals the *emulated servos* hold (what reached the wire,
not what the policy asked for). Actuators without a servo (the LEAP forearm rails when their
``rail.driver`` is not ``dynamixel``) are commanded directly; with ``dynamixel`` the rails are two more
emulated servos on the hand's bus (Extended Position mode, ticks <-> metres through the channel), driven
by the hand driver like the joints. The observation comes from the simulator, as the MuJoCo mock
publishes it on ROS; the drivers' readings feed the filters (HOLD) and the diagnostics.

Hand sources: ``embodiment="shadow"`` uses the simulation-only virtual hands of ``hardware_config/hil/``
(every actuator a servo); ``embodiment="leap"`` uses the real ``hardware_config/leap_{left,right}.yaml``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import mujoco
import numpy as np

from omnipianist.errors import ConfigError
from omnipianist.hardware.channels import ServoChannel
from omnipianist.hardware.config import (
    HARDWARE_CONFIG_DIR,
    BusConfig,
    SafetyConfig,
    load_bus_config,
    load_safety_config,
)
from omnipianist.hardware.driver import IO_BUDGET_FRACTION, HandDriver, HandReading
from omnipianist.hardware.dynamixel import protocol as p
from omnipianist.hardware.dynamixel import tables as t
from omnipianist.hardware.emulator import ServoBusEmulator
from omnipianist.hardware.hil_config import HIL_CONFIG_DIR, load_channels
from omnipianist.hardware.sim_servos import SimServoBackend
from sim_training.constants import CONTROL_DT_S, HAND_SIDES
from sim_training.env.piano_env import EnvConfig, PianoEnv
from sim_training.env.rollout import rollout
from sim_training.fingering.prior import OTIKPrior
from sim_training.models.scene import Scene, build_scene
from sim_training.music import PianoRoll, Score

IDLE_TIMEOUT_S = 2.0
"""Longest wait [s] for an emulated bus to handle what its driver sent before a lock-step physics step."""


class Policy(Protocol):
    """What the rig plays with (the OT/IK prior, or the exported generalist later)."""

    def reset(self) -> None: ...

    def act(self, obs: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class HilConfig:
    """Rig settings (defaults: the shipped HIL files for Shadow).

    Attributes:
        embodiment: ``shadow`` (virtual hands) or ``leap`` (the real hand files).
        hand_files: per side; default by embodiment (see module docstring).
        bus_file / safety_file: default ``hardware_config/hil/{bus,safety}.yaml`` for shadow, and the HIL
            bus file with ``hardware_config/safety.yaml`` for leap.
        byte_timing: the emulator charges each byte its wire time at the bus baud rate.
        io_budget_s: each driver cycle's I/O deadline (default 40 % of the control period).
        persistent_failure_s: override of the drivers' torque-off-after-failure time.
        timeout_scale: multiplies the buses' reply timeouts and the drivers' I/O budget (1: the files'
            real timing). The lock-step rig keeps simulated time, so wider wall-clock margins change
            no result; tests use them so that a briefly busy host does not fail a transaction.
    """

    embodiment: str = "shadow"
    hand_files: dict[str, Path] | None = None
    bus_file: Path = HIL_CONFIG_DIR / "bus.yaml"
    safety_file: Path | None = None
    byte_timing: bool = True
    io_budget_s: float | None = None
    persistent_failure_s: float | None = None
    timeout_scale: float = 1.0

    def __post_init__(self) -> None:
        if not self.timeout_scale > 0:
            raise ConfigError(f"HilConfig.timeout_scale must be > 0, got {self.timeout_scale}")

    def resolved_hand_files(self) -> dict[str, Path]:
        if self.hand_files is not None:
            return dict(self.hand_files)
        if self.embodiment == "shadow":
            return {s: HIL_CONFIG_DIR / f"shadow_{s}.yaml" for s in HAND_SIDES}
        return {s: HARDWARE_CONFIG_DIR / f"{self.embodiment}_{s}.yaml" for s in HAND_SIDES}

    def resolved_safety_file(self) -> Path:
        if self.safety_file is not None:
            return self.safety_file
        return HIL_CONFIG_DIR / "safety.yaml" if self.embodiment == "shadow" else HARDWARE_CONFIG_DIR / "safety.yaml"


def load_sim_buses(config: HilConfig) -> tuple[dict[str, list[ServoChannel]], dict[str, BusConfig], SafetyConfig]:
    """Per side the servo channels and bus settings of ``config``'s hand files, and the safety settings."""
    safety = load_safety_config(config.resolved_safety_file(), config.embodiment)
    buses = load_bus_config(config.bus_file)
    channels: dict[str, list[ServoChannel]] = {}
    bus_configs: dict[str, BusConfig] = {}
    for side, path in config.resolved_hand_files().items():
        channels[side], bus_name = load_channels(Path(path), config.embodiment, safety)
        if bus_name not in buses:
            raise ConfigError(f"{path}: bus {bus_name!r} is not in {config.bus_file}")
        bus_configs[side] = buses[bus_name]
    return channels, bus_configs, safety


def start_sim_bus(model: mujoco.MjModel, data: mujoco.MjData, channels: list[ServoChannel], bus_config: BusConfig,
                  lock: threading.RLock, *, byte_timing: bool = True,
                  watchdog_clock: Callable[[], float] = time.monotonic) -> tuple[SimServoBackend, ServoBusEmulator]:
    """One hand's servos as an emulated Dynamixel bus whose physics is ``model`` / ``data``; started.

    Goals start at the current ctrl and every servo powers up with torque off (limp until a driver
    activates it). Whoever steps ``data`` must hold ``lock`` and call ``backend.apply(ctrl)`` before each
    physics step, after ``emulator.wait_idle`` (the goals the host has sent are applied). The pty to open is
    ``emulator.port`` (a stable symlink); call ``emulator.stop()`` at the end. ``watchdog_clock``: what the
    servos' Bus Watchdog measures silence on (a lock-step graph passes its simulated time).
    """
    backend = SimServoBackend(model, data, channels, lock)
    backend.seed_goals_from_ctrl(data.ctrl)
    for c in channels:
        backend.on_torque(c.servo_id, False)
    emu = ServoBusEmulator(
        [c.servo_id for c in channels], t.MODELS[t.XC330_M288].number, on_goal=backend.on_goal,
        present=backend.present, on_torque=backend.on_torque, baudrate=bus_config.baudrate, byte_timing=byte_timing,
        watchdog_clock=watchdog_clock,
    )
    return backend, emu.start()


@dataclass
class HilResult:
    """What a HIL play produced."""

    metrics: dict[str, float]
    steps: int
    diagnostics: dict[str, dict[str, object]]
    out_of_limits: list[str] = field(default_factory=list)
    """Goal writes outside a servo's safe tick range, read back from the emulators' logs (must be empty)."""
    emulator_errors: list[str] = field(default_factory=list)
    status_errors: list[str] = field(default_factory=list)
    """Instructions an emulated servo refused (error status 0x04 / 0x05 / 0x07 ...), ``<side>: <why>``;
    empty in normal play (a fault test may cause some, e.g. goals sent to a servo whose watchdog tripped)."""


class HilRig:
    """Scene + two emulated buses + two hand drivers (see module docstring). Use as a context manager.

    Args:
        piece: built-in name, MIDI path, Score or PianoRoll.
        config: rig settings.
        clip_steps / start_step: which part of the piece (None: all of it).
    """

    def __init__(
        self,
        piece: str | Score | PianoRoll,
        config: HilConfig | None = None,
        *,
        clip_steps: int | None = None,
        start_step: int = 0,
    ) -> None:
        self.config = config or HilConfig()
        cfg = self.config
        self.scene = build_scene(cfg.embodiment)  # private copy: torque off edits actuator gains
        self.env = PianoEnv(piece, cfg.embodiment, EnvConfig(clip_steps=clip_steps, random_start=False),
                            scene=self.scene)
        self.start_step = start_step
        self.dt = CONTROL_DT_S
        self.lock = threading.RLock()
        self.safety = load_safety_config(cfg.resolved_safety_file(), cfg.embodiment)
        buses = load_bus_config(cfg.bus_file)
        emb = self.scene.embodiment
        action_names = emb.action_names[:-1]
        self.channels: dict[str, list[ServoChannel]] = {}
        self.bus_configs: dict[str, BusConfig] = {}
        self.backends: dict[str, SimServoBackend] = {}
        self.emulators: dict[str, ServoBusEmulator] = {}
        self.drivers: dict[str, HandDriver] = {}
        self._cmd_index: dict[str, np.ndarray] = {}
        served: set[str] = set()
        for side, path in cfg.resolved_hand_files().items():
            channels, bus_name = load_channels(Path(path), cfg.embodiment, self.safety)
            self.channels[side] = channels
            bus = buses[bus_name]
            self.bus_configs[side] = replace(bus, timeout_s=bus.timeout_s * cfg.timeout_scale) \
                if cfg.timeout_scale != 1.0 else bus
            self._cmd_index[side] = np.array([action_names.index(c.name) for c in channels])
            served.update(c.name for c in channels)
        self._direct = np.array([i for i, n in enumerate(action_names) if n not in served], dtype=int)
        """Action entries with no servo (LEAP rails): commanded straight into the simulation."""
        self.t = 0
        self.idle_timeouts = 0
        """Steps whose physics ran before an emulator had handled every byte sent (after IDLE_TIMEOUT_S)."""
        self.obs: np.ndarray | None = None
        self._started = False
        self.ctrl_desired = np.zeros(len(action_names))

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> HilRig:
        """Reset the scene, start the emulators, configure and activate both drivers (at sim time 0)."""
        if self._started:
            return self
        cfg = self.config
        self.obs, _ = self.env.reset(options={"start_step": self.start_step})
        for side, channels in self.channels.items():
            bus_cfg = self.bus_configs[side]
            backend, emu = start_sim_bus(self.env.model, self.env.data, channels, bus_cfg, self.lock,
                                         byte_timing=cfg.byte_timing)
            self.backends[side] = backend
            self.emulators[side] = emu
            budget = cfg.io_budget_s if cfg.io_budget_s is not None else IO_BUDGET_FRACTION * self.dt
            self.drivers[side] = HandDriver(
                channels, bus_cfg, self.safety, period_s=self.dt, io_budget_s=budget * cfg.timeout_scale,
                port=emu.port,
                persistent_failure_s=cfg.persistent_failure_s, name=side,
            )
        self._started = True
        for driver in self.drivers.values():
            driver.configure()
        self.activate()
        return self

    def activate(self) -> None:
        now = self.now_s
        for driver in self.drivers.values():
            driver.heartbeat(now)
            driver.activate(now)

    def close(self) -> None:
        for driver in self.drivers.values():
            try:
                driver.shutdown()
            except Exception:  # noqa: BLE001 - closing must go on for the other hand
                pass
        for emu in self.emulators.values():
            emu.stop()
        self.env.close()

    def __enter__(self) -> HilRig:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- running ----------------------------------------------------------------------------------

    @property
    def now_s(self) -> float:
        """The rig's clock: sim time of the next step [s]."""
        return self.t * self.dt

    @property
    def done(self) -> bool:
        return self.t >= self.env._end - self.env._start  # noqa: SLF001 - the env's clip bounds

    def step(self, action: np.ndarray, *, heartbeat: bool = True,
             before_physics: Callable[[HilRig], None] | None = None) -> dict[str, HandReading]:
        """One control step with a normalised action (env order, sustain last); returns each hand's reading."""
        now = self.now_s
        a = np.asarray(action, dtype=float)
        s = self.scene
        self.ctrl_desired = s.action_ctrl_low + 0.5 * (np.clip(a[:-1], -1, 1) + 1) * (s.action_ctrl_high - s.action_ctrl_low)
        readings = {}
        for side, driver in self.drivers.items():
            if heartbeat:
                driver.heartbeat(now)
            readings[side] = driver.step(self.ctrl_desired[self._cmd_index[side]], now)
        if before_physics is not None:
            before_physics(self)
        for emu in self.emulators.values():  # a timed-out read must not let the physics run ahead of the goals
            if not emu.wait_idle(IDLE_TIMEOUT_S):
                self.idle_timeouts += 1
        with self.lock:
            ctrl = self.env.data.ctrl.copy()
            for backend in self.backends.values():
                backend.apply(ctrl)
            if self._direct.size:
                ctrl[s.action_actuator_ids[self._direct]] = self.ctrl_desired[self._direct]
            executed = s.ctrl_to_action(ctrl, sustain=float(a[-1]))
            self.obs, _, _, _, _ = self.env.step(np.clip(executed, -1.0, 1.0))
        self.t += 1
        return readings

    def play(self, policy: Policy, *, on_step: Callable[[HilRig, int], None] | None = None,
             max_steps: int | None = None) -> HilResult:
        """Play to the end of the clip (or ``max_steps``) in lock-step; returns F1 and diagnostics."""
        self.start()
        policy.reset()
        n = 0
        while not self.done and (max_steps is None or n < max_steps):
            if on_step is not None:
                on_step(self, self.t)
            assert self.obs is not None
            self.step(policy.act(self.obs))
            n += 1
        return self.result()

    def result(self) -> HilResult:
        return HilResult(
            metrics=self.env.episode_metrics(),
            steps=self.t,
            diagnostics={side: d.diagnostics() for side, d in self.drivers.items()},
            out_of_limits=[m for side in self.emulators for m in goals_outside_limits(
                self.emulators[side], self.drivers[side].channels if side in self.drivers else self.channels[side])],
            emulator_errors=[f"{side}: {emu.error!r}" for side, emu in self.emulators.items() if emu.error],
            status_errors=[f"{side}: {e}" for side, emu in self.emulators.items() for e in emu.status_error_summary()],
        )


def goals_outside_limits(emulator: ServoBusEmulator, channels: list[ServoChannel]) -> list[str]:
    """Every Goal Position that reached the emulator outside its servo's safe tick range (from the log).

    Pass the driver's channels (``driver.channels``): a homed rail's tick range is in its homed frame."""
    item = t.X_SERIES["goal_position"]
    by_id = {c.servo_id: c for c in channels}
    bad = []
    for entry in emulator.instructions():
        for servo_id, ticks in _goal_writes(entry.instruction, entry.servo_id, entry.params, item):
            ch = by_id.get(servo_id)
            if ch is None:
                continue
            lo, hi = ch.safe_tick_range()
            if not lo <= ticks <= hi:
                bad.append(f"{emulator.port}: servo id {servo_id} ({ch.name}) goal {ticks} outside [{lo}, {hi}] "
                           f"at t={entry.time_s:.4f}")
    return bad


def _goal_writes(inst: int, servo_id: int, params: bytes, item: t.ControlItem) -> Iterator[tuple[int, int]]:
    if len(params) < 4:
        return
    address = params[0] | params[1] << 8
    if inst == p.INST_WRITE and address <= item.address and address + len(params) - 2 >= item.end:
        off = 2 + item.address - address
        yield servo_id, item.decode(params[off : off + item.size])
    elif inst == p.INST_SYNC_WRITE:
        length = params[2] | params[3] << 8
        if not (address <= item.address and address + length >= item.end):
            return
        stride = 1 + length
        body = params[4:]
        for k in range(0, len(body) - stride + 1, stride):
            off = k + 1 + item.address - address
            yield body[k], item.decode(body[off : off + item.size])


def pure_sim_f1(piece: str | Score | PianoRoll, policy: Policy, embodiment: str = "shadow", *,
                clip_steps: int | None = None, start_step: int = 0) -> dict[str, float]:
    """The same play without the hardware path (reference for the HIL F1)."""
    env = PianoEnv(piece, embodiment, EnvConfig(clip_steps=clip_steps, random_start=False))
    policy.reset()
    rollout(env, policy.act, start_step=start_step, max_steps=10**9)
    return env.episode_metrics()


class PriorPolicy:
    """The OT/IK prior behind the rig's policy interface (``reset``, ``act``)."""

    def __init__(self, scene: Scene, lookahead: int | None = None) -> None:
        self._prior = OTIKPrior(scene, lookahead=lookahead)

    def reset(self) -> None:
        self._prior.reset()

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self._prior.act(obs)


def wait_until(predicate: Callable[[], bool], timeout_s: float = 1.0) -> bool:
    """Poll ``predicate`` until true or ``timeout_s`` passed (for the emulator thread to catch up)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.001)
    return predicate()
