"""The flow's initial noise, drawn with numpy so that the torch and the ONNX runtimes draw the same
numbers and neither deployment path needs torch.

``fixed``: one N(0, I) draw from ``seed``, reused every call (the policy is then a deterministic
function of its observations). ``random``: a generator seeded at ``reset``, a fresh draw per chunk.
"""

from __future__ import annotations

import numpy as np


def fixed_noise(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """The ``fixed`` noise draw (float32) for ``seed``."""
    return np.random.default_rng([seed, 0x0F10]).standard_normal(shape, dtype=np.float32)


def noise_generator(seed: int) -> np.random.Generator:
    """The generator of ``random`` noise, as it is after a reset with ``seed``."""
    return np.random.default_rng([seed, 0x0F11])
