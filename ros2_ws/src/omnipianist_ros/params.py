"""Node parameters: one frozen dataclass per node (defaults are the documented values).

Each node declares its parameters from its dataclass with a read-only descriptor
(:func:`declare_and_read`) and reads them once at start-up; the bringup YAML is validated
against the same dataclasses (:mod:`omnipianist_ros.config`), so a typo is an error, not a
silently ignored override.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from omnipianist.errors import ConfigError
from sim_training.constants import CONTROL_RATE_HZ, LOOKAHEAD_STEPS
from sim_training.models.embodiment import ACTION_SETS

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

SIM_MAX_RATE: float = 25.0
"""Simulation safety filter: rate limit of the hand commands [ctrl units/s], above the prior's largest
command step (its IK: 3 iterations of at most 0.35 rad per 50 ms step, 21 rad/s), so that in
simulation the filter passes the prior through unchanged."""
SIM_MAX_RATE_RAIL: float = 2.0
"""Simulation safety filter: rate limit of the forearm slides [m/s]."""

T = TypeVar("T", bound="DataclassInstance")


def _p(default: Any, help: str, choices: tuple[str, ...] = ()) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices})


def _check_choice(node: str, name: str, value: str, choices: tuple[str, ...]) -> None:
    if choices and value not in choices:
        raise ConfigError(f"{node}: parameter {name!r} is {value!r}; expected one of {list(choices)}")


def _validate(obj: Any, node: str) -> None:
    for f in dataclasses.fields(obj):
        choices = f.metadata.get("choices", ())
        if choices:
            _check_choice(node, f.name, getattr(obj, f.name), choices)


@dataclass(frozen=True)
class ScoreParams:
    """score node: MIDI -> /piano/goal at the control rate on the ROS clock."""

    file: str = _p("twinkle", "built-in piece name (see `omnipianist pieces`) or a MIDI file path")
    tempo_scale: float = _p(1.0, "time stretch of the score (> 1 plays slower; RP1M trains at 1.25)")
    lookahead: int = _p(LOOKAHEAD_STEPS, "future control steps in each goal message (rows = lookahead + 1)")
    start_delay: float = _p(0.0, "seconds on the ROS clock between start and the first row of the piece")
    autostart: bool = _p(True, "start at the first tick; otherwise wait for the `start` service")
    tick_source: str = _p("timer", "'timer': a timer on the node's (ROS) clock; 'clock': one tick per /clock "
                                   "message (lock-step simulation, where /clock advances one control step at a time)",
                          ("timer", "clock"))
    period_s: float = _p(0.0, "timer tick period [s] (0 = the control period; shorter only for loop stress tests)")
    loop: bool = _p(False, "start the piece again from its beginning before it ends (endless play: loop benchmark)")
    stamp_goals: bool = _p(False, "also publish each goal's publish time (CLOCK_MONOTONIC seconds, std_msgs/Float64) "
                                  "on /score/goal_stamp: score->command latency measured from another process")

    def __post_init__(self) -> None:
        _validate(self, "score")
        if self.period_s < 0:
            raise ConfigError(f"score: period_s must be >= 0, got {self.period_s}")
        if not self.tempo_scale > 0:
            raise ConfigError(f"score: tempo_scale must be > 0, got {self.tempo_scale}")
        if self.lookahead < 0:
            raise ConfigError(f"score: lookahead must be >= 0, got {self.lookahead}")
        if self.start_delay < 0:
            raise ConfigError(f"score: start_delay must be >= 0, got {self.start_delay}")


@dataclass(frozen=True)
class PolicyParams:
    """policy node: observation -> policy -> safety filter -> per-hand commands."""

    embodiment: str = _p("shadow", "embodiment name (shadow | leap)")
    action_set: str = _p("reduced", "embodiment action set", ACTION_SETS)
    forearm_z: bool = _p(False, "embodiment has the vertical forearm slide")
    policy: str = _p("prior", "'prior' (the OT/IK prior) or the path of an exported .onnx policy")
    lookahead: int = _p(LOOKAHEAD_STEPS, "goal rows the policy expects minus one (must match /piano/goal)")
    trigger: str = _p("timer", "'timer': act every control period on the ROS clock with the newest inputs; "
                               "'lockstep': act once per simulation step, when joint states, keys and a goal "
                               "for that step have all arrived (deterministic simulation); 'goal': act on each new "
                               "/piano/goal (the score's timer paces the loop: least score->command latency; the "
                               "control timer then only runs the safety watchdog)", ("timer", "lockstep", "goal"))
    stale_after_s: float = _p(0.15, "timer mode: an input older than this is stale and the step is skipped")
    safety_margin: float = _p(0.0, "distance kept from each actuator's ctrl range [rad | m]")
    max_rate: float = _p(SIM_MAX_RATE, "rate limit of each hand command [ctrl units/s] (rad/s, m/s for slides); "
                                       "above the prior's largest IK step, 21 rad/s")
    max_rate_rail: float = _p(SIM_MAX_RATE_RAIL, "rate limit of the forearm slides [m/s]")
    estop_heartbeat_timeout_s: float = _p(0.0, "latch ESTOP when /estop is silent this long; 0 = only its value "
                                               "counts (simulation)")
    arm_on_start: bool = _p(True, "arm the safety filter at the first step (seeded at the measured position)")
    hardware_config: str = _p("", "hardware_config/ folder: take the safety filter's limits, rates, watchdog and "
                                  "e-stop settings from its safety.yaml and hand YAMLs ('' = the simulation "
                                  "settings above, limits = the model's actuator ranges)")
    publish_trajectory: bool = _p(True, "also publish each step's action chunk on "
                                        "/<side>_hand/position_controller/joint_trajectory")

    def __post_init__(self) -> None:
        _validate(self, "policy")
        for name in ("max_rate", "max_rate_rail", "stale_after_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"policy: {name} must be > 0, got {getattr(self, name)}")
        if self.safety_margin < 0 or self.estop_heartbeat_timeout_s < 0:
            raise ConfigError("policy: safety_margin and estop_heartbeat_timeout_s must be >= 0")


@dataclass(frozen=True)
class PianoListenerParams:
    """piano_listener node: a real digital piano's MIDI input -> /piano/keys, stamped at receipt."""

    port: str = _p("", "MIDI input port name, or a unique substring of it ('' = the only port there is)")
    rate_hz: float = _p(100.0, "how often pending MIDI messages are read and /piano/keys published on change")
    publish_period_s: float = _p(0.05, "also publish the key state at least this often (0 = only on change)")
    channel: int = _p(-1, "MIDI channel to listen to (0-15), -1 = all")

    def __post_init__(self) -> None:
        if not self.rate_hz > 0:
            raise ConfigError(f"piano_listener: rate_hz must be > 0, got {self.rate_hz}")
        if self.publish_period_s < 0:
            raise ConfigError(f"piano_listener: publish_period_s must be >= 0, got {self.publish_period_s}")
        if not -1 <= self.channel <= 15:
            raise ConfigError(f"piano_listener: channel must be -1..15, got {self.channel}")


@dataclass(frozen=True)
class RecorderParams:
    """recorder node: every topic of the graph to an MCAP file (CDR, ros2msg schemas)."""

    output: str = _p("runs/recordings/omnipianist_%Y%m%d_%H%M%S.mcap", "MCAP file to write (strftime codes allowed)")
    topics: str = _p("", "comma-separated topics to record ('' = every topic, discovered while running)")
    flush_period_s: float = _p(0.5, "flush (and fsync) the file this often: a crash loses at most this much")
    discovery_period_s: float = _p(1.0, "look for new topics this often")

    def __post_init__(self) -> None:
        if not 0 < self.flush_period_s <= 1.0:
            raise ConfigError(f"recorder: flush_period_s must be in (0, 1], got {self.flush_period_s}")
        if not self.discovery_period_s > 0:
            raise ConfigError(f"recorder: discovery_period_s must be > 0, got {self.discovery_period_s}")


@dataclass(frozen=True)
class HandDriverParams:
    """hand_driver_left / hand_driver_right (nodes/hand_driver_node.py, a LifecycleNode): the config-side
    contract of the Dynamixel hand driver's parameters."""

    side: str = _p("left", "which hand this driver runs", ("left", "right"))
    hardware_config: str = _p("hardware_config", "hardware_config/ folder: <embodiment>_<side>.yaml, bus.yaml, "
                                                 "safety.yaml (hardware_config/hil: the simulation-only virtual hands)")
    embodiment: str = _p("leap", "embodiment of the hand file (leap | shadow for the HIL virtual hands)")
    hand_config: str = _p("", "hand YAML ('' = <hardware_config>/<embodiment>_<side>.yaml)")
    bus_config: str = _p("", "bus YAML ('' = <hardware_config>/bus.yaml)")
    safety_config: str = _p("", "safety YAML ('' = <hardware_config>/safety.yaml)")
    rate_hz: float = _p(CONTROL_RATE_HZ, "control rate [Hz] (one bus cycle per period)")
    port: str = _p("", "serial port override ('' = the bus file's port)")
    autostart: bool = _p(False, "configure on start-up and activate as soon as the /estop heartbeat is live "
                                "(otherwise via lifecycle transitions); a failed configure (e.g. the port does "
                                "not exist yet) is retried every 0.5 s for configure_timeout_s")
    configure_timeout_s: float = _p(60.0, "autostart: stop retrying configure after this many seconds (0 = never)")
    trigger: str = _p("timer", "'timer': one bus cycle every 1/rate_hz on the node's clock (hardware, real-time "
                               "HIL); 'command': one cycle per received command (lock-step HIL: the mock steps "
                               "once both drivers report that cycle), plus a hold cycle that publishes nothing "
                               "when the bus has been idle for 1/rate_hz of wall time (feeds the servos' bus "
                               "watchdog while the graph waits)", ("timer", "command"))
    joint_states_topic: str = _p("", "topic of the servo readings ('' = /<side>_hand/joint_states; a HIL run, "
                                     "where the mock publishes the joint states, uses /<side>_hand/servo_states)")

    def __post_init__(self) -> None:
        _validate(self, "hand_driver")
        if self.configure_timeout_s < 0:
            raise ConfigError(f"hand_driver: configure_timeout_s must be >= 0, got {self.configure_timeout_s}")

    def paths(self) -> tuple[str, str, str]:
        """(hand, bus, safety) YAML paths after the defaults."""
        import os

        from omnipianist.hardware.config import shipped_or_given

        d = str(shipped_or_given(self.hardware_config))
        return (self.hand_config or os.path.join(d, f"{self.embodiment}_{self.side}.yaml"),
                self.bus_config or os.path.join(d, "bus.yaml"), self.safety_config or os.path.join(d, "safety.yaml"))


@dataclass(frozen=True)
class MockParams:
    """mujoco_mock node: the simulated piano and hands behind the hardware interface."""

    embodiment: str = _p("shadow", "embodiment name (shadow | leap)")
    action_set: str = _p("reduced", "embodiment action set", ACTION_SETS)
    forearm_z: bool = _p(False, "embodiment has the vertical forearm slide")
    mode: str = _p("realtime", "'realtime': one control step per wall-clock period; 'lockstep': one step when "
                               "both hands' commands for the current step arrived (or after lockstep_timeout_s)",
                   ("realtime", "lockstep"))
    lockstep_timeout_s: float = _p(5.0, "lock-step: wall seconds to wait for commands before stepping anyway")
    settle_s: float = _p(0.5, "wall seconds to wait, once every peer endpoint is matched, before the first step")
    wait_for_subscribers: int = _p(1, "subscribers of /piano/keys to wait for before starting")
    max_steps: int = _p(0, "stop stepping after this many control steps (0 = never)")
    period_s: float = _p(0.0, "realtime: wall period of a step [s] (0 = the control period; the physics always "
                              "advances one control period per step)")
    hil: bool = _p(False, "hardware in the loop: each hand is an emulated Dynamixel bus (a pty) whose servos are "
                          "this simulation's actuators; the hand drivers command them and the mock does not "
                          "subscribe to the command topics. lockstep: a step follows both drivers' servo_states "
                          "(one per command cycle); realtime: steps start once every servo was torqued on")
    hil_config: str = _p("hardware_config/hil", "HIL: folder of the virtual hands (<embodiment>_<side>.yaml), "
                                                "bus.yaml and safety.yaml")
    hil_port_dir: str = _p("", "HIL: folder where the mock links each bus's pty as ttyDXL_<side> (give the same "
                               "path to the drivers' port parameter); '' = a fresh temporary folder")
    hil_byte_timing: bool = _p(True, "HIL: the emulators charge each byte its wire time at the bus baud rate")

    def __post_init__(self) -> None:
        _validate(self, "mujoco_mock")
        if self.period_s < 0:
            raise ConfigError(f"mujoco_mock: period_s must be >= 0, got {self.period_s}")
        if not self.lockstep_timeout_s > 0:
            raise ConfigError(f"mujoco_mock: lockstep_timeout_s must be > 0, got {self.lockstep_timeout_s}")


def hil_port(port_dir: str, side: str) -> str:
    """The link the HIL mock makes in ``port_dir`` to one hand's emulated bus (the driver's ``port``)."""
    import os

    return os.path.join(port_dir, f"ttyDXL_{side}")


@dataclass(frozen=True)
class EstopHeartbeatParams:
    """estop_heartbeat node: /estop False at a steady rate (the software stand-in for the lab's e-stop
    button node in HIL and simulation runs; the hand drivers need its heartbeat to activate)."""

    rate_hz: float = _p(10.0, "heartbeats per second, on the wall clock and (with use_sim_time) also per "
                              "1/rate_hz of simulated time, so a lock-step graph faster than real time stays alive")

    def __post_init__(self) -> None:
        if not self.rate_hz >= 5.0:
            raise ConfigError(f"estop_heartbeat: rate_hz must be >= 5 (the drivers' heartbeat timeout), "
                              f"got {self.rate_hz}")


@dataclass(frozen=True)
class EvaluatorParams:
    """evaluator node: live step F1 and end-of-piece onset F1 from /piano/keys against the score."""

    file: str = _p("twinkle", "the piece the score node plays (same value)")
    tempo_scale: float = _p(1.0, "the score node's tempo_scale (same value)")
    report: str = _p("", "write the end-of-piece JSON report here ('' = do not write)")
    onset_every: int = _p(20, "publish the live onset F1 every this many steps (and at the end)")

    def __post_init__(self) -> None:
        if not self.tempo_scale > 0:
            raise ConfigError(f"evaluator: tempo_scale must be > 0, got {self.tempo_scale}")
        if self.onset_every < 1:
            raise ConfigError(f"evaluator: onset_every must be >= 1, got {self.onset_every}")


def field_types(cls: type) -> dict[str, type]:
    """Scalar Python type of each field of a params dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def coerce(cls: type[T], values: dict[str, Any], where: str) -> T:
    """Build ``cls`` from ``values``; unknown keys or wrong types raise ConfigError naming ``where``."""
    types = field_types(cls)
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in types:
            raise ConfigError(f"{where}: unknown parameter {key!r}; known: {sorted(types)}")
        tp = types[key]
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not tp:
            raise ConfigError(f"{where}.{key}: expected {tp.__name__}, got {type(value).__name__} ({value!r})")
        out[key] = value
    return cls(**out)


def declare_and_read(node: Any, cls: type[T]) -> T:
    """Declare every field of ``cls`` on ``node`` (read-only, with its help text) and read them once."""
    from rcl_interfaces.msg import ParameterDescriptor

    values = {}
    for f in dataclasses.fields(cls):
        desc = ParameterDescriptor(description=f.metadata.get("help", ""), read_only=True)
        param = node.declare_parameter(f.name, f.default, desc)
        values[f.name] = param.value
    return coerce(cls, values, f"node {node.get_name()}")
