"""The command convention (omnipianist.command): flags from config dataclasses, typed results, the table."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from omnipianist.command import (
    Command,
    Group,
    LazyCommand,
    build_parser,
    command_main,
    config_from_args,
    ok_or_1,
    to_json,
)

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Inner:
    depth: float = 0.5
    """how deep"""


@dataclass(frozen=True)
class Config:
    piece: str
    """the piece"""
    out: str = field(metadata={"help": "where"})
    mode: Literal["a", "b"] = "a"
    quick: bool = field(default=False, metadata={"action": "store_true"})
    pin: bool = field(default=True, metadata={"flags": ("--no-pin",), "action": "store_false"})
    check: bool = True
    tags: tuple[str, ...] = field(default=(), metadata={"action": "append", "metavar": "K=V"})
    levels: tuple[float, ...] = (0.0, 0.1)
    limit: int | None = None
    inner: Inner = field(default_factory=Inner, metadata={"prefix": "in_", "group": "inner (--in-*)"})
    hidden: Inner = field(default_factory=Inner)
    size: int = field(default=3, metadata={"flags": ("--size-file",), "type": Path,
                                           "convert": lambda p: len(Path(p).read_text())})
    use: bool = field(default=True, metadata={"also": {"flags": ("--never",), "action": "store_false"}})
    show_progress: bool = field(default=True, metadata={"cli": False})


@dataclass(frozen=True)
class Result:
    piece: str
    metrics: dict[str, float] = field(metadata={"flatten": True})
    return_: float = field(default=0.0, metadata={"json": "return"})
    video: str | None = field(default=None, metadata={"omit_none": True})
    scratch: list[int] = field(default_factory=list, metadata={"json": False})
    inner: Inner = field(default_factory=Inner)
    ok: bool = True


def _parse(argv: list[str]) -> Config:
    parser = argparse.ArgumentParser()
    CMD.add_arguments(parser)
    return config_from_args(Config, parser.parse_args(argv))


def _run(cfg: Config) -> Result:
    return Result(piece=cfg.piece, metrics={"f1": 0.5}, return_=1.5, scratch=[1], ok=cfg.mode == "a")


CMD = Command("demo-cmd", "a test command", Config, _run, lambda r: f"played {r.piece}", positionals=("piece",),
              exit_code=ok_or_1)


def test_flags_follow_the_config_fields(tmp_path: Path) -> None:
    cfg = _parse(["twinkle", "--out", "x"])
    assert cfg == Config(piece="twinkle", out="x")
    (tmp_path / "f").write_text("12345")
    cfg = _parse(["twinkle", "--out", "x", "--mode", "b", "--quick", "--no-pin", "--no-check", "--tags", "a=1",
                  "--tags", "b=2", "--levels", "0.2", "0.3", "--limit", "4", "--in-depth", "0.7",
                  "--size-file", str(tmp_path / "f"), "--never"])
    assert (cfg.mode, cfg.quick, cfg.pin, cfg.check, cfg.tags, cfg.levels, cfg.limit) == (
        "b", True, False, False, ("a=1", "b=2"), (0.2, 0.3), 4)
    assert cfg.inner == Inner(0.7) and cfg.hidden == Inner() and cfg.size == 5 and cfg.use is False
    with pytest.raises(SystemExit):
        _parse(["twinkle"])  # --out has no default: required
    with pytest.raises(SystemExit):
        _parse(["twinkle", "--out", "x", "--mode", "c"])  # Literal -> choices
    with pytest.raises(SystemExit):
        _parse(["twinkle", "--out", "x", "--show-progress"])  # cli=False: no flag
    with pytest.raises(SystemExit):
        _parse(["twinkle", "--out", "x", "--hidden-depth", "1"])  # nested without a prefix: no flags


def test_help_text_comes_from_the_field_docstrings() -> None:
    parser = argparse.ArgumentParser()
    CMD.add_arguments(parser)
    text = parser.format_help()
    assert "the piece" in text and "where" in text and "how deep" in text and "inner (--in-*)" in text


def test_results_as_json_follow_the_field_metadata() -> None:
    r = _run(Config(piece="p", out="o"))
    assert to_json(r) == {"piece": "p", "f1": 0.5, "return": 1.5, "inner": {"depth": 0.5}, "ok": True}
    assert to_json(Result("p", {}, video="v.mp4"))["video"] == "v.mp4"


def test_json_text_and_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert command_main(CMD, ["twinkle", "--out", "x", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"piece": "twinkle", "f1": 0.5, "return": 1.5,
                                                   "inner": {"depth": 0.5}, "ok": True}
    assert command_main(CMD, ["twinkle", "--out", "x", "--mode", "b"]) == 1  # ok False -> 1
    assert capsys.readouterr().out == "played twinkle\n"


def test_progress_follows_json() -> None:
    seen: list[bool] = []
    cmd = Command("p", "", Config, lambda c: seen.append(c.show_progress) or {"ok": True})
    cmd.invoke(argparse.Namespace(piece="x", out="o", json=True))
    cmd.invoke(argparse.Namespace(piece="x", out="o", json=False))
    assert seen == [False, True]


def test_only_the_named_command_gets_its_flags() -> None:
    lazy = Command("heavy", "needs a module that is not there", "no_such_module_anywhere:Config", "x:y")
    table = (CMD, Group("grp", "a group", (lazy, CMD)))
    parser = build_parser(argparse.ArgumentParser(prog="t"), table, ["demo-cmd", "p", "--out", "o"])
    args = parser.parse_args(["demo-cmd", "p", "--out", "o"])
    assert args.piece == "p" and args.func == CMD.invoke
    args = build_parser(argparse.ArgumentParser(), table, ["grp", "demo-cmd"]).parse_args(["grp", "demo-cmd", "p",
                                                                                           "--out", "o"])
    assert args.piece == "p"
    with pytest.raises(ModuleNotFoundError):
        build_parser(argparse.ArgumentParser(), table, ["grp", "heavy"])


def test_the_table_keeps_the_flags_scripts_use() -> None:
    from omnipianist.cli import build_parser as cli_parser

    def parse(argv: list[str]) -> argparse.Namespace:
        return cli_parser(argv).parse_args(argv)

    a = parse(["prior", "twinkle", "--embodiment", "leap", "--forearm-z", "--stretch", "2", "--press-depth-m", "0.01",
               "--plot", "p.png", "--json"])
    assert (a.piece, a.embodiment, a.forearm_z, a.stretch, a.press_depth_m, a.plot, a.json) == (
        "twinkle", "leap", True, 2.0, 0.01, "p.png", True)
    a = parse(["fingering", "twinkle", "--out", "f.csv", "--show", "5"])
    assert (a.out, a.show, a.action_set) == ("f.csv", 5, "reduced")
    a = parse(["bench", "expert", "a.mid", "b", "--budget", "6"])
    assert a.extra == ["a.mid", "b"] and a.budget == 6
    a = parse(["bench", "generalist", "--policy", "fmt=x.onnx", "--policy", "bc=y.onnx", "--out", "r.json"])
    assert a.policies == ["fmt=x.onnx", "bc=y.onnx"] and a.out == "r.json" and a.unseen_pieces == 20
    a = parse(["demo", "--no-video", "--no-ros", "--ros-timeout-s", "5"])
    assert (a.no_video, a.no_ros, a.ros_timeout_s, a.piece, a.out) == (True, True, 5.0, "twinkle", "runs")
    a = parse(["corpus", "list", "--split", "test"])
    assert a.split == "test" and a.manifest is None


@dataclass(frozen=True)
class Where:
    sim: bool = field(default=False, metadata={"action": "store_true", "exclusive": "where"})
    hil: bool = field(default=False, metadata={"action": "store_true", "exclusive": "where"})
    hardware: str | None = field(default=None, metadata={"exclusive": "where"})
    quiet: bool = field(default=False, metadata={"action": "store_true"})
    hook: Any = field(default=None, metadata={"cli": False})


WHERE = Command("where", "exclusive flags", Where, lambda c: {"sim": c.sim, "hook": c.hook},
                lambda r: "" if r["hook"] == "quiet" else None, json_help="the JSON (with care)")


def test_exclusive_flags_empty_text_and_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    WHERE.add_arguments(parser)
    assert parser.parse_args(["--hardware", "x", "--quiet"]).hardware == "x"
    with pytest.raises(SystemExit):
        parser.parse_args(["--sim", "--hil"])
    assert "the JSON (with care)" in parser.format_help()
    capsys.readouterr()
    assert WHERE.invoke(parser.parse_args(["--sim"])) == 0  # a formatter's None: the JSON, indented
    assert json.loads(capsys.readouterr().out) == {"sim": True, "hook": None}
    WHERE.invoke(parser.parse_args([]), overrides={"hook": "quiet"})  # "": nothing printed
    assert capsys.readouterr().out == ""
    WHERE.invoke(parser.parse_args(["--json"]), overrides={"hook": "quiet"})  # --json: always the object
    assert json.loads(capsys.readouterr().out) == {"sim": False, "hook": "quiet"}


def test_a_lazy_command_imports_its_module_when_named() -> None:
    lazy = LazyCommand("demo-cmd", "a test command", "tests.unit.test_cli_command:CMD")
    args = build_parser(argparse.ArgumentParser(), (lazy,), ["demo-cmd", "p", "--out", "o"]).parse_args(
        ["demo-cmd", "p", "--out", "o"])
    assert args.piece == "p" and lazy.command() is CMD
    missing = LazyCommand("x", "nowhere", "no_such_module_anywhere:X")
    build_parser(argparse.ArgumentParser(), (missing, CMD), ["demo-cmd"])  # listed, not imported


def test_the_lazy_entries_of_the_table_match_their_commands() -> None:
    from omnipianist.cli import COMMANDS

    def lazies(entries: tuple[Any, ...]) -> list[LazyCommand]:
        out = [e for e in entries if isinstance(e, LazyCommand)]
        return out + [x for e in entries if isinstance(e, Group) for x in lazies(e.commands)]

    found = lazies(COMMANDS)
    assert {e.name for e in found} == {"play", "bringup", "loop", "calibrate", "plan-noise", "knob-critic"}
    for e in found:
        cmd = e.command()
        assert (cmd.name, cmd.help) == (e.name, e.help)


def test_listing_the_commands_imports_no_torch() -> None:
    code = ("import sys\nfrom omnipianist.cli import main\n"
            "for argv in (['--help'], ['prior', '--help'], ['bench', '--help'], ['evaluate', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "assert 'rclpy' not in sys.modules and 'omnipianist_ros' not in sys.modules, 'ROS imported'\n"
            "assert 'serial' not in sys.modules, 'the hardware layer imported'\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]


def test_info_json_keys() -> None:
    from sim_training.env.commands import InfoConfig, run_info

    out: dict[str, Any] = to_json(run_info(InfoConfig()))
    assert set(out) == {"version", "embodiments"}
    for v in out["embodiments"].values():
        assert set(v) == {"model", "action_dim", "observation_dim", "fingertips", "hand_joints", "observation_fields"}
