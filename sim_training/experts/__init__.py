"""Per-piece RL experts: DroQ residual on the OT/IK prior (:mod:`.droq`, :mod:`.train`, :mod:`.policy`)."""

from sim_training.experts.droq import DroQAgent, DroQConfig
from sim_training.experts.policy import ExpertPolicy
from sim_training.experts.train import ExpertTrainConfig, train_expert

__all__ = ["DroQAgent", "DroQConfig", "ExpertPolicy", "ExpertTrainConfig", "train_expert"]
