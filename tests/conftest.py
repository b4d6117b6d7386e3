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
