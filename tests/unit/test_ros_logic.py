"""ROS graph logic without DDS: observations from messages, QoS and parameter declarations, config errors."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
import pytest
import yaml
from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

from omnipianist.errors import ConfigError, ContractError
from omnipianist_ros import topics
from omnipianist_ros.config import config_path, load_bringup_config, parse_bringup_config
from omnipianist_ros.control import PolicyController, SafetySettings
from omnipianist_ros.evaluation import LiveEvaluator
from omnipianist_ros.messages import (
    JointOrder,
    goal_to_msg,
    joint_state_msg,
    joy_to_keys,
    keys_to_joy,
    msg_to_goal,
)
from omnipianist_ros.mock import MockPiano
from omnipianist_ros.observation import ObservationAssembler
from omnipianist_ros.params import MockParams, PolicyParams, ScoreParams, declare_and_read
from omnipianist_ros.policies import PriorPolicy, check_contract
from omnipianist_ros.score import ScoreSchedule, ScoreState
from sim_training.constants import HAND_SIDES
from sim_training.env.observation import ObservationLayout
from sim_training.env.piano_env import EnvConfig, PianoEnv
from sim_training.fingering.prior import OTIKPrior
from tests.conftest import cached_scene

REPO = Path(__file__).resolve().parents[2]


def _obs_from_messages(env: PianoEnv, asm: ObservationAssembler, rng: np.random.Generator) -> np.ndarray:
    """What the policy node builds from the messages the mock would publish for env's state."""
    emb = env.embodiment
    per_side = {}
    for i, side in enumerate(HAND_SIDES):
        names = list(emb.joint_names(side))
        n = len(names)
        q = env.data.qpos[env.scene.hand_qpos_adr[i * n:(i + 1) * n]]
        perm = rng.permutation(n)  # drivers may send joints in any order: the node reorders by name
        msg = joint_state_msg([names[j] for j in perm], q[perm], None, 1.0)
        per_side[side] = JointOrder(names).positions(msg.name, msg.position)
    key_state, _ = joy_to_keys(keys_to_joy(env.key_state(), env.active_keys(), 1.0))
    goal = msg_to_goal(goal_to_msg(env.goal_window()), env.config.lookahead)
    lay = env.layout
    sustain = float(env._observe()[lay.field("sustain_state").slice][0])  # the policy's own pedal command
    return asm.build(goal, key_state, sustain, asm.hand_q(per_side))


@pytest.mark.parametrize("embodiment", ["shadow", "leap"])
def test_observation_from_messages_equals_simulator(embodiment: str) -> None:
    scene = cached_scene(embodiment)
    env = PianoEnv("c_major_scale", scene.embodiment, EnvConfig(clip_steps=None, random_start=False), scene=scene)
    asm = ObservationAssembler(scene, env.config.lookahead)
    prior = OTIKPrior(scene)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(options={"start_step": 0})
    lay = env.layout
    tips = lay.field("fingertip_xyz").slice
    # After reset and after every step the whole observation is bit-identical (the env recomputes
    # kinematics after mj_step, so its fingertips are a function of the joint state, like the node's).
    np.testing.assert_array_equal(_obs_from_messages(env, asm, rng), obs)
    fk = mujoco.MjData(scene.model)
    for _ in range(40):
        obs, *_ = env.step(prior.act(obs))
        mine = _obs_from_messages(env, asm, rng)
        np.testing.assert_array_equal(mine, obs)
        fk.qpos[:] = env.data.qpos
        mujoco.mj_kinematics(scene.model, fk)
        np.testing.assert_array_equal(mine[tips], fk.site_xpos[scene.fingertip_site_ids].astype(np.float32).ravel())


def test_hand_kinematics_actuator_positions_match_home_ctrl(shadow_scene: Any) -> None:
    asm = ObservationAssembler(shadow_scene, 10)
    q = shadow_scene.home_qpos[shadow_scene.hand_qpos_adr]
    pos = asm.kinematics.actuator_positions(q)
    np.testing.assert_allclose(pos, shadow_scene.home_ctrl[shadow_scene.action_actuator_ids], atol=1e-12)


def test_joint_order_names_missing_joint() -> None:
    order = JointOrder(["lh_a", "lh_b"], "/left_hand/joint_states")
    np.testing.assert_array_equal(order.positions(["lh_b", "lh_a"], [2.0, 1.0]), [1.0, 2.0])
    with pytest.raises(ValueError, match="lh_b"):
        order.positions(["lh_a", "lh_c"], [1.0, 2.0])


def test_goal_message_shape_mismatch_is_clear() -> None:
    msg = goal_to_msg(np.zeros((11, 89), dtype=np.float32))
    assert [d.label for d in msg.layout.dim] == ["step", "key"]
    with pytest.raises(ValueError, match="lookahead"):
        msg_to_goal(msg, 5)


def test_controller_commands_equal_action_to_ctrl(shadow_scene: Any) -> None:
    """With the simulation safety settings the filter passes the prior's commands through unchanged."""
    scene = shadow_scene
    env = PianoEnv("c_major_scale", scene.embodiment, EnvConfig(clip_steps=None, random_start=False), scene=scene)
    ctl = PolicyController(scene, PriorPolicy(scene, 10), 10, SafetySettings())
    mock = MockPiano(scene)
    offline = OTIKPrior(scene)
    obs, _ = env.reset(options={"start_step": 0})
    for t in range(30):
        hq = np.concatenate([mock.hand_q(s) for s in HAND_SIDES])
        if t == 0:
            ctl.arm(0.0, hq)
        r = ctl.step(t * 0.05, env.goal_window(), mock.key_state().astype(np.float32), hq)
        action = offline.act(obs)
        np.testing.assert_array_equal(r.action, action)
        ctrl = np.zeros(scene.model.nu)
        scene.action_to_ctrl(action, ctrl)
        got = np.concatenate([r.commands[s] for s in HAND_SIDES])
        np.testing.assert_array_equal(np.clip(got, scene.action_ctrl_low, scene.action_ctrl_high),
                                      np.clip(ctrl[scene.action_actuator_ids], scene.action_ctrl_low,
                                              scene.action_ctrl_high))
        for s in HAND_SIDES:
            mock.apply(s, r.commands[s])
        mock.step()
        obs, *_ = env.step(action)
        np.testing.assert_array_equal(mock.data.qpos, env.data.qpos)  # same physics, bit for bit


def test_estop_stops_commands(shadow_scene: Any) -> None:
    ctl = PolicyController(shadow_scene, PriorPolicy(shadow_scene, 10), 10, SafetySettings())
    hq = shadow_scene.home_qpos[shadow_scene.hand_qpos_adr]
    ctl.arm(0.0, hq)
    goal = np.zeros((11, 89), dtype=np.float32)
    assert all(c is not None for c in ctl.step(0.0, goal, np.zeros(88, np.float32), hq).commands.values())
    ctl.estop(0.01, "test")
    assert all(c is None for c in ctl.step(0.05, goal, np.zeros(88, np.float32), hq).commands.values())


class _WrongPolicy:
    name = "wrong"

    def __init__(self, layout: Any, action_dim: int) -> None:
        self.layout, self.action_dim = layout, action_dim

    def reset(self) -> None: ...

    def act(self, obs: np.ndarray) -> np.ndarray:
        return np.zeros(self.action_dim)


def test_policy_contract_mismatch_refused(shadow_scene: Any) -> None:
    emb = shadow_scene.embodiment
    good = ObservationLayout.for_embodiment(emb, 10)
    check_contract(_WrongPolicy(good, emb.action_dim), good, emb.action_dim, emb.key)
    with pytest.raises(ContractError, match="lookahead"):
        check_contract(_WrongPolicy(ObservationLayout.for_embodiment(emb, 5), emb.action_dim), good,
                       emb.action_dim, emb.key)
    leap = ObservationLayout.for_embodiment(cached_scene("leap").embodiment, 10)
    with pytest.raises(ContractError, match="embodiment"):
        PolicyController(shadow_scene, _WrongPolicy(leap, emb.action_dim), 10, SafetySettings())  # type: ignore[arg-type]
    with pytest.raises(ContractError, match="action_dim"):
        check_contract(_WrongPolicy(good, emb.action_dim + 1), good, emb.action_dim, emb.key)
    with pytest.raises(ContractError, match="no observation layout"):
        check_contract(object(), good, emb.action_dim, emb.key)


def test_score_schedule_rows_and_silence() -> None:
    s = ScoreSchedule.from_piece("c_major_scale", 1.0, 10, start_delay_s=0.1)
    assert s.tick(0.0).state is ScoreState.IDLE
    s.start(1.0)
    assert s.tick(1.05).state is ScoreState.WAITING and not s.tick(1.05).goal.any()
    t = s.tick(1.1 + 3 * 0.05 + 0.004)  # jitter below half a step picks the intended row
    assert t.step == 3 and t.state is ScoreState.PLAYING
    np.testing.assert_array_equal(t.goal, s.roll.goal(3, 10))
    assert s.tick(1.1 + s.n_steps * 0.05).state is ScoreState.DONE


def test_evaluator_maps_stamps_to_steps() -> None:
    s = ScoreSchedule.from_piece("c_major_scale", 1.0, 10, 0.0)
    ev = LiveEvaluator(s.roll)
    assert ev.add_keys(0.05, np.zeros(88, bool)) is None  # not started
    ev.set_start(2.0)
    assert ev.add_keys(2.0, np.zeros(88, bool)) is None  # keys at the start answer no step
    for k in range(s.n_steps):
        assert ev.add_keys(2.0 + (k + 1) * 0.05, s.roll.keys[k]) == k
    assert ev.complete and ev.report()["f1"] == 1.0 and ev.report()["onset_f1"] == 1.0


# ------------------------------------------------------------------------------------- QoS, parameters
def test_qos_declarations() -> None:
    assert topics.COMMAND_PUB_QOS.reliability is ReliabilityPolicy.RELIABLE and topics.COMMAND_PUB_QOS.depth == 1
    assert topics.COMMAND_SUB_QOS.reliability is ReliabilityPolicy.BEST_EFFORT and topics.COMMAND_SUB_QOS.depth == 1
    assert topics.command_sub_qos(0.1).deadline.nanoseconds == 100_000_000
    assert topics.GOAL_QOS.reliability is ReliabilityPolicy.RELIABLE and topics.GOAL_QOS.depth == 1
    assert topics.JOINT_STATES_QOS.reliability is ReliabilityPolicy.RELIABLE and topics.JOINT_STATES_QOS.depth == 10
    assert topics.KEYS_QOS.reliability is ReliabilityPolicy.RELIABLE
    assert topics.ESTOP_QOS.durability is DurabilityPolicy.TRANSIENT_LOCAL
    assert topics.ESTOP_QOS.reliability is ReliabilityPolicy.RELIABLE
    assert topics.commands("left") == "/left_hand/position_controller/commands"
    assert topics.joint_states("right") == "/right_hand/joint_states"
    with pytest.raises(ValueError):
        topics.commands("middle")


class _FakeParam:
    def __init__(self, value: Any) -> None:
        self.value = value


class _FakeNode:
    def __init__(self, overrides: dict[str, Any]) -> None:
        self.overrides = overrides
        self.declared: dict[str, Any] = {}

    def get_name(self) -> str:
        return "fake"

    def declare_parameter(self, name: str, default: Any, descriptor: Any) -> _FakeParam:
        self.declared[name] = descriptor
        return _FakeParam(self.overrides.get(name, default))


@pytest.mark.parametrize("cls", [ScoreParams, PolicyParams, MockParams])
def test_parameters_declared_read_only_with_descriptions(cls: type) -> None:
    node = _FakeNode({})
    params = declare_and_read(node, cls)
    assert params == cls()
    assert set(node.declared) == {f.name for f in dataclasses.fields(cls)}
    assert all(d.read_only and d.description for d in node.declared.values())


def test_parameter_override_is_validated() -> None:
    assert declare_and_read(_FakeNode({"tempo_scale": 1.25}), ScoreParams).tempo_scale == 1.25
    with pytest.raises(ConfigError, match="tick_source"):
        declare_and_read(_FakeNode({"tick_source": "sundial"}), ScoreParams)


# ------------------------------------------------------------------------------------- bringup YAML
def test_sim_yaml_loads() -> None:
    cfg = load_bringup_config(config_path("sim.yaml"))
    assert [n.name for n in cfg.nodes] == ["mujoco_mock", "score", "policy", "evaluator"]
    assert all(n.use_sim_time for n in cfg.nodes)
    assert cfg.node("policy").params.trigger == "lockstep" and cfg.node("mujoco_mock").params.mode == "lockstep"
    assert cfg.node("score").params.file == cfg.node("evaluator").params.file


def _good() -> dict[str, Any]:
    return yaml.safe_load((REPO / "ros2_ws/config/sim.yaml").read_text())


@pytest.mark.parametrize("mutate, match", [
    (lambda r: r["bringup"].update(nodes=["mujoco_mock", "scor"]), r"unknown node 'scor'.*did you mean 'score'"),
    (lambda r: r["policy"]["ros__parameters"].update(polcy="prior"), r"policy\.ros__parameters\.polcy.*did you mean"),
    (lambda r: r["score"]["ros__parameters"].update(tempo_scale="fast"),
     r"score\.ros__parameters\.tempo_scale: expected float"),
    (lambda r: r["mujoco_mock"]["ros__parameters"].update(mode="warp"), r"mode.*'warp'.*lockstep"),
    (lambda r: r["/**"]["ros__parameters"].update(colour="red"), r"/\*\*\.ros__parameters\.colour: no node declares it"),
    (lambda r: r.update(plicy={"ros__parameters": {}}), r"plicy: not a node"),
    (lambda r: r.pop("bringup"), r"bringup\.nodes"),
    (lambda r: r["score"].update(extra=1), r"score: expected a mapping with exactly one key 'ros__parameters'"),
    (lambda r: r["score"]["ros__parameters"].update(tempo_scale=0.0), r"tempo_scale must be > 0"),
])
def test_bad_yaml_is_a_clear_error(mutate: Any, match: str) -> None:
    raw = _good()
    mutate(raw)
    with pytest.raises(ConfigError, match=match) as err:
        parse_bringup_config(raw, "bad.yaml")
    assert str(err.value).startswith("bad.yaml")


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    p = tmp_path / "broken.yaml"
    p.write_text("bringup:\n  nodes: [score\nscore: {\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: line \d+"):
        load_bringup_config(p)
    with pytest.raises(ConfigError, match="cannot read"):
        load_bringup_config(tmp_path / "missing.yaml")


def test_int_for_float_parameter_is_accepted() -> None:
    raw = _good()
    raw["score"]["ros__parameters"]["tempo_scale"] = 2
    assert parse_bringup_config(raw).node("score").params.tempo_scale == 2.0


def test_launch_file_parses() -> None:
    tree = ast.parse((REPO / "ros2_ws/launch/sim.launch.py").read_text())
    funcs = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in funcs


def test_refused_observation_sends_no_new_command(shadow_scene: Any) -> None:
    """A runtime that refuses an observation (NaN) returns None: the controller holds, counts it."""

    class _Refusing(PriorPolicy):
        def act(self, obs: np.ndarray) -> None:  # type: ignore[override]
            return None

    ctl = PolicyController(shadow_scene, _Refusing(shadow_scene, 10), 10, SafetySettings())
    hq = shadow_scene.home_qpos[shadow_scene.hand_qpos_adr]
    ctl.arm(0.0, hq)
    goal = np.zeros((11, 89), dtype=np.float32)
    res = ctl.step(0.05, goal, np.zeros(88, np.float32), hq)
    assert res.action is None and ctl.refused_observations == 1
    assert ctl.diagnostics()["refused_observations"] == "1"
    for side, cmd in res.commands.items():
        assert cmd is None or np.all(np.isfinite(cmd)), side


def test_evaluator_past_end_despite_a_skipped_step() -> None:
    """Real time: a late tick can leave a step without keys; keys stamped after the piece's end say
    that every answer is due, so the node can report (the gap counts as silent) instead of waiting."""
    s = ScoreSchedule.from_piece("c_major_scale", 1.0, 10, 0.0)
    ev = LiveEvaluator(s.roll)
    assert not ev.past_end(100.0)  # not started
    ev.set_start(2.0)
    for k in range(s.n_steps):
        if k != 7:
            ev.add_keys(2.0 + (k + 1) * 0.05, s.roll.keys[k])
    assert not ev.complete and not ev.past_end(2.0 + s.n_steps * 0.05)
    assert ev.past_end(2.0 + (s.n_steps + 1) * 0.05)
    r = ev.report()
    assert r["steps_seen"] == s.n_steps - 1 and r["f1"] < 1.0
