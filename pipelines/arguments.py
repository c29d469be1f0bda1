"""Parsers of the ``mlops`` flag values that are not a step setting's: thresholds, ``--param``."""

import argparse
import json
import re
from typing import Any

_THRESHOLD = re.compile(r"^\s*(\w+)\s*(>=|<=)\s*([-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)\s*$")


def parse_threshold(text: str) -> tuple[str, dict[str, float]]:
    """``accuracy>=0.9`` to ``("accuracy", {"lower_bound": 0.9})``."""
    match = _THRESHOLD.match(text)
    if not match:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a threshold; write METRIC>=VALUE or METRIC<=VALUE, e.g. accuracy>=0.9"
        )
    name, op, value = match.groups()
    return name, {"lower_bound" if op == ">=" else "upper_bound": float(value)}


def parse_param(text: str) -> tuple[str, str]:
    """``epochs=20`` to ``("epochs", "20")``; :func:`typed_params` gives the value its type."""
    name, found, value = text.partition("=")
    if not found or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: write NAME=VALUE, e.g. epochs=20")
    return name, value


# How a --param value is read, by the parameter's type in the compiled pipeline. The KFP 2.5.0
# API server refuses a value of another type ("requires type string": backend/src/apiserver/
# template/v2_template.go:401-405), so "--param label=2024" must stay the text "2024".
_READERS = {
    "STRING": str,
    "NUMBER_INTEGER": int,
    "NUMBER_DOUBLE": float,
    "BOOLEAN": lambda text: {"true": True, "false": False}[text.lower()],
    "LIST": json.loads,
    "STRUCT": json.loads,
}


def typed_params(given: list[tuple[str, str]], types: dict[str, str]) -> dict[str, Any]:
    """``--param`` values as the pipeline's parameter types (name to KFP ``parameterType``).

    Raises:
        ValueError: An unknown parameter, or a value its type cannot take; says which.
    """
    params = {}
    for name, text in given:
        if name not in types:
            raise ValueError(
                f"--param {name}: the pipeline has no such parameter; it has "
                f"{', '.join(sorted(types))}."
            )
        try:
            params[name] = _READERS[types[name]](text)
        except (ValueError, KeyError) as err:
            raise ValueError(
                f"--param {name}={text}: not a {types[name].lower().replace('_', ' ')} ({err})."
            ) from err
    return params
