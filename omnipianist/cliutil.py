"""CLI helpers: field docstrings and types of dataclass configs (for :mod:`omnipianist.command`), JSON output,
progress bars."""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing
from typing import Any


def _base_type(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _base_type(args[0]) if len(args) == 1 else str
    if origin is typing.Literal:
        return type(typing.get_args(tp)[0])
    return tp


def field_docs(cls: type) -> dict[str, str]:
    """The attribute docstrings of a dataclass (the string literal under each field), by field name."""
    import ast
    import inspect
    import textwrap

    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for a, b in zip(body, body[1:], strict=False):
            if (isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name) and isinstance(b, ast.Expr)
                    and isinstance(b.value, ast.Constant) and isinstance(b.value.value, str)):
                docs[a.target.id] = " ".join(b.value.value.split())
    return docs


def emit(result: dict[str, Any], as_json: bool, human: str | None = None) -> None:
    """Print ``result`` as one JSON object (``--json``) or as readable text."""
    if as_json:
        json.dump(result, sys.stdout, default=_jsonable)
        sys.stdout.write("\n")
    else:
        print(human if human is not None else json.dumps(result, indent=2, default=_jsonable))


def _jsonable(x: Any) -> Any:
    try:
        import numpy as np

        if isinstance(x, np.generic):
            return x.item()
        if isinstance(x, np.ndarray):
            return x.tolist()
    except ImportError:  # pragma: no cover
        pass
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return dataclasses.asdict(x)
    return str(x)


def progress(iterable: Any = None, *, total: int | None = None, desc: str = "", disable: bool = False) -> Any:
    """A tqdm progress bar on stderr (disabled when stderr is not a terminal or when asked)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, disable=disable or not sys.stderr.isatty(),
                file=sys.stderr, dynamic_ncols=True)
