"""Unit tests of the hand models (sim_training.models.hands): names, frames, mirror, dynamics."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest

from omnipianist.errors import ModelError
from sim_training.models.hands import HANDS, HandModelSpec, get_hand

MOUNT_POS = np.array([0.1, -0.2, 0.5])
PREFIX = {"right": "rh_", "left": "lh_"}
EXPECTED = {  # hand: (joints, actuators, reduced actuators, fingertip sites)
    "shadow": (24, 20, 17, 5),
    "leap": (16, 16, 16, 4),
}
INDEX_FLEXION = {"shadow": "FFJ3", "leap": "if_mcp"}
STEP_JOINTS = {"shadow": ("FFJ3", "FFJ0", "THJ2"), "leap": ("if_mcp", "if_pip", "th_cmc")}
STEP_RAD = 0.3


def _spec(degree: bool | None = None) -> mujoco.MjSpec:
    """An empty spec with the scene's physics options (dt 5 ms, implicitfast, gravity on)."""
    spec = mujoco.MjSpec()
    if degree is not None:
        spec.compiler.degree = degree
    spec.option.timestep = 0.005
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    return spec


def _build(hand: HandModelSpec, *sides: str) -> tuple[mujoco.MjModel, mujoco.MjData]:
    """Each side's hand on its own fixed mount at MOUNT_POS (x mirrored for the left)."""
    spec = _spec()
    for side in sides:
        mount = spec.worldbody.add_body()
        mount.name = PREFIX[side] + "mount"
        mount.pos = MOUNT_POS * (np.array([-1.0, 1.0, 1.0]) if side == "left" else 1.0)
        hand.add_to(spec, mount, side, PREFIX[side])
    model = spec.compile()
    return model, mujoco.MjData(model)


def _tips(hand: HandModelSpec, model: mujoco.MjModel, data: mujoco.MjData, side: str) -> np.ndarray:
    """Fingertip site positions (n x 3) relative to the side's mount (world-aligned)."""
    mount = data.body(PREFIX[side] + "mount").xpos
    return np.array([data.site(PREFIX[side] + s).xpos - mount for s in hand.fingertip_site_names])


def _set_home(hand: HandModelSpec, data: mujoco.MjData, side: str) -> None:
    for joint, angle in hand.home_joint_angles_rad.items():
        data.joint(PREFIX[side] + joint).qpos[0] = angle
    for act, target in hand.home_actuator_targets.items():
        data.actuator(PREFIX[side] + act).ctrl[0] = target


@pytest.fixture(scope="module", params=sorted(HANDS))
def hand(request: pytest.FixtureRequest) -> HandModelSpec:
    return HANDS[request.param]


@pytest.fixture(scope="module")
def both(hand: HandModelSpec) -> tuple[mujoco.MjModel, mujoco.MjData]:
    """Left and right hand on one spec."""
    return _build(hand, "right", "left")


def test_registry_and_unknown_name() -> None:
    assert set(HANDS) == {"shadow", "leap"}
    assert get_hand("leap") is HANDS["leap"]
    with pytest.raises(ModelError, match=r"allegro.*leap.*shadow"):
        get_hand("allegro")


def test_counts_and_prefixed_names(hand: HandModelSpec, both: tuple) -> None:
    model, _ = both
    n_joints, n_act, n_reduced, n_tips = EXPECTED[hand.name]
    assert (len(hand.joint_names), len(hand.actuator_names)) == (n_joints, n_act)
    assert (len(hand.reduced_actuator_names), len(hand.fingertip_site_names)) == (n_reduced, n_tips)
    assert model.njnt == 2 * n_joints and model.nu == 2 * n_act and model.nsite == 2 * n_tips
    assert set(hand.reduced_actuator_names) <= set(hand.actuator_names)
    for side, prefix in PREFIX.items():
        ids = [model.joint(prefix + j).id for j in hand.joint_names]
        assert ids == sorted(ids), f"{side}: joint_names not in kinematic (model) order"
        for act in hand.actuator_names:
            assert model.actuator(prefix + act).id >= 0
        for site in hand.fingertip_site_names:
            assert model.site(prefix + site).id >= 0
    assert all(model.jnt_type == mujoco.mjtJoint.mjJNT_HINGE)


def test_actuator_ranges_match_joint_ranges(hand: HandModelSpec, both: tuple) -> None:
    model, _ = both
    for act, joints in hand.actuator_joints.items():
        ctrl = model.actuator("rh_" + act).ctrlrange
        lo = sum(model.joint("rh_" + j).range[0] for j in joints)
        hi = sum(model.joint("rh_" + j).range[1] for j in joints)
        np.testing.assert_allclose(ctrl, (lo, hi), atol=1e-4, err_msg=act)


def test_ranges_are_radians_whatever_the_compiler_angle_unit(hand: HandModelSpec) -> None:
    ranges = []
    for degree in (True, False):
        spec = _spec(degree=degree)
        hand.add_to(spec, spec.worldbody.add_body(), "right", "")
        ranges.append(spec.compile().jnt_range.copy())
    np.testing.assert_allclose(ranges[0], ranges[1], atol=1e-9)
    assert np.abs(ranges[0]).max() < math.pi


def test_collision_classes(hand: HandModelSpec, both: tuple) -> None:
    model, _ = both
    pairs = set(zip(model.geom_contype.tolist(), model.geom_conaffinity.tolist(), strict=True))
    assert pairs <= {(2, 1), (4, 4), (0, 0)}
    hand_geoms = (model.geom_contype == 2) & (model.geom_conaffinity == 1)
    assert np.all(model.geom_group[hand_geoms] == 3)
    visual = model.geom_contype == 0
    assert np.all(model.geom_group[visual] == 1)
    assert not np.any(np.isin(model.geom_type, [mujoco.mjtGeom.mjGEOM_MESH]))


def test_left_is_mirror_of_right(hand: HandModelSpec, both: tuple) -> None:
    model, data = both
    rng = np.random.default_rng(0)
    for _ in range(5):
        for joint in hand.joint_names:
            lo, hi = model.joint("rh_" + joint).range
            angle = rng.uniform(lo, hi)
            data.joint("rh_" + joint).qpos[0] = angle
            data.joint("lh_" + joint).qpos[0] = angle
        mujoco.mj_kinematics(model, data)
        right, left = _tips(hand, model, data, "right"), _tips(hand, model, data, "left")
        np.testing.assert_allclose(left, right * np.array([-1.0, 1.0, 1.0]), atol=1e-6)
    # And in the flat zero posture the right thumb is on -x, the left on +x, fingers along +y.
    data.qpos[:] = 0.0
    mujoco.mj_kinematics(model, data)
    right, left = _tips(hand, model, data, "right"), _tips(hand, model, data, "left")
    assert right[0, 0] < right[1:, 0].min() and left[0, 0] > left[1:, 0].max()
    assert np.all(right[1:, 1] > 0.1)


def test_flexion_lowers_index_tip(hand: HandModelSpec, both: tuple) -> None:
    model, data = both
    joint = INDEX_FLEXION[hand.name]
    for side, prefix in PREFIX.items():
        data.qpos[:] = 0.0
        mujoco.mj_kinematics(model, data)
        z0 = _tips(hand, model, data, side)[1, 2]
        data.joint(prefix + joint).qpos[0] = 0.3
        mujoco.mj_kinematics(model, data)
        assert _tips(hand, model, data, side)[1, 2] < z0 - 0.01, side


def test_home_posture_hovers_in_front_and_below(hand: HandModelSpec, both: tuple) -> None:
    model, data = both
    data.qpos[:] = 0.0
    for side in PREFIX:
        _set_home(hand, data, side)
    mujoco.mj_kinematics(model, data)
    for side in PREFIX:
        tips = _tips(hand, model, data, side)
        # At or below the wrist (Shadow's raised wrist puts the fingertips level with it; the
        # wrist-less LEAP hangs them ~9 cm below), in front of it, and the thumb tip level with
        # the other fingertips (within 5 mm), so it hovers over the keys like them.
        assert np.all(tips[:, 2] < 0.005), (side, tips)
        assert np.all(tips[:, 1] > 0.05), (side, tips)
        assert abs(tips[0, 2] - tips[1:, 2].mean()) < 0.005, (side, tips)
        np.testing.assert_allclose(tips.mean(axis=0), hand.home_fingertips_in_mount(side), atol=1e-3)
    np.testing.assert_allclose(hand.home_fingertips_in_mount("right"), hand.mount_to_home_fingertips_m)


def test_home_holds_against_gravity(hand: HandModelSpec) -> None:
    model, data = _build(hand, "right")
    _set_home(hand, data, "right")
    home = np.array([hand.home_joint_angles_rad.get(j, 0.0) for j in hand.joint_names])
    adr = [model.joint("rh_" + j).qposadr[0] for j in hand.joint_names]
    for _ in range(400):  # 2 s
        mujoco.mj_step(model, data)
    assert np.all(np.isfinite(data.qpos)) and np.all(np.isfinite(data.qvel))
    err_deg = np.degrees(np.abs(data.qpos[adr] - home))
    worst = hand.joint_names[int(err_deg.argmax())]
    assert err_deg.max() < 2.0, f"{worst} sags {err_deg.max():.2f} deg"
    assert np.abs(data.qvel).max() < 1e-2


@pytest.mark.parametrize("which", [0, 1, 2])
def test_step_response_within_one_control_period(hand: HandModelSpec, which: int) -> None:
    act = STEP_JOINTS[hand.name][which]
    model, data = _build(hand, "right")
    _set_home(hand, data, "right")
    for _ in range(100):  # settle at home first
        mujoco.mj_step(model, data)
    adr = [model.joint("rh_" + j).qposadr[0] for j in hand.actuator_joints[act]]
    start = data.qpos[adr].sum()
    lo, hi = model.actuator("rh_" + act).ctrlrange
    home = hand.home_actuator_targets[act]
    step = STEP_RAD if hi - home >= home - lo else -STEP_RAD  # toward the roomier end of the range
    data.actuator("rh_" + act).ctrl[0] = home + step
    for _ in range(10):  # one 50 ms control period
        mujoco.mj_step(model, data)
    assert (data.qpos[adr].sum() - start) / step >= 0.6
    for _ in range(10):  # a second period: settled near the target, no wild overshoot
        mujoco.mj_step(model, data)
    assert abs(data.qpos[adr].sum() - start - step) < 0.15 * STEP_RAD


def test_fingertips_touch_key_class_geoms(hand: HandModelSpec) -> None:
    """A key-class slab (contype 1, conaffinity 2) just under the home fingertips gets pressed.

    The slab starts 3 cm nearer the player than the mean home fingertip, where the scene's white
    keys start (HOME_FINGERTIP_Y_M); the wrist and palm heel hang in front of it, as in the scene.
    """
    spec = _spec()
    mount = spec.worldbody.add_body()
    mount.name = "rh_mount"
    mount.pos = MOUNT_POS
    hand.add_to(spec, mount, "right", "rh_")
    top_z = MOUNT_POS[2] + hand.mount_to_home_fingertips_m[2] + 0.003
    slab = spec.worldbody.add_geom()
    slab.name = "keys"
    slab.type = mujoco.mjtGeom.mjGEOM_BOX
    slab.size = (0.3, 0.15, 0.01)
    slab.pos = (MOUNT_POS[0], MOUNT_POS[1] + hand.mount_to_home_fingertips_m[1] - 0.03 + 0.15, top_z - 0.01)
    slab.contype, slab.conaffinity = 1, 2
    model = spec.compile()
    data = mujoco.MjData(model)
    _set_home(hand, data, "right")
    for _ in range(100):
        mujoco.mj_step(model, data)
    assert np.all(np.isfinite(data.qpos))
    slab_id = model.geom("keys").id
    touching = {int(c.geom2 if c.geom1 == slab_id else c.geom1) for c in data.contact[: data.ncon]}
    tip_bodies = {model.site_bodyid[model.site("rh_" + s).id] for s in hand.fingertip_site_names}
    assert touching and {int(model.geom_bodyid[g]) for g in touching} <= tip_bodies
