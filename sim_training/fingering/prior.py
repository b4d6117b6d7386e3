"""The OT/IK prior: a controller that plays from the score with no training.

Every control step, from the observation alone (so the ROS node can run the same code):

1. **Hands.** The keys in view go to the hands, split monotonically (hands never cross) at the
   point that keeps each hand's keys within one hand's reach and moves the hands least
   (``hand_split``; a key held on stays with its hand).
2. **Forearms.** Each carriage target is the position closest to where it is now that puts the keys
   of the next ``plan_steps`` rows within the fingers' lateral span (the keys due soonest win when
   not all fit); then centred on the fingers the due keys get (``centre_gain``); then, within the
   due keys' reach, as close as it can get to the first later keys of the whole lookahead that are
   out of reach (``carriage_plan="next"``: the next note of a run, the far end of a leap). The
   forearm also reaches into the piano for black keys (``forward_gain``, the ``forearm_ty`` slide).
3. **Fingers (OT).** Keys due now, and keys due next, are assigned to that hand's fingertips by
   optimal transport (POT), the cost being the squared lateral distance from each finger's slot
   at the planned carriage position (squared cost on a line => no finger crossing); a key held on
   from the last step keeps its finger (temporal term).
4. **Targets.** Fingers on keys due now press (below the key top); fingers on keys due next hover
   just above them; free fingers lift. A finger descends only when laterally within its key's gate
   (``descend_gate_m``; ``black_descend_gate_m`` for the narrower black keys) and travels at lift
   height until then (``travel_lift``); a finger whose key stays up under it for ``retry_steps``
   lifts for a step and presses again.
5. **IK.** Damped least squares on the fingertip sites (:mod:`sim_training.fingering.ik`)
   gives the hand actuator commands; the action is those plus the carriage targets and the
   sustain pedal from the goal.

What each knob bought, measured on the 77 test clips (docs/prior.md).

Units: metres, radians, world frame (see ``sim_training.models.piano.geometry``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from sim_training.constants import HAND_SIDES, NUM_KEYS
from sim_training.env.observation import ObservationLayout
from sim_training.fingering.assignment import assign_fingers
from sim_training.fingering.ik import FingertipIK, IKConfig
from sim_training.models.embodiment import SIDE_PREFIX
from sim_training.models.piano import KEY_GEOMETRY
from sim_training.models.piano import geometry as pg
from sim_training.models.scene import Scene

_KEY_DOWN_FRACTION = 0.85
"""Key travel (fraction) below which a pressed key counts as not down for ``retry_steps`` (a key is
active within 0.5 degrees of its full dip: 0.87-0.90 of the travel)."""


HAND_SPLITS: tuple[str, ...] = ("span", "nearest")
CARRIAGE_PLANS: tuple[str, ...] = ("next", "reach")


@dataclass(frozen=True)
class PriorConfig:
    """The prior's knobs (defaults chosen on the built-in pieces; per-piece search tunes them)."""

    plan_steps: int = 4
    """Future control steps the carriage planner looks at (the rail settles in ~3)."""
    press_depth_m: float = 0.014
    """Fingertip target below the key top when pressing (the key travel there is ~8.5 mm)."""
    black_press_extra_m: float = 0.004
    black_forward_m: float = -0.01
    """Black keys are pressed this much further into the piano than their nominal target."""
    hover_m: float = 0.002
    """Height above the key top for a finger whose key is due next."""
    prepress_m: float = 0.0
    """A finger whose key is due next, once laterally over it (within ``descend_gate_m``), goes this
    far below the hover height: it starts the key down (not yet active, which needs the bottom of the
    travel), so that the press lands on the step it is due rather than one late."""
    lift_m: float = 0.022
    """Height above the white key tops for free fingers."""
    descend_gate_m: float = 0.015
    """A finger presses only when laterally this close to its key; else it hovers."""
    black_descend_gate_m: float | None = 0.006
    """The gate for black keys (about 1 cm wide: a finger that descends 1.5 cm off lands on the
    white key beside); None: ``descend_gate_m``."""
    reach_margin_m: float = 0.012
    """Lateral reach of the outer fingers beyond their home slot (abduction)."""
    min_carriage_gap_m: float = 0.16
    """Minimum distance between the two carriages (forearms must not collide)."""
    carriage_lead: float = 0.5
    """IK sees the carriage this fraction of the way from where it is to its target (it moves
    during the step; without this, fingers overshoot laterally while the forearm travels)."""
    lead_steps: int = 0
    """Press keys this many steps before they are due (0: on time)."""
    forward_gain: float = 1.0
    """Forearm reach into the piano (the ``forearm_ty`` slide): this fraction of how much further in
    the hand's keys due now and next lie, on average, than the white keys' targets (black keys lie
    ~5 cm further in, beyond what the fingers reach with the forearm at 0). 0: the slide stays at 0."""
    centre_gain: float = 1.0
    """Carriage centring: after the reach placement, the carriage moves this fraction of the mean
    lateral offset between the keys due now (else next) and their fingers' home slots, as far as the
    due keys stay in reach. The reach placement alone leaves a lone key at the edge of the outer
    finger's abduction (``reach_margin_m``), where a LEAP finger cannot follow and lands between
    keys. 0: reach placement only."""
    settle_gate_m: float | None = None
    """A finger presses only when its carriage is within this distance of the carriage target (a
    finger that lands while the forearm still slides is dragged off its key); None: no such gate."""
    retry_steps: int = 3
    """A finger that has pressed its key this many steps without the key going down (it sits on
    the key's edge or bounces on it) lifts for one step and presses again. 0: never."""
    travel_lift: bool = True
    """A finger not yet over its key (beyond ``descend_gate_m``) travels at the free fingers' lift
    height, not at hover height: moving low, it catches on the side of a black key and stays there
    (seen from the home posture, whose fingertips rest at the white-key tops)."""
    hand_split: str = "span"
    """How the keys in view are split between the hands (always monotone: hands never cross).
    ``"nearest"``: each key to the nearest hand centre. ``"span"``: the split point that keeps each
    hand's keys within one hand's reach, then moves the hands least (``"nearest"`` gives both
    hands' notes of a scale played two octaves apart near the middle to one hand)."""
    carriage_plan: str = "next"
    """How the carriage target is chosen. ``"reach"``: the closest position that keeps the keys of
    the next ``plan_steps`` rows in reach. ``"next"``: that, then as close to the first later keys
    of the whole lookahead that are out of reach as the keys due now allow (pre-positioning for the
    next note of a run or a leap)."""
    next_gain: float = 1.0
    """``"next"``: how far (fraction) the carriage moves towards the first later keys of the
    lookahead that are out of reach, as far as the keys due now stay in reach."""
    spare_thumb_in_reach: bool = True
    """Place the forearm so the keys fall under index..little when they fit there."""
    thumb_penalty_m2: float = 4e-4
    """Assignment cost added when the thumb takes a key (m^2; 4e-4 = 2 cm of extra reach)."""
    free_weight: float = 0.1
    """IK weight of free fingers relative to pressing ones."""
    ik: IKConfig = field(default_factory=IKConfig)

    def __post_init__(self) -> None:
        for name, allowed in (("hand_split", HAND_SPLITS), ("carriage_plan", CARRIAGE_PLANS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"PriorConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.retry_steps < 0:
            raise ValueError(f"PriorConfig.retry_steps must be >= 0, got {self.retry_steps}")



ABSENT_FIELD_VALUES: dict[str, object] = {
    "forward_gain": 0.0, "prepress_m": 0.0, "centre_gain": 0.0, "settle_gate_m": None, "retry_steps": 0,
    "travel_lift": False, "black_descend_gate_m": None, "hand_split": "nearest", "carriage_plan": "reach",
}
"""Fields added after the first PriorConfig, with the value that reproduces the prior from before
each was added: a stored config without the field (an exported policy, a plan, an expert) gets
this value, not today's default (:func:`sim_training.fingering.knobs.prior_config_from_dict`)."""

@dataclass
class PriorStats:
    steps: int = 0
    dropped_keys: int = 0
    """Due keys that no finger could take (more keys than fingers in a hand)."""
    gated_presses: int = 0
    """Presses held back because the finger was not yet over its key."""


@dataclass(frozen=True, eq=False)
class PriorState:
    """The prior's memory between steps: IK warm start per hand, carriage plan, keys held last step."""

    u: list[np.ndarray]
    carriage: np.ndarray
    held: dict[int, tuple[int, int]]
    stats: PriorStats
    stuck: dict[int, int] = field(default_factory=dict)


class OTIKPrior:
    """Plays from observations; ``act(obs)`` returns an action in the env's action space."""

    def __init__(self, scene: Scene, config: PriorConfig | None = None, lookahead: int | None = None) -> None:
        self.cfg = config or PriorConfig()
        self.scene = scene
        emb = scene.embodiment
        self.layout = ObservationLayout.for_embodiment(emb) if lookahead is None else \
            ObservationLayout.for_embodiment(emb, lookahead)
        self.ik = FingertipIK(scene, self.cfg.ik)
        m = scene.model
        self.n_f = len(emb.hand.fingertip_site_names)
        # Carriage geometry: world x of each carriage at slide 0, and each finger's home slot.
        self.carriage_home_x = np.array([m.body(SIDE_PREFIX[s] + "forearm").pos[0] for s in HAND_SIDES])
        u_home = [scene.home_ctrl[h.act_ids] for h in self.ik.hands]
        tips = self.ik.fingertips(scene.home_qpos[scene.hand_qpos_adr], u_home)
        self.slot_x = np.stack([tips[: self.n_f, 0] - self.carriage_home_x[0],
                                tips[self.n_f:, 0] - self.carriage_home_x[1]])
        self.home_tip_y = tips[:, 1].reshape(2, self.n_f)
        self.home_u = u_home
        self.tx_slot = np.array([emb.actuator_names(s).index(SIDE_PREFIX[s] + "forearm_tx") for s in HAND_SIDES])
        self.n_act_side = len(emb.actuator_names("left"))
        self.tx_range = np.stack([scene.action_ctrl_low, scene.action_ctrl_high])[:, [
            self.tx_slot[0], self.n_act_side + self.tx_slot[1]]]
        jn = emb.all_joint_names
        self.tx_q_index = np.array([jn.index(SIDE_PREFIX[s] + "forearm_tx") for s in HAND_SIDES])
        self.ty_q_index = np.array([jn.index(SIDE_PREFIX[s] + "forearm_ty") for s in HAND_SIDES])
        ty_slot = [emb.actuator_names(s).index(SIDE_PREFIX[s] + "forearm_ty") for s in HAND_SIDES]
        self.ty_range = np.stack([scene.action_ctrl_low, scene.action_ctrl_high])[:, [
            ty_slot[0], self.n_act_side + ty_slot[1]]]
        self.white_y = float(KEY_GEOMETRY.target_xyz_m[~KEY_GEOMETRY.is_black, 1].mean())
        self.key_x = KEY_GEOMETRY.target_xyz_m[:, 0]
        self.key_top = KEY_GEOMETRY.target_xyz_m[:, 2]
        self.hand_cfg: tuple[PriorConfig, PriorConfig] = (self.cfg, self.cfg)
        self._derive()
        self.stats = PriorStats()
        self._held: dict[int, tuple[int, int]] = {}
        self._stuck: dict[int, int] = {}
        self.reset()

    def _derive(self) -> None:
        """Arrays that depend on the knobs, per hand (recomputed by :meth:`configure`)."""
        self._key_y, self._press_z, self._finger_penalty, self._gate = [], [], [], []
        for cfg in self.hand_cfg:
            black_gate = cfg.descend_gate_m if cfg.black_descend_gate_m is None else cfg.black_descend_gate_m
            self._gate.append(np.where(KEY_GEOMETRY.is_black, black_gate, cfg.descend_gate_m))
            self._key_y.append(KEY_GEOMETRY.target_xyz_m[:, 1] + np.where(KEY_GEOMETRY.is_black, cfg.black_forward_m, 0))
            self._press_z.append(self.key_top - cfg.press_depth_m
                                 - np.where(KEY_GEOMETRY.is_black, cfg.black_press_extra_m, 0.0))
            penalty = np.zeros(self.n_f)
            penalty[0] = cfg.thumb_penalty_m2  # fingertip order: thumb first
            self._finger_penalty.append(penalty)
        self.key_y, self.press_z, self.finger_penalty = self._key_y[0], self._press_z[0], self._finger_penalty[0]

    def configure(self, config: PriorConfig, right: PriorConfig | None = None) -> None:
        """Switch to other knobs mid-episode, keeping the prior's memory (carriage plan, held keys, IK
        warm start): what a planner does at a window boundary. ~20 us (the IK is rebuilt only when
        ``config.ik`` changes).

        ``right``: other knobs for the right hand (per-hand planning); its ``plan_steps``,
        ``lead_steps``, ``min_carriage_gap_m`` and ``ik`` are not used (``config``'s are shared)."""
        if config.ik != self.cfg.ik:
            self.ik = FingertipIK(self.scene, config.ik)
        self.cfg = config
        self.hand_cfg = (config, right if right is not None else config)
        self._derive()

    def state(self) -> PriorState:
        """The prior's memory now (a copy): restore it with :meth:`restore` to act again from here."""
        return PriorState([u.copy() for u in self._u], self._carriage.copy(), dict(self._held),
                          dataclasses.replace(self.stats), dict(self._stuck))

    def restore(self, state: PriorState) -> None:
        """Back to a :meth:`state` snapshot (the knobs are not part of it: see :meth:`configure`)."""
        self._u = [u.copy() for u in state.u]
        self._carriage = state.carriage.copy()
        self._held = dict(state.held)
        self._stuck = dict(state.stuck)
        self.stats = dataclasses.replace(state.stats)

    def reset(self) -> None:
        self._u = [u.copy() for u in self.home_u]
        self._carriage = self.carriage_home_x.copy()
        self._held = {}  # key -> (hand, finger) pressed last step
        self._stuck = {}  # key -> steps pressed without going down
        self.stats = PriorStats()
        self.last_targets: np.ndarray | None = None
        self.last_fingering: dict[int, tuple[int, int]] = {}

    # ------------------------------------------------------------------------------------------
    def _split_hands(self, keys: np.ndarray, centres: np.ndarray) -> np.ndarray:
        """0/1 hand of each key, monotone in x (everything left of the right hand's left-most key
        is the left hand's), by ``hand_split``."""
        if keys.size == 0:
            return np.zeros(0, dtype=int)
        x = self.key_x[keys]
        order = np.argsort(x, kind="stable")
        hand = np.zeros(keys.size, dtype=int)
        if self.cfg.hand_split == "span":  # every split point at once: keys [0, i) left, [i, n) right
            xs = x[order]
            n = xs.size
            width = [self.slot_x[h].max() - self.slot_x[h].min() + 2 * self.cfg.reach_margin_m for h in (0, 1)]
            i = np.arange(n + 1)
            csum = np.concatenate([[0.0], np.cumsum(xs)])
            n_left, n_right = i, n - i
            left_w = np.where(n_left > 0, xs[np.maximum(i - 1, 0)] - xs[0], 0.0)
            right_w = np.where(n_right > 0, xs[-1] - xs[np.minimum(i, n - 1)], 0.0)
            left_mean = np.divide(csum, n_left, out=np.zeros(n + 1), where=n_left > 0)
            right_mean = np.divide(csum[-1] - csum, n_right, out=np.zeros(n + 1), where=n_right > 0)
            cost = (10.0 * (np.maximum(0.0, left_w - width[0]) + np.maximum(0.0, right_w - width[1]))
                    + np.where(n_left > 0, np.abs(left_mean - centres[0]), 0.0)
                    + np.where(n_right > 0, np.abs(right_mean - centres[1]), 0.0))
            best = int(np.argmin(cost))  # the first of equal costs, as the loop it replaces
            hand[order[best:]] = 1
            return hand
        hand = (np.abs(x - centres[1]) < np.abs(x - centres[0])).astype(int)
        # enforce monotone split: everything left of the first right-hand key is left hand
        h_sorted = hand[order]
        if h_sorted.any():
            first_right = int(np.argmax(h_sorted))
            h_sorted[:first_right] = 0
            h_sorted[first_right:] = 1
        hand[order] = h_sorted
        return hand

    def _carriage_target(self, h: int, rows_keys: list[np.ndarray],
                         later: list[np.ndarray] | None = None) -> float:
        """Closest carriage x to the current target that keeps the due keys in reach, then centred
        on the due keys' fingers (``centre_gain``).

        Reach is first the span of the fingers without the thumb (the thumb presses less firmly);
        only when the keys do not fit there does the thumb's slot extend it.
        """
        cfg = self.hand_cfg[h]
        c, slots = None, self.slot_x[h]
        if cfg.spare_thumb_in_reach:
            c = self._reach_clip(h, rows_keys, self.slot_x[h][1:])
            slots = self.slot_x[h][1:]
        if c is None:
            slots = self.slot_x[h]
            c = self._reach_clip(h, rows_keys, slots)
        if c is None:
            return float(self._carriage[h])
        if cfg.centre_gain > 0.0:
            due = next((keys for keys in rows_keys[:2] if keys.size), None)
            if due is not None:
                offset = self._centring_offset(h, due, c)
                c = self._reach_clip(h, rows_keys[:1] if rows_keys[0].size else rows_keys[1:2], slots,
                                     start=c + cfg.centre_gain * offset)
                assert c is not None  # the same keys fitted a moment ago
        if later is not None:  # "next": within the keys due now's reach, towards the next keys'
            due_rows = rows_keys[:1] if rows_keys[0].size else rows_keys[1:2]
            ahead, seen = None, None
            for keys in later:  # consecutive rows repeat while notes are held: test each once
                if keys.size == 0 or (seen is not None and np.array_equal(keys, seen)):
                    continue
                seen = keys
                if not self._fits(h, keys, c, slots):
                    ahead = keys
                    break
            if ahead is not None and due_rows[0].size:
                there = self._reach_clip(h, [ahead], self.slot_x[h], start=c)
                if there is not None:
                    moved = self._reach_clip(h, due_rows, slots, start=c + cfg.next_gain * (there - c))
                    c = c if moved is None else moved
        return float(c)

    def _fits(self, h: int, keys: np.ndarray, carriage: float, slots: np.ndarray) -> bool:
        m = self.hand_cfg[h].reach_margin_m
        x = self.key_x[keys]
        return bool(x.min() - carriage >= slots.min() - m and x.max() - carriage <= slots.max() + m)

    def _centring_offset(self, h: int, keys: np.ndarray, carriage: float) -> float:
        """Mean lateral offset of ``keys`` from the home slots of the fingers OT gives them with the
        carriage at ``carriage`` (held keys keep their finger)."""
        fingers = self._assign(h, keys, carriage, np.zeros(0), count=False)
        if not fingers:
            return 0.0
        return float(np.mean([self.key_x[k] - (carriage + self.slot_x[h][f]) for k, f in fingers.items()]))

    def _reach_clip(self, h: int, rows_keys: list[np.ndarray], slots: np.ndarray,
                    start: float | None = None) -> float | None:
        """The carriage position closest to ``start`` (default: the last target) that keeps the keys
        of the first rows in reach (as many rows as fit together); None if the first row does not
        fit."""
        c = self._carriage[h] if start is None else start
        smin = slots.min() - self.hand_cfg[h].reach_margin_m
        smax = slots.max() + self.hand_cfg[h].reach_margin_m
        lo, hi = -np.inf, np.inf
        for keys in rows_keys:
            if keys.size == 0:
                continue
            x = self.key_x[keys]
            new_lo, new_hi = max(lo, x.max() - smax), min(hi, x.min() - smin)
            if new_lo > new_hi:
                if np.isinf(lo):  # the first row alone does not fit
                    return None
                break
            lo, hi = new_lo, new_hi
        return float(np.clip(c, lo, hi))

    def _assign(self, h: int, keys: np.ndarray, carriage: float, tips_x: np.ndarray,
                count: bool = True) -> dict[int, int]:
        """OT of one hand's keys to its fingers; returns key -> finger index within the hand
        (``count``: add dropped keys to the stats)."""
        if keys.size == 0:
            return {}
        slots = (carriage + self.slot_x[h])[:, None]
        # lateral positions only; squared cost (exponent 2) on a line never crosses fingers
        pts = np.zeros((self.n_f, 3))
        pts[:, 0] = slots[:, 0]
        tgt = np.zeros((keys.size, 3))
        tgt[:, 0] = self.key_x[keys]
        prev = [(k, f) for k, (hh, f) in self._held.items() if hh == h and k in set(keys.tolist())]
        out: dict[int, int] = {}
        free = np.ones(self.n_f, dtype=bool)
        for k, f in prev:  # held keys keep their finger
            out[k] = f
            free[f] = False
        rest = np.array([k for k in keys if k not in out], dtype=int)
        if rest.size:
            idx = np.flatnonzero(free)
            a = assign_fingers(pts[idx], tgt[[int(np.flatnonzero(keys == k)[0]) for k in rest]], rest,
                               check=False, exponent=2.0, finger_penalty=self._finger_penalty[h][idx])
            if count:
                self.stats.dropped_keys += int(a.dropped_keys.size)
            for k, f in zip(a.key_idx, a.finger_idx, strict=True):
                out[int(k)] = int(idx[f])
        return out

    # ------------------------------------------------------------------------------------------
    def act(self, obs: np.ndarray) -> np.ndarray:
        """The prior's action for observation ``obs`` (layout of the embodiment)."""
        cfg = self.cfg
        lay = self.layout
        goal = obs[lay.field("goal").slice].reshape(lay.lookahead + 1, NUM_KEYS + 1)
        tips = obs[lay.field("fingertip_xyz").slice].reshape(-1, 3).astype(np.float64)
        hand_q = obs[lay.field("hand_joints").slice].astype(np.float64)
        key_state = obs[lay.field("key_state").slice]
        stuck: dict[int, int] = {}
        carriage_now = self.carriage_home_x + hand_q[self.tx_q_index]
        lead = cfg.lead_steps
        n_rows = lay.lookahead - lead + 1 if cfg.carriage_plan == "next" else min(cfg.plan_steps, lay.lookahead - lead) + 1
        rows = [np.flatnonzero(goal[min(r + lead, lay.lookahead), :NUM_KEYS] > 0.5) for r in range(n_rows)]

        centres = self._carriage + self.slot_x.mean(axis=1)
        window = np.unique(np.concatenate(rows)) if rows else np.zeros(0, dtype=int)
        hand_of = dict(zip(window.tolist(), self._split_hands(window, centres).tolist(), strict=True))
        for k, (h, _) in self._held.items():  # a key held on stays with its hand
            if k in hand_of:
                hand_of[k] = h
        per_hand_rows = [[np.array([k for k in r if hand_of[int(k)] == h], dtype=int) for r in rows]
                         for h in (0, 1)]
        if cfg.carriage_plan == "next":
            target = np.array([self._carriage_target(h, per_hand_rows[h][: cfg.plan_steps + 1], per_hand_rows[h])
                               for h in (0, 1)])
            per_hand_rows = [r[: cfg.plan_steps + 1] for r in per_hand_rows]
        else:
            target = np.array([self._carriage_target(h, per_hand_rows[h]) for h in (0, 1)])
        # keep the forearms apart (the hand with the earlier keys keeps its target)
        if target[1] - target[0] < cfg.min_carriage_gap_m:
            mid = 0.5 * (target[0] + target[1])
            target = np.array([mid - cfg.min_carriage_gap_m / 2, mid + cfg.min_carriage_gap_m / 2])
        target = np.clip(target, self.carriage_home_x + self.tx_range[0], self.carriage_home_x + self.tx_range[1])
        self._carriage = target

        ty_now = hand_q[self.ty_q_index]
        ty_target = np.zeros(2)
        for h in (0, 1):  # reach into the piano for the keys due now and next (black keys lie further in)
            gain = self.hand_cfg[h].forward_gain
            keys = np.concatenate(per_hand_rows[h][:2]) if per_hand_rows[h] else np.zeros(0, dtype=int)
            if gain > 0.0 and keys.size:
                dy = float(np.mean(self._key_y[h][keys])) - self.white_y
                ty_target[h] = float(np.clip(gain * dy, self.ty_range[0, h], self.ty_range[1, h]))

        targets, weights, fingering = [], [], {}
        for h in (0, 1):
            tips_h = tips[h * self.n_f:(h + 1) * self.n_f]
            now = self._assign(h, per_hand_rows[h][0], target[h], tips_h[:, 0])
            used = set(now.values())
            nxt_keys = per_hand_rows[h][1] if len(per_hand_rows[h]) > 1 else np.zeros(0, dtype=int)
            nxt_keys = np.array([k for k in nxt_keys if k not in now], dtype=int)
            saved_held = self._held
            self._held = {}
            nxt = {k: f for k, f in self._assign(h, nxt_keys, target[h], tips_h[:, 0]).items() if f not in used}
            self._held = saved_held
            hc = self.hand_cfg[h]
            key_y, press_z, gate = self._key_y[h], self._press_z[h], self._gate[h]
            t = np.zeros((self.n_f, 3))
            w = np.full(self.n_f, hc.free_weight)
            # free fingers: lifted over their slot at the carriage's current position
            t[:, 0] = carriage_now[h] + self.slot_x[h]
            t[:, 1] = self.home_tip_y[h] + ty_target[h]
            t[:, 2] = pg.WHITE_KEY_HEIGHT_M + hc.lift_m
            travel_z = pg.WHITE_KEY_HEIGHT_M + hc.lift_m
            settled = hc.settle_gate_m is None or abs(target[h] - carriage_now[h]) <= hc.settle_gate_m
            for k, f in nxt.items():
                z = self.key_top[k] + hc.hover_m
                over = abs(tips_h[f, 0] - self.key_x[k]) <= gate[k]
                if hc.prepress_m > 0.0 and over:
                    z -= hc.prepress_m
                if hc.travel_lift and not over:
                    z = max(z, travel_z)
                t[f] = (self.key_x[k], key_y[k], z)
                w[f] = 1.0
            for k, f in now.items():
                aligned = abs(tips_h[f, 0] - self.key_x[k]) <= gate[k] and settled
                if aligned and hc.retry_steps > 0 and self._held.get(k) == (h, f):
                    n_stuck = self._stuck.get(k, 0) + 1 if key_state[k] < _KEY_DOWN_FRACTION else 0
                    if n_stuck > hc.retry_steps:  # lift for this step, then press again
                        aligned, n_stuck = False, 0
                    stuck[k] = n_stuck
                z = press_z[k] if aligned else self.key_top[k] + hc.hover_m
                if hc.travel_lift and not aligned:
                    z = max(z, travel_z)
                if not aligned:
                    self.stats.gated_presses += 1
                t[f] = (self.key_x[k], key_y[k], z)
                w[f] = 1.0
                fingering[k] = (h, f)
            targets.append(t)
            weights.append(w)
        self._held = fingering
        self._stuck = stuck
        self.last_fingering = fingering
        self.last_targets = np.concatenate(targets)
        ik_q = hand_q.copy()
        lead_frac = np.array([self.hand_cfg[0].carriage_lead, self.hand_cfg[1].carriage_lead])
        ik_q[self.tx_q_index] += lead_frac * (target - carriage_now)
        reach = np.array([self.hand_cfg[0].forward_gain > 0.0, self.hand_cfg[1].forward_gain > 0.0])
        if reach.any():  # the IK sees the forearm part of the way to its reach target, like the carriage
            ik_q[self.ty_q_index[reach]] += (lead_frac * (ty_target - ty_now))[reach]
        self._u = self.ik.solve(ik_q, self._u, targets, weights)

        ctrl = np.zeros(self.scene.model.nu)
        action = np.zeros(self.scene.embodiment.action_dim)
        for h, side in enumerate(HAND_SIDES):
            ctrl[self.ik.hands[h].act_ids] = self._u[h]
            ctrl[self.scene.model.actuator(SIDE_PREFIX[side] + "forearm_tx").id] = target[h] - self.carriage_home_x[h]
            ty = self.scene.model.actuator(SIDE_PREFIX[side] + "forearm_ty").id
            ctrl[ty] = ty_target[h]
        action[:] = self.scene.ctrl_to_action(ctrl, 1.0 if goal[0, NUM_KEYS] > 0.5 else -1.0)
        self.stats.steps += 1
        return np.clip(action, -1.0, 1.0)
