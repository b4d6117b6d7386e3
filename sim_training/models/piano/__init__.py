"""The 88-key piano: geometry (Kawai upright regulation figures) and its MjSpec builder."""

from sim_training.models.piano.builder import add_piano
from sim_training.models.piano.geometry import KEY_GEOMETRY, KeyGeometry

__all__ = ["KEY_GEOMETRY", "KeyGeometry", "add_piano"]
