"""The generalist benchmark's table and target checks (the plays themselves are `omnipianist bench generalist`)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from omnipianist.command import to_json
from sim_training.imitation.benchmark import (
    GeneralistBenchConfig,
    GeneralistBenchResult,
    Target,
    _parse,
    format_table,
    merge_results,
    summarize,
)


def rows(policy: str, split: str, f1s: dict[str, float]) -> list[dict]:
    return [{"policy": policy, "split": split, "piece": p, "f1": f, "onset_f1": f / 2, "precision": f, "recall": f,
             "steps": 10, "do_nothing_f1": 0.0} for p, f in f1s.items()]


INFO = {"fmt": {"path": "a", "model": "fmt", "residual_on_prior": False, "train_pieces": 100, "step": 5},
        "bc": {"path": "b", "model": "bc", "residual_on_prior": False, "train_pieces": 100, "step": 9},
        "fmt_res": {"path": "c", "model": "fmt", "residual_on_prior": True, "train_pieces": 100, "step": 3},
        "fmt_small": {"path": "d", "model": "fmt", "residual_on_prior": False, "train_pieces": 10, "step": 5}}


def test_summary_means_targets_and_like_for_like_comparison() -> None:
    r = (rows("fmt", "unseen", {"u1": 0.5, "u2": 0.7}) + rows("fmt", "seen", {"s1": 0.9, "s2": 0.7})
         + rows("bc", "unseen", {"u1": 0.6, "u2": 0.7}) + rows("bc", "seen", {"s1": 0.9})
         + rows("fmt_res", "unseen", {"u1": 0.9, "u2": 0.9}) + rows("fmt_small", "unseen", {"u1": 0.95, "u2": 0.95})
         + rows("prior", "unseen", {"u1": 0.4, "u2": 0.4}) + rows("prior", "seen", {"s1": 0.3, "s2": 0.5}))
    seen = {"fmt": ["s1", "s2"], "bc": ["s1"], "fmt_res": [], "fmt_small": []}
    out = summarize(r, INFO, seen, ["u1", "u2"], "fmt")
    t = out.table
    assert t["fmt"]["unseen_f1"] == pytest.approx(0.6) and t["fmt"]["seen_f1"] == pytest.approx(0.8)
    assert t["fmt"]["prior_seen_f1_same_pieces"] == pytest.approx(0.4) and t["prior"]["unseen_f1"] == pytest.approx(0.4)
    # unseen: prior 0.4 + 0.08 -> 0.48 (met); above the prior on 2 of 2 pieces; Shadow floor 0.80 (missed)
    assert out.targets["unseen_f1_over_prior"] == Target(measured=0.6, target=0.48, ok=True)
    assert out.targets["unseen_above_prior_fraction"] == Target(measured=1.0, target=0.85, ok=True)
    assert to_json(out.targets["unseen_f1"]) == {"measured": 0.6, "target": 0.8, "ok": False}
    assert out.targets["seen_f1"].ok is False and out.ok is False
    assert "unseen_f1" not in summarize(r, INFO, seen, ["u1", "u2"], "fmt", embodiment="leap").targets
    # FMT vs BC: same formulation and training-set size only (fmt_res and fmt_small do not count)
    vs = out.targets["fmt_beats_bc_unseen"]
    assert vs.measured == 0.6 and vs.target == pytest.approx(0.65) and vs.ok is False
    assert "fmt_beats_bc_unseen_residual" not in out.targets
    # the JSON (--json, --out): the keys of the dict this result replaced, and it reads back
    j = to_json(out)
    assert list(j) == ["benchmark", "embodiment", "target_policy", "unseen_pieces", "seen_pieces", "policies", "table",
                       "rows", "targets", "ok", "wall_s"]
    assert GeneralistBenchResult.from_json(json.loads(json.dumps(j))) == out
    assert "| fmt_res | fmt | residual | 100 |" in format_table(out)
    with pytest.raises(ValueError, match="target_policy"):
        summarize(r, INFO, seen, ["u1", "u2"], "nope")


def test_merge_keeps_each_row_once_and_refuses_other_pieces() -> None:
    a = summarize(rows("fmt", "unseen", {"u1": 0.5}) + rows("prior", "unseen", {"u1": 0.4}),
                  {"fmt": INFO["fmt"]}, {"fmt": []}, ["u1"], "fmt")
    b = summarize(rows("bc", "unseen", {"u1": 0.7}) + rows("prior", "unseen", {"u1": 0.4}),
                  {"bc": INFO["bc"]}, {"bc": []}, ["u1"], "bc")
    m = merge_results([a, b], "fmt")
    assert set(m.table) == {"fmt", "bc", "prior"} and len(m.rows) == 3
    assert m.targets["fmt_beats_bc_unseen"].ok is False
    with pytest.raises(ValueError, match="different unseen pieces"):
        merge_results([a, dataclasses.replace(b, unseen_pieces=["u2"])], "fmt")


def test_policy_arguments_are_checked(tmp_path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"x")
    assert _parse((f"a={tmp_path / 'm.onnx'}",)) == [("a", str(tmp_path / "m.onnx"))]
    for bad, match in (("noequals", "NAME=PATH"), (f"a={tmp_path / 'missing.onnx'}", "does not exist")):
        with pytest.raises((ValueError, FileNotFoundError), match=match):
            _parse((bad,))
    with pytest.raises(ValueError, match="unique"):
        _parse((f"a={tmp_path / 'm.onnx'}", f"a={tmp_path / 'm.onnx'}"))
    assert GeneralistBenchConfig().unseen_pieces == 20


def test_fraction_above_prior_counts_pieces_and_planner_rows_stay_apart() -> None:
    r = (rows("fmt", "unseen", {"u1": 0.5, "u2": 0.3, "u3": 0.9, "u4": 0.41})
         + rows("prior", "unseen", {"u1": 0.4, "u2": 0.4, "u3": 0.4, "u4": 0.4})
         + rows("planner", "unseen", {"u1": 0.8}) + rows("planner", "seen", {"s1": 0.9})
         + rows("fmt", "seen", {"s1": 0.86}) + rows("prior", "seen", {"s1": 0.7}))
    out = summarize(r, {"fmt": INFO["fmt"]}, {"fmt": ["s1"]}, ["u1", "u2", "u3", "u4"], "fmt")
    t = out.table
    assert t["fmt"]["unseen_above_prior_fraction"] == pytest.approx(0.75)
    assert out.targets["unseen_above_prior_fraction"].ok is False
    # the planner planned one unseen piece: its row compares with the prior on that piece only
    assert t["planner"]["unseen_f1"] == pytest.approx(0.8) and t["planner"]["prior_unseen_f1"] == pytest.approx(0.4)
    assert t["planner"]["unseen_pieces_played"] == 1 and t["planner"]["seen_f1"] == pytest.approx(0.9)
    assert t["planner"]["prior_seen_f1_same_pieces"] == pytest.approx(0.7)
    assert "| planner | planner | planner |" in format_table(out)
