"""One definition per setting: a step's typed config says each setting's name, default, help
and check once, and the CLI flags, the pipeline parameters' descriptions and the README tables
are made from it.

A config is a frozen dataclass whose fields are made with :func:`setting` and whose
``__post_init__`` calls :func:`check`. Configs live in light modules (``components/<step>/
config.py``), importable by the CLI without TensorFlow.

Component signatures are the one place a default is written again: KFP ships a lightweight
component's source text to the container, where a default must be a literal; the component
tests compare every one of them with its config.
"""

import argparse
import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from components.errors import ConfigurationError

_HELP, _CHECK, _RULE, _PARSE, _SHOW, _FLAG = "help", "check", "rule", "parse", "show", "flag"


def setting(
    default: Any,
    help: str,
    check: Callable[[Any], bool] | None = None,
    rule: str = "",
    parse: Callable[[str], Any] | None = None,
    show: str | None = None,
    flag: str | None = None,
) -> Any:
    """A config field.

    Args:
        default: The default value (a list or dict is copied for each config).
        help: One line for ``--help``, the KFP dashboard and the README.
        check: Whether a value is acceptable.
        rule: What ``check`` requires, for the error message ("at least 1").
        parse: Turns a command-line string into a value (default: the default's type).
        show: How the default is written for people, when ``repr`` does not say it well.
        flag: The command-line flag, when not ``--`` and the name with ``-`` for ``_``.
    """
    metadata = {
        _HELP: help,
        _CHECK: check,
        _RULE: rule,
        _PARSE: parse,
        _SHOW: show,
        _FLAG: flag,
    }
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def same_as(config: type, name: str, purpose: str) -> Any:
    """A field that is setting ``name`` of ``config`` under another name: the same default,
    check and rule, its help prefixed with ``purpose`` (e.g. the step that uses it)."""
    (found,) = [f for f in dataclasses.fields(config) if f.name == name]
    metadata = dict(found.metadata)
    return setting(
        default(config, name),
        f"{purpose}: {metadata[_HELP]}",
        metadata[_CHECK],
        metadata[_RULE],
        metadata[_PARSE],
        metadata[_SHOW],
    )


def _fields(config: Any, only: Iterable[str] | None = None) -> list[dataclasses.Field]:
    found = [f for f in dataclasses.fields(config) if _HELP in f.metadata]
    if only is None:
        return found
    wanted = list(only)
    by_name = {f.name: f for f in found}
    return [by_name[name] for name in wanted]


def default(config: type, name: str) -> Any:
    """The default of setting ``name`` of a config class."""
    (found,) = [f for f in dataclasses.fields(config) if f.name == name]
    if found.default_factory is not dataclasses.MISSING:
        return found.default_factory()
    return found.default


def defaults(config: type) -> dict[str, Any]:
    """Every setting's default."""
    return {f.name: default(config, f.name) for f in _fields(config)}


def help_text(config: type, name: str) -> str:
    """The help of setting ``name``."""
    (found,) = [f for f in _fields(config) if f.name == name]
    return found.metadata[_HELP]


def _problem(item: dataclasses.Field, value: Any) -> str | None:
    check = item.metadata[_CHECK]
    if check is None or check(value):
        return None
    return f"{item.name} must be {item.metadata[_RULE]}, got {value!r}"


def check(config: Any) -> None:
    """Raises ConfigurationError naming the first setting whose value fails its check."""
    for item in _fields(config):
        problem = _problem(item, getattr(config, item.name))
        if problem:
            raise ConfigurationError(f"{problem}.")


def _flag(item: dataclasses.Field) -> str:
    return item.metadata[_FLAG] or "--" + item.name.replace("_", "-")


def add_arguments(
    parser: argparse.ArgumentParser | Any,
    config: type,
    only: Sequence[str] | None = None,
    underscores: bool = False,
    default_in_help: bool = True,
) -> None:
    """Adds a ``--name`` flag per setting of ``config`` (or those in ``only``), with its default
    and help; a value that fails the check is an argparse error naming the flag.

    Args:
        parser: The parser or argument group.
        config: The config class.
        only: The settings to add (default: all).
        underscores: Also accept ``--max_rows`` for ``--max-rows`` (KServe runtimes' spelling).
        default_in_help: Append the default to the help (off when the parser's formatter
            shows defaults itself).
    """
    for item in _fields(config, only):
        value = default(config, item.name)
        parse = item.metadata[_PARSE] or type(value)

        def typed(text: str, item=item, parse=parse) -> Any:
            try:
                parsed = parse(text)
            except ValueError as err:
                raise argparse.ArgumentTypeError(f"{text!r}: {err}") from err
            problem = _problem(item, parsed)
            if problem:
                raise argparse.ArgumentTypeError(problem)
            return parsed

        spellings = [_flag(item)]
        if underscores and "-" in spellings[0][2:]:
            spellings.append("--" + spellings[0][2:].replace("-", "_"))
        parser.add_argument(
            *spellings,
            dest=item.name,
            type=typed,
            default=value,
            help=item.metadata[_HELP]
            + (f" (default: {_shown(item, value)})" if default_in_help else ""),
        )


def from_arguments(args: argparse.Namespace, config: type, **extra: Any) -> Any:
    """The config built from parsed flags (and ``extra`` values for fields without a flag)."""
    values = {f.name: getattr(args, f.name) for f in _fields(config) if hasattr(args, f.name)}
    return config(**values, **extra)


def _shown(item: dataclasses.Field, value: Any) -> str:
    if item.metadata[_SHOW] is not None:
        return item.metadata[_SHOW]
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) if value else "none"
    if isinstance(value, dict):
        return "none" if not value else repr(value)
    return str(value)


def markdown_table(
    config: type, only: Sequence[str] | None = None, flags: bool = False, header: bool = True
) -> str:
    """The README table of ``config``'s settings: parameter (or its flag), default, meaning."""
    rows = [f"| {'option' if flags else 'parameter'} | default | meaning |", "|---|---|---|"]
    rows = rows if header else []
    for item in _fields(config, only):
        value = _shown(item, default(config, item.name))
        rule = f" ({item.metadata[_RULE]})" if item.metadata[_RULE] else ""
        name = _flag(item) if flags else item.name
        rows.append(f"| `{name}` | `{value}` | {item.metadata[_HELP]}{rule} |")
    return "\n".join(rows) + "\n"


def docstring_args(configs: Iterable[type], names: Iterable[str] | None = None) -> str:
    """A Google-style ``Args:`` section describing the settings of ``configs``: KFP reads it
    into the pipeline's parameter descriptions, kept in the compiled package."""
    wanted = None if names is None else set(names)
    lines = ["Args:"]
    for config in configs:
        for item in _fields(config):
            if wanted is None or item.name in wanted:
                lines.append(f"    {item.name}: {item.metadata[_HELP]}")
    return "\n".join(lines)
