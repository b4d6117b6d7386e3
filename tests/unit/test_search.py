"""Prior search: the knob table maps onto PriorConfig, and a tiny search never loses to the default."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from sim_training.experts.search import (
    SEARCH_SPACE,
    SearchConfig,
    add_search_prior_args,
    config_from_knobs,
    decode,
    encode,
    knob_values,
    load_prior_config,
    run_search,
)
from sim_training.experts.train import prior_config_from_dict
from sim_training.fingering.prior import PriorConfig


def test_search_space_round_trips_into_prior_config() -> None:
    default = PriorConfig()
    fields = {f.name: f for f in dataclasses.fields(PriorConfig)}
    for k in SEARCH_SPACE:
        assert k.name in fields, k.name
        assert k.low < k.high
        assert k.low <= getattr(default, k.name) <= k.high, f"default {k.name} outside its bounds"
        assert isinstance(getattr(default, k.name), int if k.kind == "int" else float)
    assert knob_values(decode(encode(default))) == pytest.approx(knob_values(default), rel=1e-12, abs=1e-15)
    rng = np.random.default_rng(0)
    for _ in range(20):
        cfg = decode(rng.uniform(-0.5, 1.5, len(SEARCH_SPACE)))  # out-of-box coordinates are clipped
        for k in SEARCH_SPACE:
            v = getattr(cfg, k.name)
            assert k.low <= v <= k.high
            assert isinstance(v, int) if k.kind == "int" else isinstance(v, float)
        assert knob_values(decode(encode(cfg))) == pytest.approx(knob_values(cfg), rel=1e-12, abs=1e-15)
        assert prior_config_from_dict(json.loads(json.dumps(dataclasses.asdict(cfg)))) == cfg
    assert config_from_knobs({"plan_steps": 3.4, "press_depth_m": 1.0}).plan_steps == 3
    assert config_from_knobs({"press_depth_m": 1.0}).press_depth_m == SEARCH_SPACE[0].high
    with pytest.raises(KeyError, match="not a searched knob"):
        config_from_knobs({"min_carriage_gap_m": 0.2})
    assert set(knob_values(default)) == {k.name for k in SEARCH_SPACE}


def test_tiny_search_keeps_the_default_and_writes_outputs(tmp_path: Path) -> None:
    out = tmp_path / "search"
    r = run_search(SearchConfig(piece="single_note", population=3, max_generations=1, workers=1, out=str(out),
                                show_progress=False))
    assert r["plays"] <= 3 and r["generations"] == 1
    assert r["best_f1"] >= r["default_f1"]
    assert 0.0 <= r["default_f1"] <= 1.0
    for name in ("best_prior.json", "search.json", "search.png"):
        assert (out / name).is_file(), name
    best = load_prior_config(out / "best_prior.json")
    assert isinstance(best, PriorConfig)
    assert dataclasses.asdict(best) == r["best_config"]
    log = json.loads((out / "search.json").read_text())
    assert log["per_generation"][0]["plays"] == r["plays"]
    assert log["candidates"][0]["knobs"] == knob_values(PriorConfig())  # play 1 is the default, exactly
    assert log["candidates"][0]["f1"] == r["default_f1"]


def test_in_process_search_two_seeds_improves_or_ties(tmp_path: Path) -> None:
    r = run_search(SearchConfig(piece="single_note", population=2, seeds=2, max_generations=2, workers=0,
                                show_progress=False))
    assert r["generations"] == 2 and r["best_f1"] >= r["default_f1"]
    assert "best_prior" not in r  # out=None writes nothing


def test_cli_flags_build_the_search_config() -> None:
    from omnipianist.command import config_from_args

    parser = argparse.ArgumentParser()
    add_search_prior_args(parser)
    args = parser.parse_args(["arpeggios", "--minutes", "2", "--out", "x", "--seeds", "3", "--workers", "0"])
    cfg = config_from_args(SearchConfig, args)
    assert (cfg.piece, cfg.minutes, cfg.out, cfg.seeds, cfg.workers) == ("arpeggios", 2.0, "x", 3, 0)
