"""Dataset store: zarr round trip and schema, windows, collection (prior labeller), resume, relabel,
crash safety (SIGKILL a writer mid-episode), the card and the CLI."""

from __future__ import annotations

import inspect
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from sim_training.dataset.card import card_markdown, dataset_card, write_card
from sim_training.dataset.collect import CollectConfig, CollectTask, collect, collect_episode
from sim_training.dataset.labellers import (
    EmbodimentRef,
    LabellerSpec,
    NoisyPolicy,
    NoisyPriorStudent,
    describe_expert,
    find_experts,
    resolve_piece,
)
from sim_training.dataset.schema import EPISODE_META_COLUMNS, SCHEMA_VERSION, EpisodeMeta, StoreSchema
from sim_training.dataset.store import DatasetReader, DatasetWriter, committed_counts, window_indices
from sim_training.env.observation import ObservationLayout
from sim_training.fingering.prior import OTIKPrior
from sim_training.models.embodiment import get_embodiment
from tests.conftest import cached_scene

EMB = get_embodiment("shadow")
SCHEMA = StoreSchema.for_embodiment(EMB)
PRIOR = LabellerSpec("prior", EmbodimentRef())
FAST = CollectConfig(noise_std=(0.0,), show_progress=False)


def fake_episode(i: int, length: int, piece: str = "p", source: str = "prior") -> dict:
    """Deterministic synthetic episode ``i`` (what the kill test's writer writes, too)."""
    rng = np.random.default_rng(i)
    obs = rng.random((length, SCHEMA.obs_dim), dtype=np.float32)
    goal = SCHEMA.field_slice("goal")
    obs[:, goal] = rng.random((length, goal.stop - goal.start)) > 0.9
    a = SCHEMA.action_dim
    return {"obs": obs, "action": rng.uniform(-1, 1, (length, a)).astype(np.float32),
            "executed_action": rng.uniform(-1, 1, (length, a)).astype(np.float32),
            "prior_action": rng.uniform(-1, 1, (length, a)).astype(np.float32),
            "reward": rng.random(length, dtype=np.float32),
            "meta": EpisodeMeta(piece_id=piece, embodiment="shadow", seed=i, f1=float(rng.random()),
                                note_step_f1=0.5, do_nothing_f1=0.1, label_source=source, round=i % 3)}


def small_store(path: Path, lengths: tuple[int, ...] = (5, 1, 9, 4)) -> list[dict]:
    eps = [fake_episode(i, n, piece=f"piece{i % 2}", source=("prior", "expert")[i % 2]) for i, n in enumerate(lengths)]
    with DatasetWriter(path, SCHEMA) as w:
        for e in eps:
            w.append_episode(**e)
    return eps


def assert_same(reader: DatasetReader, i: int, want: dict) -> None:
    ep = reader.episode(i)
    for name in ("obs", "action", "executed_action", "prior_action", "reward"):
        np.testing.assert_array_equal(getattr(ep, name), want[name], err_msg=f"episode {i} column {name}")
    assert same_meta(ep.meta, want["meta"])


def same_meta(a: EpisodeMeta, b: EpisodeMeta) -> bool:
    """Field-wise equality with NaN == NaN."""
    return all(x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y))
               for x, y in zip(a.to_dict().values(), b.to_dict().values(), strict=True))


# ----------------------------------------------------------------------------------- round trip
def test_round_trip_schema_attrs_and_boundaries(tmp_path: Path) -> None:
    eps = small_store(tmp_path / "s")
    r = DatasetReader(tmp_path / "s")
    assert (r.n_episodes, r.n_steps) == (4, 19)
    np.testing.assert_array_equal(r.episode_ends, [5, 6, 15, 19])
    assert [r.episode_slice(i) for i in range(4)] == [slice(0, 5), slice(5, 6), slice(6, 15), slice(15, 19)]
    for i, e in enumerate(eps):
        assert_same(r, i, e)
    # derived columns are exact copies of obs slices
    ep = r.episode(2)
    np.testing.assert_array_equal(ep.key_state, eps[2]["obs"][:, SCHEMA.field_slice("key_state")].astype(np.float16))
    g = SCHEMA.field_slice("goal").start
    np.testing.assert_array_equal(ep.goal_now, eps[2]["obs"][:, g:g + 89] > 0.5)
    # on-disk schema
    root = zarr.open_group(str(tmp_path / "s"), mode="r")
    dtypes = {"obs": ("float32", 1150), "action": ("float32", 39), "executed_action": ("float32", 39),
              "prior_action": ("float32", 39), "reward": ("float32", None), "key_state": ("float16", 88),
              "goal_now": ("uint8", 89)}
    for name, (dt, width) in dtypes.items():
        a = root[f"data/{name}"]
        assert str(a.dtype) == dt and a.shape[0] == 19, name
        assert (a.shape[1:] == (width,)) if width else a.ndim == 1
    assert str(root["meta/episode_ends"].dtype) == "int64"
    for name, _ in EPISODE_META_COLUMNS:
        assert root[f"meta/{name}"].shape == (4,), name
    attrs = dict(root.attrs)
    assert attrs["schema_version"] == SCHEMA_VERSION and attrs["embodiment"] == "shadow"
    assert attrs["observation_layout"] == ObservationLayout.for_embodiment(EMB).to_dict()
    assert attrs["action_names"] == list(EMB.action_names) and attrs["control_dt"] == 0.05
    # piece selection
    assert r.pieces() == ["piece0", "piece1"]
    train, rest = r.split_by_piece(["piece0"])
    np.testing.assert_array_equal(train, [0, 2])
    np.testing.assert_array_equal(rest, [1, 3])
    np.testing.assert_array_equal(r.select(label_source="expert"), [1, 3])
    np.testing.assert_array_equal(r.select(round=[0, 2]), [0, 2, 3])
    # a value longer than every stored one is not truncated to match ('expert-relabel' is not 'expert')
    assert r.select(label_source="expert-relabel").size == 0
    assert r.select(label_source="expert-relabelled-twice").size == 0
    assert same_meta(r.episode_meta(-1), eps[3]["meta"])


def test_writer_rejects_bad_episodes_without_writing(tmp_path: Path) -> None:
    small_store(tmp_path / "s")
    e = fake_episode(9, 3)
    with DatasetWriter(tmp_path / "s") as w:
        with pytest.raises(ValueError, match="'action' has shape"):
            w.append_episode(**{**e, "action": e["action"][:, :5]})
        with pytest.raises(ValueError, match="non-finite"):
            w.append_episode(**{**e, "reward": np.full(3, np.nan)})
        with pytest.raises(ValueError, match="embodiment"):
            w.append_episode(**{**e, "meta": EpisodeMeta(piece_id="x", embodiment="leap", seed=0, f1=0.0)})
        with pytest.raises(ValueError, match="label_source"):
            EpisodeMeta(piece_id="x", embodiment="shadow", seed=0, f1=0.0, label_source="oracle")
    r = DatasetReader(tmp_path / "s")
    assert (r.n_episodes, r.n_steps) == (4, 19)
    assert zarr.open_group(str(tmp_path / "s"), mode="r")["data/obs"].shape[0] == 19
    with pytest.raises(ValueError, match="embodiment"):
        DatasetWriter(tmp_path / "s", StoreSchema.for_embodiment(get_embodiment("leap")))


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    with DatasetWriter(tmp_path / "s", SCHEMA):
        with pytest.raises(RuntimeError, match="another DatasetWriter"):
            DatasetWriter(tmp_path / "s")
    DatasetWriter(tmp_path / "s").close()  # released


def test_uncommitted_tail_is_ignored_then_truncated(tmp_path: Path) -> None:
    eps = small_store(tmp_path / "s", (3, 4))
    root = zarr.open_group(str(tmp_path / "s"), mode="a")
    junk = fake_episode(7, 6)
    for name in ("obs", "action"):  # a writer died after two data columns
        root[f"data/{name}"].append(junk[name])
    root["meta/piece_id"].append(np.array(["junk"]))
    root["meta/episode_ends"].resize((3,))  # ... and one whose ends append grew the shape only (reads -1)
    r = DatasetReader(tmp_path / "s")
    assert (r.n_episodes, r.n_steps) == (2, 7) and r.column("obs").shape[0] == 7
    with DatasetWriter(tmp_path / "s") as w:
        assert (w.n_episodes, w.n_steps) == (2, 7)
        assert root["data/obs"].shape[0] == 7 and root["meta/episode_ends"].shape == (2,)
        w.append_episode(**fake_episode(8, 2))
    r = DatasetReader(tmp_path / "s")
    assert r.n_episodes == 3
    for i, e in enumerate([*eps, fake_episode(8, 2)]):
        assert_same(r, i, e)


def test_committed_counts_rules() -> None:
    assert committed_counts(np.array([3, 5, -1]), [9, 9], [3, 3]) == (2, 5)
    assert committed_counts(np.array([3, 5, 8]), [7, 9], [3, 3]) == (2, 5)  # a column too short
    assert committed_counts(np.array([3, 5, 8]), [9], [3, 2]) == (2, 5)  # a meta column too short
    assert committed_counts(np.array([3, 3]), [9], [2]) == (1, 3)  # not increasing
    assert committed_counts(np.array([], dtype=np.int64), [0], [0]) == (0, 0)


def test_fsspec_url_round_trip() -> None:
    url = f"memory://omnipianist-test-{os.getpid()}/store"
    e = fake_episode(0, 4)
    with DatasetWriter(url, SCHEMA) as w:
        w.append_episode(**e)
    r = DatasetReader(url)
    assert r.n_episodes == 1
    assert_same(r, 0, e)


# ----------------------------------------------------------------------------------- windows
def test_windows_pad_at_borders_and_never_cross_episodes(tmp_path: Path) -> None:
    small_store(tmp_path / "s")
    r = DatasetReader(tmp_path / "s")
    rng = np.random.default_rng(0)
    obs, act = r.sample_windows(rng, 64, obs_horizon=2, pred_horizon=4)
    assert obs.shape == (64, 2, 1150) and act.shape == (64, 4, 39)
    assert obs.dtype == np.float32 and act.dtype == np.float32
    oi, ai = r.window_indices(np.random.default_rng(1), 5000, 3, 5)
    ep_of = np.searchsorted(r.episode_ends, np.concatenate([oi, ai], axis=1), side="right")
    assert (ep_of == ep_of[:, :1]).all(), "a window crosses an episode border"
    t = oi[:, -1]
    assert (ai[:, 0] == t).all()
    s, e = r.episode_starts[ep_of[:, 0]], r.episode_ends[ep_of[:, 0]]
    np.testing.assert_array_equal(oi, np.clip(t[:, None] + np.arange(-2, 1), s[:, None], None))
    np.testing.assert_array_equal(ai, np.clip(t[:, None] + np.arange(5), None, e[:, None] - 1))
    assert set(t) == set(range(r.n_steps))  # every step can be a window's current step
    # the 1-step episode (rows 5..6): all obs and actions repeat its single row
    one = ep_of[:, 0] == 1
    assert one.any() and (oi[one] == 5).all() and (ai[one] == 5).all()
    # restricted to some episodes
    oi, ai = r.window_indices(rng, 500, 2, 4, episodes=r.episodes_for_pieces(["piece1"]))
    assert set(np.searchsorted(r.episode_ends, oi.ravel(), side="right")) <= {1, 3}
    # the pure function agrees with explicit starts/ends
    oi2, _ = window_indices(np.random.default_rng(3), np.array([0, 10]), np.array([10, 12]), 100, 2, 4)
    assert oi2.min() >= 0 and oi2.max() <= 11


# ----------------------------------------------------------------------------------- collection
def test_collect_prior_on_builtin_pieces_and_resume(tmp_path: Path) -> None:
    store = tmp_path / "prior"
    tasks = [CollectTask(resolve_piece(p), PRIOR) for p in ("single_note", "c_major_chords")]
    cfg = CollectConfig(noise_std=(0.0, 0.05), show_progress=False)
    res = collect(store, tasks, cfg, command="test")
    assert res.episodes_added == 4 and res.episodes_by_label_source == {"prior": 4}
    r = DatasetReader(store)
    assert sorted(r.pieces()) == ["c_major_chords", "single_note"]
    assert set(r.meta["label_source"]) == {"prior"} and set(r.meta["mode"]) == {"rollout"}
    assert ((r.meta["f1"] >= 0) & (r.meta["f1"] <= 1)).all()
    clean = r.select(piece_id="c_major_chords", noise_std=0.0)[0]
    # the prior plays the chords well without noise (0.89 measured); labeller_f1 is its own F1 there
    assert r.meta["f1"][clean] > 0.7 and r.meta["labeller_f1"][clean] == r.meta["f1"][clean]
    assert r.meta["do_nothing_f1"][clean] < 0.2
    ep = r.episode(int(clean))
    assert ep.n_steps == 157  # the whole piece: floor(7.8 s / 50 ms) + 1 steps
    np.testing.assert_array_equal(ep.action, ep.executed_action)  # no noise: the label was executed
    np.testing.assert_array_equal(ep.action, ep.prior_action)  # the prior labels: same column
    noisy = r.episode(int(r.select(piece_id="c_major_chords", noise_std=0.05)[0]))
    assert not np.array_equal(noisy.action, noisy.executed_action)
    np.testing.assert_array_equal(noisy.action, noisy.prior_action)
    assert np.abs(noisy.executed_action - noisy.action).max() < 0.5
    # the first observation is the env's reset observation
    from sim_training.env.piano_env import EnvConfig, PianoEnv

    env = PianoEnv("c_major_chords", EMB, EnvConfig(clip_steps=None, random_start=False), scene=cached_scene("shadow"))
    np.testing.assert_array_equal(ep.obs[0], env.reset(seed=0)[0])
    assert DatasetReader(store).attrs["collect_runs"][0]["command"] == "test"

    # resume: nothing new; a second episode per noisy level adds exactly those
    res = collect(store, tasks, cfg)
    assert res.episodes_added == 0 and res.episodes_skipped == 4
    res = collect(store, tasks, CollectConfig(noise_std=(0.0, 0.05), episodes_per_piece=2, show_progress=False))
    assert res.episodes_added == 2 and res.episodes_skipped == 4
    r = DatasetReader(store)
    assert sorted(r.meta["seed"][r.select(noise_std=0.05)].tolist()) == [0, 0, 1, 1]


def test_collect_episode_with_a_non_prior_labeller_records_the_prior_separately() -> None:
    scene = cached_scene("shadow")
    labeller = NoisyPolicy(OTIKPrior(scene), 0.01, seed=3)  # stands in for an expert
    ep = collect_episode("single_note", labeller, EMB, "rollout", 0.0, 0, scene=scene, labeller_name="fake")
    assert ep.meta.label_source == "expert" and ep.meta.labeller == "fake"
    assert not np.array_equal(ep.action, ep.prior_action)
    assert np.abs(ep.action - ep.prior_action).max() < 0.1


def test_relabel_rounds_with_a_noisy_prior_student(tmp_path: Path) -> None:
    store = tmp_path / "relabel"
    tasks = [CollectTask(resolve_piece("c_major_chords"), PRIOR)]
    student = NoisyPriorStudent(EmbodimentRef(), noise_std=0.05)
    cfg = CollectConfig(mode="relabel", rounds=2, tolerance=1.0, max_steps=40, show_progress=False)
    calls: list[int] = []

    def factory(rnd: int, url: str) -> NoisyPriorStudent:
        calls.append(rnd)
        assert DatasetReader(url).n_episodes >= 1  # the trainer would read the store here
        return student

    res = collect(store, tasks, cfg, student_factory=factory)
    assert calls == [1] and res.pieces_converged == 1  # tolerance 1: done after round 1
    r = DatasetReader(store)
    assert r.n_episodes == 2
    rel = r.episode(int(r.select(mode="relabel")[0]))
    assert rel.meta.round == 1 and rel.meta.label_source == "prior" and rel.n_steps == 40
    assert rel.meta.labeller_f1 == r.meta["f1"][r.select(mode="rollout")[0]]
    assert not np.array_equal(rel.action, rel.executed_action)  # the student acted, the prior labelled
    np.testing.assert_array_equal(rel.action, rel.prior_action)
    # strict tolerance: the noisy student never converges, round 2 runs; resuming repeats nothing
    cfg2 = CollectConfig(mode="relabel", rounds=2, tolerance=-1.0, max_steps=40, show_progress=False)
    res = collect(store, tasks, cfg2, student_factory=factory)
    assert calls == [1, 2] and res.episodes_added == 1 and res.pieces_converged == 0
    assert [x["round"] for x in res.rounds or []] == [1, 2]


def test_find_experts_reads_expert_json(tmp_path: Path) -> None:
    d = tmp_path / "experts" / "single_note"
    d.mkdir(parents=True)
    (d / "expert.json").write_text(json.dumps({"piece": "single_note", "embodiment": "shadow", "action_set": "reduced",
                                               "forearm_z": False, "kind": "prior", "expert_f1": 0.9, "prior_f1": 0.8}))
    (tmp_path / "experts" / "not_an_expert").mkdir()
    [info] = find_experts(tmp_path / "experts")
    assert info.piece.piece_id == "single_note" and info.f1 == 0.9 and info.embodiment == EmbodimentRef()
    assert info.spec().label_source("relabel") == "expert-relabel" and info.spec().name == "single_note"
    assert describe_expert(d) == info
    with pytest.raises(FileNotFoundError):
        find_experts(tmp_path / "experts" / "not_an_expert")


# ----------------------------------------------------------------------------------- crash safety
WRITER_SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    from sim_training.dataset.schema import EpisodeMeta, StoreSchema
    from sim_training.dataset.store import DatasetWriter
    from sim_training.models.embodiment import get_embodiment

    SCHEMA = StoreSchema.for_embodiment(get_embodiment("shadow"))
""") + inspect.getsource(fake_episode) + textwrap.dedent("""

    class SlowWriter(DatasetWriter):
        def _append_column(self, arr, values):
            super()._append_column(arr, values)
            time.sleep({pause})

    w = SlowWriter(sys.argv[1], SCHEMA)
    i = w.n_episodes
    while True:
        print("begin", i, flush=True)
        w.append_episode(**fake_episode(i, 20 + (i * 37) % 150))
        print("committed", i, flush=True)
        i += 1
""")


def _kill_writer_mid_episode(store: Path, script: Path, pause: float, rng: np.random.Generator) -> int:
    """Start the writer, let it commit at least one episode, SIGKILL it during a later one; returns
    the index of the episode in flight at the kill."""
    proc = subprocess.Popen([sys.executable, str(script), str(store)], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).parents[2])
    try:
        first = None
        assert proc.stdout is not None
        while True:
            line = proc.stdout.readline()
            assert line, f"writer exited early with {proc.wait()}"
            kind, idx = line.split()
            first = int(idx) if first is None else first
            if kind == "begin" and int(idx) > first:
                break
        # ~25 column appends per episode, each followed by `pause` s: kill somewhere inside
        time.sleep(float(rng.uniform(0.3, 18) * pause) if pause else float(rng.uniform(0.0, 0.05)))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        return int(idx)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_kill_during_write_leaves_a_readable_store(tmp_path: Path) -> None:
    store = tmp_path / "killed"
    script = tmp_path / "writer.py"
    script.write_text(WRITER_SCRIPT.replace("{pause}", "0.02"))
    fast = tmp_path / "fast_writer.py"
    fast.write_text(WRITER_SCRIPT.replace("{pause}", "0.0"))
    rng = np.random.default_rng(0)
    partial_seen = 0
    for cycle in range(4):
        in_flight = _kill_writer_mid_episode(store, script if cycle < 3 else fast, 0.02 if cycle < 3 else 0.0, rng)
        r = DatasetReader(store)  # opens
        if cycle < 3:  # slow writer: killed inside episode in_flight (or just after its commit)
            assert r.n_episodes in (in_flight, in_flight + 1), (cycle, in_flight, r.n_episodes)
        else:  # full speed: it may have gone on a few episodes
            assert r.n_episodes >= in_flight
        for i in range(r.n_episodes):
            e = fake_episode(i, 20 + (i * 37) % 150)
            assert_same(r, i, e)
        raw = zarr.open_group(str(store), mode="r")
        partial_seen += int(raw["data/obs"].shape[0] > r.n_steps or raw["meta/piece_id"].shape[0] > r.n_episodes)
    assert partial_seen >= 1, "no kill landed mid-episode: the test did not test anything"
    with DatasetWriter(store) as w:  # a new writer truncates the partial tail and appends after it
        n = w.n_episodes
        assert not list(store.rglob("*.partial"))
        w.append_episode(**fake_episode(n, 20 + (n * 37) % 150))
    r = DatasetReader(store)
    assert r.n_episodes == n + 1
    for i in range(n + 1):
        assert_same(r, i, fake_episode(i, 20 + (i * 37) % 150))


# ----------------------------------------------------------------------------------- card + CLI
def test_card_from_a_small_store(tmp_path: Path) -> None:
    small_store(tmp_path / "s")
    card = dataset_card(tmp_path / "s")
    assert (card["pieces"], card["episodes"], card["steps"]) == (2, 4, 19)
    assert math.isclose(card["hours_of_motion"], 19 * 0.05 / 3600)
    assert sum(card["f1_histogram"]["counts"]) == 4 and len(card["f1_histogram"]["edges"]) == 11
    assert card["by_label_source"]["prior"]["episodes"] == 2 and card["by_label_source"]["expert"]["steps"] == 5
    assert card["pieces_by_labeller"] == {"expert_only": 1, "prior_only": 1, "both": 0}
    assert card["embodiment"] == "shadow" and card["size_bytes"] > 0
    md = card_markdown(card)
    assert "| 2 | 4 | 19 |" in md and "expert-relabel" in md
    out = write_card(tmp_path / "s")
    assert Path(out["card_path"]).read_text().startswith("# Dataset card")
    assert Path(out["png_path"]).stat().st_size > 1000
    json.dumps(card)


def test_cli_collect_then_card(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sim_training.dataset.cli import main

    store = tmp_path / "cli"
    assert main(["collect", "prior", "--out", str(store), "--pieces", "single_note", "--noise-std", "0", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["episodes_added"] == 1 and Path(res["card"]).is_file()
    assert list(res) == ["store", "mode", "pieces", "episodes_added", "steps_added", "episodes_skipped", "n_episodes",
                         "n_steps", "wall_s", "steps_per_s", "episodes", "episodes_by_label_source", "f1_mean",
                         "do_nothing_f1_mean", "notes", "card"]
    assert main(["dataset-card", str(store), "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["episodes"] == 1 and card["generated_by"][0].startswith("omnipianist collect")
    assert list(card) == [*dataset_card(store), "card_path", "png_path"]  # DatasetCardResult keeps the card's order
    assert main(["dataset-card", str(store)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"# Dataset card: `{card['store']}`") and f"(written to {card['card_path']})" in text
    with pytest.raises(SystemExit, match="no expert directories"):
        main(["collect", str(tmp_path), "--out", str(store)])


def test_cli_experts_and_prior_fill_one_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sim_training.dataset.cli import main

    d = tmp_path / "experts" / "single_note"  # a pipeline expert whose searched prior won
    d.mkdir(parents=True)
    (d / "best_prior.json").write_text(json.dumps({"press_depth_m": 0.016}))
    (d / "expert.json").write_text(json.dumps({"piece": "single_note", "embodiment": "shadow", "kind": "prior",
                                               "best_prior": "best_prior.json", "expert_f1": 0.8}))
    store = tmp_path / "mixed"
    argv = ["collect", str(tmp_path / "experts"), "prior", "--out", str(store), "--pieces", "single_note",
            "c_major_chords", "--noise-std", "0", "--max-steps", "30", "--json", "--no-card"]
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["episodes_by_label_source"] == {"expert": 1, "prior": 1}
    assert res["notes"] == ["prior skips 1 pieces that experts label"]
    r = DatasetReader(store)
    assert dict(zip(r.meta["piece_id"], r.meta["label_source"], strict=True)) == {
        "single_note": "expert", "c_major_chords": "prior"}
    assert r.episode_meta(int(r.select(label_source="expert")[0])).labeller == "single_note"
    assert dataset_card(r)["pieces_by_labeller"] == {"expert_only": 1, "prior_only": 1, "both": 0}
    with pytest.raises(ValueError, match="not a built-in"):
        resolve_piece("no_such_piece")


@pytest.mark.slow
def test_ray_fan_out_matches_in_process(tmp_path: Path) -> None:
    tasks = [CollectTask(resolve_piece(p), PRIOR) for p in ("single_note", "c_major_chords")]
    base = dict(noise_std=(0.0, 0.05), max_steps=60, show_progress=False)
    collect(tmp_path / "seq", tasks, CollectConfig(**base))
    res = collect(tmp_path / "ray", tasks, CollectConfig(**base, ray=True, workers=2))
    assert res.episodes_added == 4
    a, b = DatasetReader(tmp_path / "seq"), DatasetReader(tmp_path / "ray")
    key = lambda r, i: (r.meta["piece_id"][i], r.meta["noise_std"][i])  # noqa: E731
    order_b = {key(b, i): i for i in range(b.n_episodes)}
    for i in range(a.n_episodes):
        ea, eb = a.episode(i), b.episode(order_b[key(a, i)])
        np.testing.assert_array_equal(ea.action, eb.action)
        np.testing.assert_array_equal(ea.obs, eb.obs)


@pytest.mark.slow
def test_shipped_expert_labels_its_piece(tmp_path: Path) -> None:
    expert = Path(__file__).parents[2] / "models" / "experts" / "twinkle_shadow"  # the searched-prior Twinkle expert
    info = describe_expert(expert)
    res = collect(tmp_path / "e", [CollectTask(info.piece, info.spec())],
                  CollectConfig(noise_std=(0.0,), max_steps=50, show_progress=False))
    assert res.episodes_by_label_source == {"expert": 1}
    ep = DatasetReader(tmp_path / "e").episode(0)
    assert not np.array_equal(ep.action, ep.prior_action)


def test_resolve_piece_finds_a_corpus_clip_recorded_in_another_checkout(tmp_path: Path) -> None:
    """Experts record their piece's path; in another clone that path is gone but the clip id is not."""
    from sim_training.music.corpus import load_manifest

    clip = load_manifest().pieces("train")[0]
    ref = resolve_piece(f"/elsewhere/omnipianist/sim_training/music/corpus_data/{clip.id}.mid")
    assert ref.piece_id == clip.id and Path(ref.source).is_file()
    with pytest.raises(ValueError, match="no such MIDI file"):
        resolve_piece(str(tmp_path / "not-a-clip.mid"))
