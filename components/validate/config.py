"""The validate step's settings, defined once (see :mod:`components.settings`)."""

from dataclasses import dataclass

from components.settings import setting


@dataclass(frozen=True)
class ValidateConfig:
    """How statistics are computed."""

    beam_pipeline_args: list[str] = setting(
        [],
        "Apache Beam pipeline options for TFDV's statistics, e.g. --runner=DirectRunner "
        "(Dataflow, Flink and Spark options too); none: in-process on Arrow",
        show="none",
    )
