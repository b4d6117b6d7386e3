"""Piano geometry and key physics: a key pressed by a position-controlled fingertip becomes active."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from sim_training.constants import KEY_ACTIVE_TOLERANCE_RAD, NUM_KEYS, PHYSICS_DT_S
from sim_training.models.piano import KEY_GEOMETRY, add_piano
from sim_training.models.piano import builder as pb
from sim_training.models.piano import geometry as g


def test_key_layout_is_a_real_keyboard() -> None:
    assert KEY_GEOMETRY.is_black.sum() == 36 and (~KEY_GEOMETRY.is_black).sum() == 52
    x = KEY_GEOMETRY.center_xyz_m[:, 0]
    assert np.all(np.diff(x) > 0), "keys must be ordered low to high along +x"
    # A0 white, A#0 black, C4 (MIDI 60 = key 39) white, C#4 black
    assert not KEY_GEOMETRY.is_black[0] and KEY_GEOMETRY.is_black[1]
    assert not KEY_GEOMETRY.is_black[39] and KEY_GEOMETRY.is_black[40]
    assert KEY_GEOMETRY.keyboard_length_m == pytest.approx(52 * 0.0225 + 51 * 0.001)
    # black keys sit exactly between their white neighbours, and stand 12.5 mm above them
    for k in np.flatnonzero(KEY_GEOMETRY.is_black):
        assert x[k] == pytest.approx(0.5 * (x[k - 1] + x[k + 1]))
    top = KEY_GEOMETRY.target_xyz_m[:, 2]
    assert np.allclose(top[KEY_GEOMETRY.is_black] - top[~KEY_GEOMETRY.is_black][0], g.BLACK_ABOVE_WHITE_M)
    # fingering target: 35 % of the key length in front of the key centre
    white = 39
    assert KEY_GEOMETRY.target_xyz_m[white, 1] == pytest.approx(0.075 - 0.35 * 0.15)
    assert np.degrees(KEY_GEOMETRY.max_angle_rad[white]) == pytest.approx(3.814, abs=1e-3)


def _piano_with_fingertip(key: int) -> tuple[mujoco.MjModel, mujoco.MjData]:
    """The piano plus a 1 cm fingertip on an xyz gantry of position servos over ``key``."""
    spec = mujoco.MjSpec()
    spec.compiler.degree = False
    spec.option.timestep = PHYSICS_DT_S
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    add_piano(spec)
    target = KEY_GEOMETRY.target_xyz_m[key]
    tip = spec.worldbody.add_body(name="tip", pos=[target[0], target[1], target[2] + 0.03])
    for axis, name in (([1, 0, 0], "x"), ([0, 1, 0], "y"), ([0, 0, 1], "z")):
        tip.add_joint(name=name, type=mujoco.mjtJoint.mjJNT_SLIDE, axis=axis, armature=0.01)
        act = spec.add_actuator(name=name, target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.set_to_position(kp=500.0, kv=20.0)
    tip.add_geom(type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[0.008, 0, 0], mass=0.05, contype=2, conaffinity=1)
    model = spec.compile()
    return model, mujoco.MjData(model)


@pytest.mark.parametrize("key", [39, 40, 0, 87])  # C4 (white), C#4 (black), A0, C8
def test_fingertip_presses_key_active_then_release_returns(key: int) -> None:
    model, data = _piano_with_fingertip(key)
    qadr = model.jnt_qposadr[model.joint(pb.key_joint_name(key)).id]
    max_angle = KEY_GEOMETRY.max_angle_rad[key]
    mujoco.mj_step(model, data, nstep=100)
    assert data.qpos[qadr] < max_angle - KEY_ACTIVE_TOLERANCE_RAD, "key must rest up before the press"

    data.ctrl[2] = -0.04  # 1 cm past the key bottom: ~5 N, a firm human press
    mujoco.mj_step(model, data, nstep=100)
    assert data.qpos[qadr] >= max_angle - KEY_ACTIVE_TOLERANCE_RAD, "pressed key is active"
    assert data.qpos[qadr] <= max_angle + np.radians(0.5), "key stops at the bottom of its travel"
    others = np.delete(data.qpos[model.jnt_qposadr[[model.joint(pb.key_joint_name(k)).id
                                                   for k in range(NUM_KEYS)]]], key)
    assert np.all(others < np.radians(0.5)), "neighbours stay up"

    data.ctrl[2] = 0.0  # lift
    mujoco.mj_step(model, data, nstep=200)
    assert data.qpos[qadr] < np.radians(0.3), "released key springs back up"


def test_piano_builder_refuses_degrees() -> None:
    spec = mujoco.MjSpec()
    spec.compiler.degree = True
    with pytest.raises(ValueError, match="degree"):
        add_piano(spec)
