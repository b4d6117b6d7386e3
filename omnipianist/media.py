"""Videos and images users look at (MP4 through imageio-ffmpeg, which ships its own ffmpeg)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sim_training.constants import CONTROL_DT_S


def write_video(frames: Sequence[np.ndarray], path: str | Path, fps: int = round(1.0 / CONTROL_DT_S)) -> str:
    """Write RGB frames (H, W, 3) uint8 to an MP4 (H.264) and return the path."""
    import imageio.v2 as imageio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    w = imageio.get_writer(path, fps=fps, codec="libx264", quality=7, macro_block_size=8)
    with w:  # (``with get_writer(...) as w`` would type ``w`` as the reader/writer base class)
        for f in frames:
            w.append_data(np.asarray(f))
    return str(path)
