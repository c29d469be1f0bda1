"""components.settings: one definition per setting, turned into flags, checks and tables."""

import argparse
from dataclasses import dataclass

import pytest

from components import settings
from components.errors import ConfigurationError


def _units(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


@dataclass(frozen=True)
class Example:
    epochs: int = settings.setting(50, "Most passes over the data", lambda v: v >= 1, "at least 1")
    rate: float = settings.setting(0.01, "Learning rate", lambda v: v > 0, "above 0")
    units: list = settings.setting(
        [64, 32], "Layer widths", lambda v: bool(v) and min(v) >= 1, "positive", parse=_units
    )
    name: str = settings.setting("penguins", "A name")

    def __post_init__(self) -> None:
        settings.check(self)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="t")
    settings.add_arguments(parser, Example)
    return parser


def test_flags_carry_the_configs_defaults():
    args = _parser().parse_args([])
    assert settings.from_arguments(args, Example) == Example()


def test_flags_parse_and_build_the_config():
    args = _parser().parse_args(["--epochs", "3", "--units", "8,4", "--name", "x"])
    assert settings.from_arguments(args, Example) == Example(3, 0.01, [8, 4], "x")


def test_a_flag_value_failing_its_check_is_refused_with_the_rule(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["--epochs", "0"])
    assert "epochs must be at least 1, got 0" in capsys.readouterr().err


def test_a_flag_value_of_the_wrong_type_is_refused(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["--rate", "fast"])
    assert "'fast'" in capsys.readouterr().err


def test_the_config_checks_values_given_in_code():
    with pytest.raises(ConfigurationError, match=r"rate must be above 0, got -1"):
        Example(rate=-1)


def test_mutable_defaults_are_not_shared():
    first = Example()
    first.units.append(1)
    assert Example().units == [64, 32]


def test_the_readme_table_lists_each_setting_with_default_help_and_rule():
    table = settings.markdown_table(Example).splitlines()
    assert table[2] == "| `epochs` | `50` | Most passes over the data (at least 1) |"
    assert table[4] == "| `units` | `64,32` | Layer widths (positive) |"
    assert table[5] == "| `name` | `penguins` | A name |"


def test_the_docstring_describes_the_chosen_settings():
    text = settings.docstring_args([Example], ["epochs", "name"])
    assert text.splitlines() == [
        "Args:",
        "    epochs: Most passes over the data",
        "    name: A name",
    ]


def test_defaults_and_help_of_one_setting():
    assert settings.default(Example, "units") == [64, 32]
    assert settings.help_text(Example, "rate") == "Learning rate"
    assert settings.defaults(Example)["epochs"] == 50


@dataclass(frozen=True)
class Renamed:
    data_uri: str = settings.setting("here.csv", "Where the data is", flag="--data", show="bundled")


def test_a_setting_can_name_its_own_flag_and_show_its_default():
    parser = argparse.ArgumentParser(prog="t")
    settings.add_arguments(parser, Renamed)
    assert parser.parse_args(["--data", "x.csv"]).data_uri == "x.csv"
    assert "(default: bundled)" in parser.format_help()
