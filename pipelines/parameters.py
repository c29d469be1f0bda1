"""The pipelines' parameters, made from the step configs.

Each parameter's name, type, default and description (in the compiled package, where the KFP
API and the pipeline's YAML view carry it; the 2.5.0 run form shows names and defaults only)
come from one setting (:mod:`components.settings`): the run's locations and names below,
then each step's config. :func:`pipeline_function` turns a list of configs into the signature
and docstring KFP reads, so a pipeline never writes its parameters out again.
"""

import importlib.resources
import inspect
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, Dict, List

from components import settings
from components.beam import BeamConfig
from components.errors import ConfigurationError
from components.evaluate.blessing import EvalConfig
from components.ingest.config import IngestConfig
from components.registry import check_model_name
from components.train.config import TrainConfig
from components.transform.config import TransformConfig


def bundled_penguins() -> str:
    """The Palmer penguins CSV that the ``palmerpenguins`` package ships."""
    return str(importlib.resources.files("palmerpenguins") / "data" / "penguins.csv")


def _model_name(name: str) -> bool:
    try:
        check_model_name(name)
    except ConfigurationError:
        return False
    return True


@dataclass(frozen=True)
class RunConfig:
    """Where a run reads and writes, and what it learns."""

    data_uri: str = settings.setting(
        bundled_penguins(),
        "CSV (.csv, .tsv, .csv.gz), Parquet file or folder; local, gs:// or s3://",
        show="the bundled Palmer penguins",
        flag="--data",
    )
    label: str = settings.setting("species", "the column to predict")
    model_name: str = settings.setting(
        "penguins",
        "the model's name in the registry and on KServe",
        _model_name,
        "lowercase letters, digits and '-', starting with a letter, at most 48 characters",
    )
    registry: str = settings.setting(
        "model-registry", "the model registry: a folder, or s3://... / gs://..."
    )

    def __post_init__(self) -> None:
        settings.check(self)


# The configs whose settings are the training pipeline's parameters, in the order the
# dashboard lists them.
TRAINING_CONFIGS = (
    RunConfig,
    IngestConfig,
    BeamConfig,
    TransformConfig,
    TrainConfig,
    EvalConfig,
)


def _kfp_type(annotation: Any) -> Any:
    """The annotation KFP takes for a config field's type (``typing`` generics)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (list, tuple):
        return List[args[0]]
    if origin is dict:
        return Dict[str, Dict[str, float]]
    return annotation


def _kfp_default(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def parameters(
    configs: Sequence[type],
    overrides: dict[str, Any] | None = None,
    names: Sequence[str] | None = None,
) -> list[inspect.Parameter]:
    """The pipeline parameters of ``configs``' settings (of those in ``names``, when given),
    with ``overrides`` of their defaults."""
    overrides = overrides or {}
    wanted = None if names is None else set(names)
    found = []
    for config in configs:
        for item in fields(config):
            if item.name not in settings.defaults(config):
                continue
            if wanted is not None and item.name not in wanted:
                continue
            default = overrides.get(item.name, settings.default(config, item.name))
            found.append(
                inspect.Parameter(
                    item.name,
                    inspect.Parameter.POSITIONAL_OR_KEYWORD,
                    default=_kfp_default(default),
                    annotation=_kfp_type(item.type),
                )
            )
    taken = [parameter.name for parameter in found]
    assert len(set(taken)) == len(taken), f"a setting is in two configs: {taken}"
    return found


def pipeline_function(
    name: str,
    summary: str,
    configs: Sequence[type],
    body: Callable[..., Any],
    overrides: dict[str, Any] | None = None,
    returns: Any = inspect.Signature.empty,
    only: Sequence[str] | None = None,
) -> Callable[..., Any]:
    """A function KFP's ``dsl.pipeline`` takes, whose parameters are ``configs``' settings.

    KFP reads a pipeline's parameters from its signature and their descriptions from its
    docstring (kfp/dsl/component_factory.py: ``extract_component_interface``), then calls it
    with one channel per parameter, in order (kfp/dsl/graph_component.py).

    Args:
        name: The function's name.
        summary: The docstring's first line.
        configs: Whose settings are the parameters.
        body: Called with every parameter by name; adds the steps.
        overrides: Defaults other than the configs' (e.g. a cluster's locations).
        returns: The return annotation (the pipeline's outputs).
        only: The settings that are parameters, when not all of them are.
    """
    signature = inspect.Signature(parameters(configs, overrides, only), return_annotation=returns)
    names = list(signature.parameters)

    def pipeline(*channels: Any) -> Any:
        return body(**dict(zip(names, channels, strict=True)))

    pipeline.__name__ = pipeline.__qualname__ = name
    pipeline.__signature__ = signature
    pipeline.__doc__ = f"{summary}\n\n{settings.docstring_args(configs, names)}"
    return pipeline
