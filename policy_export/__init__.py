"""Exported policies: one ONNX graph + a versioned metadata contract, its runtime, parity and latency checks.

* :mod:`policy_export.export` — ``export_policy(src, out)``: a generalist checkpoint (flow-matching
  transformer, K Euler steps inside the graph) or a residual expert (DroQ actor on the OT/IK prior)
  -> one ``.onnx`` file with its contract in ``metadata_props``.
* :mod:`policy_export.metadata` — the contract: schema ``omnipianist.policy/1``, reading, validation,
  and the check against an embodiment and the observation builder.
* :mod:`policy_export.runtime` — :class:`~policy_export.runtime.Policy`: the ORT runtime the simulator
  evaluation and the ROS policy node share.
* :mod:`policy_export.verify` — ORT vs torch parity (max |delta action|, F1 of a piece).
* :mod:`policy_export.bench` — latency per control step (ORT vs torch eager), FLOPs, fraction of a GEMM ceiling.
* :mod:`policy_export.cli` — ``omnipianist export`` and ``omnipianist bench inference``.
"""

from __future__ import annotations

__version__ = "1.0.0"
"""Version of the export tool (written into every exported file's metadata)."""
