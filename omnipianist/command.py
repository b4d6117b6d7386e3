"""One convention for every command: a config dataclass, ``run(cfg) -> result``, a formatter.

A :class:`Command` names a config dataclass (its fields become the flags, their docstrings the
``--help`` text), the function that runs it and returns a result (a dataclass, JSON via
:func:`to_json`), the formatter that turns the result into text for humans and the exit status a
result means (benchmarks: 1 when a target is missed). Every command gets ``--json`` (one JSON
object on stdout). :class:`Group` nests commands (``bench sim``, ``corpus list``);
:class:`LazyCommand` names a command declared in a module imported only when it is parsed.

:func:`build_parser` turns a list of these into an argparse parser, :func:`command_main` runs one
command standalone (a module's ``main()``).

Config field metadata (``dataclasses.field(metadata=...)``) the flag builder reads:

``help``      the help text (default: the field's docstring)
``flags``     option strings instead of ``--field-name`` (e.g. ``("--policy",)``)
``action``    ``"store_true"`` / ``"store_false"`` for a bool (default ``--x/--no-x``), ``"append"``
``metavar``, ``choices``, ``nargs``, ``required``   as in argparse
``exclusive`` a name: the flags of the fields with the same name are mutually exclusive
``type``      the flag's argparse type (also makes a flag of a field of any other type, e.g. a file)
``convert``   applied to the flag's value (not given: the field keeps its default), e.g. reading the file
``also``      one more flag for the same field: ``{"flags": ..., "action": ..., "help": ...}``
``cli``       False: not a flag (e.g. ``show_progress``, which :attr:`Command.progress` sets from ``--json``)
``prefix``    a nested dataclass field: its fields become flags with this prefix ("" for none); a nested
              dataclass without it is no flag (it keeps its default)
``group``     the title of the field's argument group in ``--help`` (a nested dataclass: all its flags)

Result field metadata :func:`to_json` reads: ``json`` (False: left out; a string: the key),
``omit_none`` (left out while None), ``flatten`` (a dict whose keys join the enclosing object).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from omnipianist.cliutil import _base_type, emit, field_docs

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

C = TypeVar("C", bound="DataclassInstance")
"""A command's config: a dataclass."""
R = TypeVar("R")

JSON_HELP = "print one JSON object (for scripts)"
SCALARS = (int, float, str, bool, Path)


def always_ok(result: Any) -> int:
    """Exit status 0 whatever the result."""
    return 0


def ok_or_1(result: Any) -> int:
    """Exit status of a benchmark: 0 when every target is met (``result.ok`` or ``result["ok"]``), else 1."""
    ok = result["ok"] if isinstance(result, Mapping) else result.ok
    return 0 if ok else 1


def resolve(target: str) -> Any:
    """``"package.module:name"``: the object, its module imported now."""
    import importlib

    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclasses.dataclass(frozen=True)
class Command(Generic[C, R]):
    """A command: flags from ``config`` (a dataclass), ``run(cfg) -> result``, ``format(result) -> str``.

    ``config``, ``run`` and ``format`` may be given as ``"module:name"``: imported when the command is parsed
    or run, so that a module that needs torch is not imported to list the commands.
    """

    name: str
    help: str
    config: type[C] | str
    run: Callable[[C], R] | str
    format: Callable[[R], str | None] | str | None = None
    """Text for humans (None, or a formatter that returns None: the JSON, indented; "": nothing printed)."""
    positionals: tuple[str, ...] = ()
    """Config fields given as positional arguments, in this order."""
    exit_code: Callable[[R], int] = always_ok
    description: str | None = None
    progress: str | None = "show_progress"
    """Config field set to ``not --json`` (progress bars only for humans), where the config has it."""
    json_help: str = JSON_HELP
    """The help of ``--json``."""

    def config_type(self) -> type[C]:
        return resolve(self.config) if isinstance(self.config, str) else self.config

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_config_args(parser, self.config_type(), positionals=self.positionals)
        parser.add_argument("--json", action="store_true", help=self.json_help)

    def execute(self, cfg: C) -> R:
        """``run(cfg)``."""
        run: Callable[[C], R] = resolve(self.run) if isinstance(self.run, str) else self.run
        return run(cfg)

    def text(self, result: R) -> str | None:
        """The formatter's text of ``result`` (None without a formatter)."""
        fmt: Callable[[R], str | None] | None = resolve(self.format) if isinstance(self.format, str) else self.format
        return fmt(result) if fmt is not None else None

    def invoke(self, args: argparse.Namespace, overrides: Mapping[str, Any] | None = None) -> int:
        """Config from the parsed flags (and ``overrides``, e.g. what no flag can give), run, print (JSON or
        the formatter's text), the exit status."""
        cls = self.config_type()
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {self.progress: not args.json} if self.progress in fields else {}
        result = self.execute(config_from_args(cls, args, overrides={**values, **(overrides or {})}))
        text = None if args.json else self.text(result)
        if text != "":
            emit(to_json(result), args.json, text)
        return self.exit_code(result)


@dataclasses.dataclass(frozen=True)
class LazyCommand:
    """A command declared in a module imported only when the command is parsed or run (``"module:NAME"``).

    For modules whose import has effects on the whole process (``omnipianist_ros`` sets the BLAS thread
    variables), so that listing the commands imports them not; ``name`` and ``help`` are the listing's.
    """

    name: str
    help: str
    target: str

    @property
    def description(self) -> str | None:
        return None

    def command(self) -> Command[Any, Any]:
        """The command ``target`` names (its module imported now)."""
        cmd = resolve(self.target)
        if not isinstance(cmd, Command):
            raise TypeError(f"{self.target} is not a command")
        return cmd

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        self.command().add_arguments(parser)

    def invoke(self, args: argparse.Namespace) -> int:
        return self.command().invoke(args)


@dataclasses.dataclass(frozen=True)
class Group:
    """Sub-commands under one name (``omnipianist bench sim``)."""

    name: str
    help: str
    commands: tuple[Entry, ...]
    metavar: str = "COMMAND"


Entry = Command[Any, Any] | LazyCommand | Group


# ------------------------------------------------------------------------------------ parsers
class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in the help, except where they say nothing (None, a switch, a required flag) or the text has one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (action.required or action.default in (None, argparse.SUPPRESS) or "default" in text
                or isinstance(action, argparse._StoreConstAction)):
            return text
        return super()._get_help_string(action)


def build_parser(parser: argparse.ArgumentParser, entries: Sequence[Entry], argv: Sequence[str] | None = None,
                 dest: str = "command", metavar: str = "COMMAND") -> argparse.ArgumentParser:
    """Sub-parsers of ``parser`` for ``entries``; each parsed namespace gets ``func`` (its handler).

    With ``argv``, only the command ``argv`` names gets its flags (so that ``omnipianist prior`` does not
    import what ``train-expert`` needs); the others are listed with their help line only.
    """
    sub = parser.add_subparsers(dest=dest, required=True, metavar=metavar)
    chosen = _first_word(argv) if argv is not None else None
    for e in entries:
        p = sub.add_parser(e.name, help=e.help, description=_description(e),
                           formatter_class=HelpFormatter)
        if argv is not None and e.name != chosen:
            continue
        rest = list(argv[argv.index(e.name) + 1:]) if argv is not None else None
        if isinstance(e, Group):
            build_parser(p, e.commands, rest, dest=f"{dest}_{e.name}", metavar=e.metavar)
        else:
            e.add_arguments(p)
            p.set_defaults(func=e.invoke)
    return parser


def _description(e: Entry) -> str | None:
    return e.help if isinstance(e, Group) else (e.description or e.help)


def _first_word(argv: Sequence[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def command_main(command: Command[Any, Any], argv: Sequence[str] | None = None,
                 prog: str | None = None) -> int:
    """Run one command standalone (a module's ``main()``): parse ``argv``, run, print; the exit status."""
    parser = argparse.ArgumentParser(prog=prog or f"omnipianist {command.name}", description=_description(command),
                                     formatter_class=HelpFormatter)
    command.add_arguments(parser)
    return command.invoke(parser.parse_args(argv))


def _nested(tp: Any) -> type | None:
    base = _base_type(tp)
    return base if isinstance(base, type) and dataclasses.is_dataclass(base) else None


def _sequence_item(tp: Any) -> Any:
    """The item type of ``tuple[X, ...]`` / ``list[X]`` (optional or not), else None."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1:
        tp = args[0]
    if typing.get_origin(tp) in (tuple, list):
        return _base_type(typing.get_args(tp)[0])
    return None


def add_config_args(parser: argparse.ArgumentParser | Any, cls: type, prefix: str = "",
                    positionals: Sequence[str] = ()) -> None:
    """One argument per field of dataclass ``cls``: ``positionals`` as positional arguments, the rest as
    ``--flags`` (a field without a default is a required flag); nested dataclass fields with a ``prefix``
    expand, as their own argument group when they name a ``group``."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    exclusive: dict[str, Any] = {}
    for name in positionals:
        f = fields[name]
        kw: dict[str, Any] = {"help": f.metadata.get("help", "") or docs.get(name, "").replace("%", "%%")}
        item = _sequence_item(hints[name])
        if item is not None:
            kw.update(nargs="*" if _has_default(f) else "+", type=item)
        else:
            kw.update(type=_base_type(hints[name]), **({"nargs": "?", "default": f.default} if _has_default(f) else {}))
        for k in ("metavar", "choices", "nargs"):
            if k in f.metadata:
                kw[k] = f.metadata[k]
        parser.add_argument(prefix + name, **kw)
    for f in dataclasses.fields(cls):
        if f.name in positionals or not f.metadata.get("cli", True):
            continue
        nested = _nested(hints[f.name])
        target = _group(parser, f.metadata["group"]) if "group" in f.metadata else parser
        if "exclusive" in f.metadata:
            key = f.metadata["exclusive"]
            if key not in exclusive:
                exclusive[key] = target.add_mutually_exclusive_group()
            target = exclusive[key]
        if nested is not None:
            if "prefix" in f.metadata:
                add_config_args(target, nested, prefix=prefix + f.metadata["prefix"])
                continue
            if "type" not in f.metadata:  # a nested dataclass is expanded only when asked (or read by ``type``)
                continue
        _add_flag(target, f, hints[f.name], prefix + f.name, docs.get(f.name, ""))


def _group(parser: Any, title: str) -> Any:
    """The argument group of ``parser`` named ``title`` (made the first time)."""
    for g in getattr(parser, "_action_groups", ()):
        if g.title == title:
            return g
    return parser.add_argument_group(title)


def _has_default(f: dataclasses.Field[Any]) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else None


def _add_flag(parser: Any, f: dataclasses.Field[Any], tp: Any, dest: str, doc: str) -> None:
    """The ``--flag`` of one scalar (or sequence) config field."""
    meta = f.metadata
    flags = meta.get("flags") or ("--" + dest.replace("_", "-"),)
    text = meta.get("help", "") or doc.replace("%", "%%")
    kw: dict[str, Any] = {"dest": dest}
    action = meta.get("action")
    item = _sequence_item(tp)
    base = _base_type(tp)
    if (item or base) not in SCALARS and "type" not in meta:  # dicts, callables, ...: no flag (keeps its default)
        return
    if action in ("store_true", "store_false"):
        kw.update(action=action, help=text)
        if _has_default(f):
            kw["default"] = _default(f)
    elif action == "append":
        kw.update(action="append", type=item or base, help=text)
        if _has_default(f) and not meta.get("required"):
            kw["default"] = list(_default(f))
    elif base is bool and item is None:
        kw.update(action=argparse.BooleanOptionalAction, default=_default(f), help=text)
    else:
        kw["type"] = meta.get("type", item or base)
        if item is not None:
            kw["nargs"] = meta.get("nargs", "+")
        if typing.get_origin(tp) is typing.Literal:
            kw["choices"] = typing.get_args(tp)
        kw["help"] = text
    if "convert" in meta:  # the flag's own value; None: the field keeps its default
        kw["default"] = None
    elif _has_default(f) and "default" not in kw and action != "append":
        d = _default(f)
        kw["default"] = list(d) if isinstance(d, tuple) else d
    if not _has_default(f) or meta.get("required"):
        kw["required"] = True
    for k in ("metavar", "choices"):
        if k in meta:
            kw[k] = meta[k]
    parser.add_argument(*flags, **kw)
    also = meta.get("also")
    if also:
        parser.add_argument(*also["flags"], dest=dest, action=also["action"], help=also.get("help"))


def config_from_args(cls: type[C], args: argparse.Namespace, prefix: str = "",
                     overrides: Mapping[str, Any] | None = None) -> C:
    """Build ``cls`` (and its nested dataclasses) from the arguments :func:`add_config_args` added."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        nested = _nested(hints[f.name])
        if nested is not None and "type" not in f.metadata:
            if "prefix" in f.metadata and f.metadata.get("cli", True):
                values[f.name] = config_from_args(nested, args, prefix + f.metadata["prefix"])
            continue  # a nested dataclass without flags keeps its default
        if hasattr(args, prefix + f.name):
            v = getattr(args, prefix + f.name)
            if "convert" in f.metadata:
                if v is not None:
                    values[f.name] = f.metadata["convert"](v)
                continue
            values[f.name] = tuple(v) if isinstance(v, list) and _sequence_item(hints[f.name]) is not None else v
    values.update(overrides or {})
    return cls(**values)


# ------------------------------------------------------------------------------------ results
def to_json(result: Any) -> Any:
    """A result as JSON-ready values: a dataclass becomes a dict by its fields (metadata ``json``,
    ``omit_none``, ``flatten``), mappings and sequences recursively; anything else as it is (``emit``
    converts numpy scalars and arrays)."""
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(result):
            key = f.metadata.get("json", f.name)
            value = getattr(result, f.name)
            if key is False or (value is None and f.metadata.get("omit_none")):
                continue
            if f.metadata.get("flatten"):
                out.update(to_json(value))
            else:
                out[key] = to_json(value)
        return out
    if isinstance(result, Mapping):
        return {k: to_json(v) for k, v in result.items()}
    if isinstance(result, list | tuple):
        return [to_json(v) for v in result]
    return result

