"""omnipianist: sim-to-real piano playing with two dexterous hands (CLI, shared utilities)."""

__version__ = "0.1.0"
