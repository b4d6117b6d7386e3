"""The project's error types. Every error says what was wrong and where (file, field, joint, id)."""

from __future__ import annotations


class OmnipianistError(Exception):
    """Base class of every error the project raises on purpose."""


class ScoreError(OmnipianistError):
    """A MIDI file or score could not be read or is unusable (names the file and the cause)."""


class ConfigError(OmnipianistError):
    """A configuration file or value is missing or invalid (names the file and the key)."""


class ModelError(OmnipianistError):
    """A simulation model could not be built or does not match what is expected."""


class ContractError(OmnipianistError):
    """An exported policy's contract does not match the embodiment or the observation builder."""
