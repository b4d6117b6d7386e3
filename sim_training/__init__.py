"""Simulation, fingering, experts, datasets and imitation learning for omnipianist."""
