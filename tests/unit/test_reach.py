"""Reach of every fingertip from the home posture, in the scene, with the policy's actuators.

The fingertip IK (`sim_training.fingering.ik`) moves one fingertip at a time straight down or up
from its home position (weight 1; the hand's other fingertips held at home with weight 0.01, the
other hand ignored), using only the actuators of the embodiment's action set; the joints outside
it (Shadow's reduced set: THJ5, THJ1, LFJ5) stay at their home values and the carriage is fixed.

Scene heights (m): white key top 0.0225, a pressed white key needs the fingertip at ~0.014, home
hover ~0.0425 (HOVER_ABOVE_WHITE_TOP_M over the white tops).
"""

from __future__ import annotations

import numpy as np
import pytest

from sim_training.fingering.ik import FingertipIK, IKConfig
from sim_training.models.piano import geometry as pg
from sim_training.models.scene import build_scene

PRESS_TARGET_Z_M = 0.010
"""IK target for a press: 1.2 cm below the top of a white key (its full dip is 1 cm)."""
PRESS_MAX_Z_M = 0.012
SLOT_TOLERANCE_M = 0.01
"""How far (horizontally) a fingertip may wander from its home x/y while pressing or lifting."""
LIFT_TARGET_M = 0.02
LIFT_MIN_M = 0.015
CASES = (("shadow", "reduced"), ("shadow", "full"), ("leap", "reduced"))


class _Reach:
    def __init__(self, name: str, action_set: str) -> None:
        self.scene = build_scene(name, action_set=action_set)
        self.ik = FingertipIK(self.scene, IKConfig(iterations=30))
        self.q = self.scene.home_qpos[self.scene.hand_qpos_adr]
        self.u0 = [self.scene.home_ctrl[h.act_ids] for h in self.ik.hands]
        self.n = len(self.ik.hands[0].sites)
        self.home = self.ik.fingertips(self.q, self.u0).reshape(2, self.n, 3)

    def move(self, side: int, finger: int, z: float) -> np.ndarray:
        """Fingertip position after asking `finger` of hand `side` (0 left, 1 right) to go to height z."""
        targets = [self.home[0].copy(), self.home[1].copy()]
        targets[side][finger, 2] = z
        weights = [np.zeros(self.n), np.zeros(self.n)]
        weights[side][:] = 0.01
        weights[side][finger] = 1.0
        u = self.ik.solve(self.q, self.u0, targets, weights)
        return self.ik.fingertips(self.q, u).reshape(2, self.n, 3)[side, finger]


@pytest.fixture(scope="module", params=CASES, ids=["-".join(c) for c in CASES])
def reach(request: pytest.FixtureRequest) -> _Reach:
    return _Reach(*request.param)


def test_home_hovers_over_the_white_keys(reach: _Reach) -> None:
    home = reach.home
    white_top = pg.WHITE_KEY_HEIGHT_M
    assert np.all(home[..., 2] > white_top + 0.015) and np.all(home[..., 2] < white_top + 0.025), home
    for side in range(2):
        thumb, fingers = home[side, 0], home[side, 1:]
        assert abs(thumb[2] - fingers[:, 2].mean()) < 0.005, "thumb tip level with the others"
        assert -0.04 < thumb[1] - home[side, 1, 1] < 0.0, "thumb a little nearer the player"


@pytest.mark.parametrize("side", [0, 1], ids=["left", "right"])
def test_every_fingertip_presses_a_white_key_at_its_home_slot(reach: _Reach, side: int) -> None:
    for f in range(reach.n):
        p = reach.move(side, f, PRESS_TARGET_Z_M)
        slip = np.linalg.norm(p[:2] - reach.home[side, f, :2])
        assert p[2] <= PRESS_MAX_Z_M and slip <= SLOT_TOLERANCE_M, (f, p, slip)


def test_every_fingertip_lifts_above_home(reach: _Reach) -> None:
    side = 1
    for f in range(reach.n):
        home = reach.home[side, f]
        p = reach.move(side, f, home[2] + LIFT_TARGET_M)
        slip = np.linalg.norm(p[:2] - home[:2])
        assert p[2] >= home[2] + LIFT_MIN_M and slip <= SLOT_TOLERANCE_M, (f, p, slip)
