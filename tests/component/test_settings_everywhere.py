"""Each setting is defined once, in its step config (components/settings.py): the components'
defaults, the pipelines' parameters, the ``mlops run`` flags and the README tables agree with
it."""

import inspect

import pytest

from components import settings
from components.beam import BeamConfig
from components.evaluate.blessing import EvalConfig
from components.evaluate.component import evaluate
from components.ingest.component import ingest
from components.ingest.config import IngestConfig
from components.rollout.component import rollout
from components.rollout.core import KServeSettings
from components.train.component import train
from components.train.config import TrainConfig
from components.transform.component import transform
from components.transform.config import TransformConfig
from components.validate.component import validate
from pipelines import cluster_training, docs, parameters, training
from pipelines.cli import build_parser

# Each component with the configs of the settings it takes.
COMPONENTS = [
    (ingest, [IngestConfig, BeamConfig]),
    (validate, [BeamConfig]),
    (transform, [TransformConfig, BeamConfig]),
    (train, [TrainConfig]),
    (evaluate, [EvalConfig, BeamConfig]),
    (rollout, [KServeSettings, cluster_training.ServeConfig]),
]


@pytest.mark.parametrize("component, configs", COMPONENTS, ids=lambda c: getattr(c, "name", ""))
def test_component_defaults_are_the_configs(component, configs):
    # KFP ships a lightweight component's source to the container, where a default must be a
    # literal: the one place a default is written again, checked here.
    signature = inspect.signature(component.python_func).parameters
    for config in configs:
        for name, value in settings.defaults(config).items():
            assert name in signature, f"{component.name} takes no {name}"
            expected = list(value) if isinstance(value, tuple) else value
            found = signature[name].default
            assert found == expected or (found is None and expected in ({}, [])), name


def _pipeline_parameters(pipeline) -> dict:
    spec = pipeline.pipeline_spec.root.input_definitions.parameters
    return {name: spec[name] for name in spec}


@pytest.mark.parametrize(
    "pipeline, configs",
    [
        (training.training_pipeline, parameters.TRAINING_CONFIGS),
        (cluster_training.cluster_training_pipeline, cluster_training.CLUSTER_CONFIGS),
    ],
    ids=["local", "cluster"],
)
def test_pipeline_parameters_are_the_configs_settings_with_their_help(pipeline, configs):
    found = _pipeline_parameters(pipeline)
    expected = {name for config in configs for name in settings.defaults(config)}
    assert set(found) == expected
    for config in configs:
        for name in settings.defaults(config):
            assert found[name].description == settings.help_text(config, name)


def test_the_local_pipeline_has_no_cluster_parameter():
    found = _pipeline_parameters(training.training_pipeline)
    for config in (KServeSettings, cluster_training.ServeConfig):
        assert not set(settings.defaults(config)) & set(found)


def test_run_flags_default_to_the_configs():
    args = build_parser().parse_args(["run"])
    for config in (IngestConfig, TransformConfig, TrainConfig):
        for name, value in settings.defaults(config).items():
            assert getattr(args, name) == value, name
    assert args.min_improvement == settings.default(EvalConfig, "min_improvement")


def test_a_run_flag_is_checked_by_its_config(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--dropout", "1.5"])
    assert "dropout must be in [0, 1), got 1.5" in capsys.readouterr().err


@pytest.mark.parametrize("step", docs.TABLES)
def test_component_readme_tables_are_made_from_the_configs(step):
    with open(docs.readme_path(step)) as handle:
        found = docs.current_table(handle.read())
    assert found is not None, f"components/{step}/README.md has no settings table"
    assert found == docs.table(step), f"components/{step}/README.md is stale: run make docs"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--workers", "2"], "--workers 2 trains in a TFJob on a Kubernetes cluster"),
        (["--beam-pipeline-arg=--runner=Nope"], "Unexpected pipeline runner: Nope"),
        (["--beam-pipeline-arg=--direct_num_wokers=2"], "does not know the pipeline options"),
    ],
)
def test_run_refuses_what_only_fails_later_before_any_step_runs(flags, message):
    from components.errors import ConfigurationError
    from pipelines.cli import run_arguments

    with pytest.raises(ConfigurationError, match=message):
        run_arguments(build_parser().parse_args(["run", *flags]))
