"""Shared fixtures: compiled scenes are cached per embodiment (compiling costs ~0.1 s each)."""

from __future__ import annotations

import functools
import itertools

import pytest

from sim_training.models.scene import Scene, build_scene


@functools.cache
def cached_scene(name: str) -> Scene:
    return build_scene(name)


@pytest.fixture(params=["shadow", "leap"])
def scene(request: pytest.FixtureRequest) -> Scene:
    return cached_scene(request.param)


@pytest.fixture
def shadow_scene() -> Scene:
    return cached_scene("shadow")


@pytest.fixture
def one_torch_thread():  # noqa: ANN201 - generator fixture
    """torch on one thread, as the runtimes run it (and no thread fight with other work on a shared machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


_DOMAINS = itertools.cycle(range(1, 100))


@pytest.fixture(autouse=True)
def own_ros_domain(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each DDS test on its own ROS_DOMAIN_ID (1..99; the modules that pin their own, 177/178, and
    isolated.sh's default, 101..200, stay clear of it): a graph that a previous test left behind, or one
    still shutting down, cannot be discovered by the next one and feed it keys or commands."""
    if request.node.get_closest_marker("dds") is not None:
        monkeypatch.setenv("ROS_DOMAIN_ID", str(next(_DOMAINS)))
