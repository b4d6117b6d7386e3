"""ROS 2 nodes of omnipianist: thin adapters over the plain-Python modules (no logic lives here)."""

import os as _os

# Several nodes share one process (and its cores) with a multi-threaded executor: a multi-threaded
# BLAS inside each callback oversubscribes the cores (measured: the prior's IK went from ~1 ms to
# ~300 ms per step in real-time mode). One BLAS thread per caller; set before numpy loads.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    _os.environ.setdefault(_var, "1")
