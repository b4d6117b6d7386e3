"""Crash-safe ``torch.save`` (the learning layer's; the core file I/O needs no torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from omnipianist.fileio import atomic_write


def save_torch(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file, then rename over ``path``."""
    atomic_write(path, lambda p: torch.save(obj, p))
