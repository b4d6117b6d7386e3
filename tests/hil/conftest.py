"""HIL tests time servo replies in milliseconds (10 ms reply timeouts, 0.1 s watchdogs), with the
emulator's threads in the test's own process: a full garbage collection over everything the earlier
tests left in memory can stall them longer than that. Each test starts with the heap frozen (what a
real-time Python process does after start-up), so a collection only walks what the test itself made."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def frozen_heap() -> Iterator[None]:
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()
