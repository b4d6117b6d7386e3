"""Shipped files are found in a checkout, in a colcon install (ament share dir) and in a pip install."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnipianist import resources


def _fake_prefix(root: Path) -> Path:
    (root / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (root / "share" / "ament_index" / "resource_index" / "packages" / "omnipianist").write_text("")
    cfg = root / "share" / "omnipianist" / "config"
    cfg.mkdir(parents=True)
    (cfg / "sim.yaml").write_text("nodes: []\n")
    return root


def test_ament_index_first_then_checkout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    prefix = _fake_prefix(tmp_path / "install")
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(prefix))
    assert resources.resource_path("config", "sim.yaml") == prefix / "share" / "omnipianist" / "config" / "sim.yaml"
    # what the install lacks comes from the checkout
    assert resources.resource_path("config", "hil.yaml") == resources.REPO_ROOT / "ros2_ws" / "config" / "hil.yaml"
    monkeypatch.delenv("AMENT_PREFIX_PATH")
    assert resources.resource_path("config", "sim.yaml") == resources.REPO_ROOT / "ros2_ws" / "config" / "sim.yaml"


def test_checkout_before_the_pip_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)
    monkeypatch.setattr(resources.sys, "prefix", str(_fake_prefix(tmp_path / "venv")))
    assert resources.resource_path("config", "sim.yaml") == resources.REPO_ROOT / "ros2_ws" / "config" / "sim.yaml"


def test_colcon_install_share_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    prefix = _fake_prefix(tmp_path / "install" / "omnipianist")
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(prefix))
    monkeypatch.setattr(resources, "REPO_ROOT", tmp_path / "no_checkout")
    from omnipianist_ros.config import config_path

    assert config_path("sim.yaml") == prefix / "share" / "omnipianist" / "config" / "sim.yaml"
    with pytest.raises(FileNotFoundError, match="not found in"):
        resources.resource_path("config", "nope.yaml")
    with pytest.raises(ValueError, match="unknown resource kind"):
        resources.candidates("secrets")


def test_pip_prefix_share_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)
    monkeypatch.setattr(resources, "REPO_ROOT", tmp_path / "no_checkout")
    monkeypatch.setattr(resources.sys, "prefix", str(tmp_path / "venv"))
    target = tmp_path / "venv" / "share" / "omnipianist" / "models" / "generalist" / "x.onnx"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"")
    assert resources.resource_path("models", "generalist/x.onnx") == target
