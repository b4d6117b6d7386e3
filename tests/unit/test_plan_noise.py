"""bench plan-noise: the planner and the prior under the same action noise, and its input errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnipianist.errors import ConfigError
from sim_training.experts.plan_noise import PlanNoiseConfig, run_plan_noise
from sim_training.experts.planner import PlannerConfig, plan_piece


def test_noise_free_row_is_the_plan_and_noise_changes_the_play(tmp_path: Path) -> None:
    d = tmp_path / "plans" / "c_major_scale"
    plan = plan_piece("c_major_scale", d, config=PlannerConfig(budget=4, window=10, horizon=10, iterations=1))
    res = run_plan_noise(PlanNoiseConfig(str(tmp_path / "plans"), every=1, sigmas="0,0.3", show_progress=False,
                                         out=str(tmp_path / "r.json")))
    row = res.rows[0]
    assert res.pieces == ["c_major_scale"] and (tmp_path / "r.json").is_file()
    assert row["plan_0"] == pytest.approx(plan["f1"], abs=1e-9)  # no noise: the plan replays exactly
    assert row["plan_0.3"] != row["plan_0"] and row["prior_0.3"] != row["prior_0"]
    assert res.measured == pytest.approx(row["plan_0.3"] - row["prior_0.3"])
    assert res.ok is (res.measured >= res.target)
    assert {"plan_mean_0", "plan_mean_0.3"} <= set(row) and "plan_mean_gain" in res.summary[0]


def test_bad_inputs_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no finished plans"):
        run_plan_noise(PlanNoiseConfig(str(tmp_path), show_progress=False))
    with pytest.raises(ConfigError, match="--sigmas"):
        run_plan_noise(PlanNoiseConfig(str(tmp_path), sigmas="0,x", show_progress=False))
    with pytest.raises(ConfigError, match="at least one > 0"):
        run_plan_noise(PlanNoiseConfig(str(tmp_path), sigmas="0", show_progress=False))
