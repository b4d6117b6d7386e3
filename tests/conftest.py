"""Shared fixtures: compiled scenes are cached per embodiment (compiling costs ~0.1 s each)."""

from __future__ import annotations

import functools

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
