"""Imitation: distil the per-piece experts into one generalist (flow-matching transformer; BC-MLP baseline).

``model`` (FMT), ``bc`` (baseline), ``flow`` (the loss and the Euler sampler), ``normalization``,
``data`` (store -> windows), ``train`` (the loop), ``checkpoint``, ``policy`` (``act(obs)``),
``evaluate`` (F1 on a whole piece), ``cli``.
"""
