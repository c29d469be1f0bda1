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


def parse_param(text: str) -> tuple[str, Any]:
    """``epochs=20`` to ``("epochs", 20)``; a value that is not JSON stays text."""
    name, found, value = text.partition("=")
    if not found or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: write NAME=VALUE, e.g. epochs=20")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value
