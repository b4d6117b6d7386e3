"""Strict YAML reading for the hardware configuration files: parse, find duplicate keys, and read typed
values with errors that name the file and the key path (``<file>: <key.path>: <problem>``).

Public so that every loader of ``hardware_config/`` (:mod:`omnipianist.hardware.config` for the real
rig, :mod:`omnipianist.hardware.hil_config` for the simulation-only hands) reads files the same way.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from omnipianist.errors import ConfigError

S = TypeVar("S", bound=str)

__all__ = ["HardwareConfigError", "Reader", "join_key", "read_yaml", "type_name"]


class HardwareConfigError(ConfigError):
    """A hardware configuration file is invalid.

    Attributes:
        file: the file (as given to the loader).
        key: dotted key path inside it (``joints.if_mcp.servo_id``), ``""`` for the whole file.
        problem: what was wrong.
    """

    def __init__(self, file: str | Path, key: str, problem: str) -> None:
        self.file = str(file)
        self.key = key
        self.problem = problem
        super().__init__(f"{self.file}: {key}: {problem}" if key else f"{self.file}: {problem}")


# --- YAML reading -----------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader; duplicate keys are found on the node tree before construction."""


def join_key(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _check_duplicates(file: str, node: yaml.Node, path: str) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[object, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else id(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise HardwareConfigError(file, join_key(path, key), f"duplicate key (line {line}; first at line {seen[key]})")
            seen[key] = line
            _check_duplicates(file, value_node, join_key(path, key))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_duplicates(file, item, f"{path}[{i}]")


def read_yaml(path: str | Path) -> Any:
    """Parse one YAML file; HardwareConfigError for an unreadable file, bad syntax or duplicate keys."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise HardwareConfigError(file, "", f"cannot read file: {exc.strerror or exc}") from exc
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise HardwareConfigError(file, "", "empty file, expected a mapping")
        _check_duplicates(file, node, "")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise HardwareConfigError(file, "", f"{where}malformed YAML: {problem}") from exc
    finally:
        loader.dispose()


class Reader:
    """Typed, path-tracking access to one file's parsed YAML; every error names file and key path."""

    def __init__(self, file: str | Path) -> None:
        self.file = str(file)

    def error(self, key: str, problem: str) -> HardwareConfigError:
        return HardwareConfigError(self.file, key, problem)

    def mapping(
        self,
        key: str,
        value: object,
        allowed: Sequence[str],
        *,
        optional: Sequence[str] = (),
        what: str = "key",
        missing_hint: str = "",
    ) -> dict[str, Any]:
        """``value`` as a dict whose keys are exactly ``allowed`` (``optional`` ones may be absent)."""
        if not isinstance(value, dict):
            raise self.error(key, f"expected a mapping, got {type_name(value)}")
        for k in value:
            if not isinstance(k, str):
                raise self.error(join_key(key, k), f"{what} must be a string, got {type_name(k)}")
            if k not in allowed:
                close = difflib.get_close_matches(k, allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise self.error(join_key(key, k), f"unknown {what}{hint}; allowed: {', '.join(allowed)}")
        for k in allowed:
            if k not in value and k not in optional:
                raise self.error(join_key(key, k), f"missing {what}{missing_hint}")
        return value

    def integer(self, key: str, value: object, lo: int | None = None, hi: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected an integer, got {type_name(value)} ({value!r})")
        self._check_range(key, value, lo, hi)
        return value

    def number(
        self, key: str, value: object, lo: float | None = None, hi: float | None = None, *, positive: bool = False
    ) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"expected a number, got {type_name(value)} ({value!r})")
        x = float(value)
        if not math.isfinite(x):
            raise self.error(key, f"expected a finite number, got {value!r}")
        if positive and x <= 0:
            raise self.error(key, f"must be > 0, got {value!r}")
        self._check_range(key, x, lo, hi)
        return x

    def string(self, key: str, value: object, choices: Sequence[str] | None = None) -> str:
        if not isinstance(value, str) or not value:
            raise self.error(key, f"expected a non-empty string, got {type_name(value)} ({value!r})")
        if choices is not None and value not in choices:
            raise self.error(key, f"{value!r} is not one of {', '.join(map(repr, choices))}")
        return value

    def choice(self, key: str, value: object, choices: Sequence[S]) -> S:
        """A string that is one of ``choices``, typed as they are (e.g. a ``Literal``); errors as :meth:`string`."""
        s = self.string(key, value, choices)
        return next(c for c in choices if c == s)

    def boolean(self, key: str, value: object) -> bool:
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {type_name(value)} ({value!r})")
        return value

    def direction(self, key: str, value: object) -> int:
        """``1`` or ``-1`` (a servo's sign); ``True`` / ``1.0`` are refused."""
        if isinstance(value, bool) or not isinstance(value, int) or value not in (1, -1):
            raise self.error(key, f"must be 1 or -1, got {value!r}")
        return value

    def interval(self, key: str, value: object, unit: str) -> tuple[float, float]:
        """A ``[lo, hi]`` pair of numbers with lo < hi."""
        if not isinstance(value, list) or len(value) != 2:
            raise self.error(key, f"expected a list [lower, upper] in {unit}, got {value!r}")
        lo = self.number(f"{key}[0]", value[0])
        hi = self.number(f"{key}[1]", value[1])
        if not lo < hi:
            raise self.error(key, f"lower {lo} must be < upper {hi} ({unit})")
        return (lo, hi)

    def within(self, key: str, interval: tuple[float, float], model: tuple[float, float], unit: str) -> None:
        lo, hi = interval
        if lo < model[0] or hi > model[1]:
            raise self.error(
                key, f"[{lo}, {hi}] {unit} is outside the model's joint range [{model[0]:.6g}, {model[1]:.6g}] {unit}"
            )

    def _check_range(self, key: str, x: float, lo: float | None, hi: float | None) -> None:
        if (lo is not None and x < lo) or (hi is not None and x > hi):
            lo_s = "-inf" if lo is None else f"{lo:g}"
            hi_s = "inf" if hi is None else f"{hi:g}"
            raise self.error(key, f"{x:g} is outside [{lo_s}, {hi_s}]")


def type_name(value: object) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )
