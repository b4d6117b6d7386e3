"""Dataset of expert / prior demonstrations for the generalist (RP1M-style rollouts, RP1M++ relabelling).

* :mod:`~sim_training.dataset.schema` — store layout, :class:`EpisodeMeta`, :class:`StoreSchema`.
* :mod:`~sim_training.dataset.store` — :class:`DatasetWriter` (append-only, crash-safe) and
  :class:`DatasetReader` (episodes, piece selection, training windows).
* :mod:`~sim_training.dataset.labellers` — the OT/IK prior and trained experts as labellers.
* :mod:`~sim_training.dataset.collect` — :func:`collect_episode`, :func:`collect`, :func:`relabel_rounds`.
* :mod:`~sim_training.dataset.card` — the dataset card.
* :mod:`~sim_training.dataset.cli` — ``omnipianist collect`` / ``omnipianist dataset-card``.
"""

from sim_training.dataset.schema import (
    LABEL_SOURCES,
    MODES,
    SCHEMA_VERSION,
    Episode,
    EpisodeMeta,
    StoreSchema,
)
from sim_training.dataset.store import DatasetReader, DatasetWriter, window_indices

__all__ = [
    "LABEL_SOURCES", "MODES", "SCHEMA_VERSION", "DatasetReader", "DatasetWriter", "Episode", "EpisodeMeta",
    "StoreSchema", "window_indices",
]
