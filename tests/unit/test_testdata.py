"""The golden artifacts in tests/testdata: they load with the current code, fit together, and are
what tests/testdata/build.py would build now, so they cannot silently go stale.

Compared by spec and signature, not bytes: SavedModels are not byte-for-byte reproducible.
"""

import pytest
import tensorflow as tf

from components import constants
from components.features import load_spec, load_transform, model_inputs, raw_signature
from tests.testdata import build as testdata

REBUILD = "the committed golden artifacts are stale: rebuild them with `make testdata`"


def _inputs(function) -> dict[str, tuple[str, tuple]]:
    """Name to (dtype, shape) of what a concrete function takes as its one dict argument."""
    specs = function.structured_input_signature[1] or function.structured_input_signature[0][0]
    return {name: (spec.dtype.name, tuple(spec.shape)) for name, spec in specs.items()}


def _outputs(function) -> dict[str, tuple[str, tuple]]:
    """Name to (dtype, shape) of what a concrete function returns."""
    return {
        name: (spec.dtype.name, tuple(spec.shape))
        for name, spec in function.structured_outputs.items()
    }


def _serving(model_dir: str):
    return tf.saved_model.load(model_dir).signatures[constants.SERVING_SIGNATURE]


def _transform_function(transform_dir: str):
    _, module = load_transform(transform_dir)
    return module.transform_features.concrete_functions[0]


def test_the_golden_transform_takes_the_raw_features_and_emits_the_model_inputs(
    golden_transform,
):
    spec = load_spec(golden_transform)
    function = _transform_function(golden_transform)
    assert _inputs(function) == {
        name: (tensor.dtype.name, tuple(tensor.shape))
        for name, tensor in raw_signature(spec).items()
    }
    assert {name: spec[0].name for name, spec in model_inputs(spec).items()} == {
        name: dtype for name, (dtype, _) in _outputs(function).items()
    }


def test_the_golden_model_serves_the_golden_transforms_features_and_classes(
    golden_model, golden_transform
):
    spec = load_spec(golden_transform)
    signature = _serving(golden_model)
    assert set(_inputs(signature)) == set(spec.feature_names)
    assert set(signature.structured_outputs) == {
        constants.OUTPUT_PROBABILITIES,
        constants.OUTPUT_LABEL,
        constants.OUTPUT_CLASSES,
    }
    rows = {f.name: tf.constant([0.0]) for f in spec.numeric}
    rows.update({f.name: tf.constant([""]) for f in spec.categorical})
    classes = signature(**rows)[constants.OUTPUT_CLASSES].numpy()[0]
    assert [value.decode() for value in classes] == spec.label.classes


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory) -> dict[str, str]:
    """The golden artifacts built again by the current code, in a temporary folder."""
    return testdata.build(str(tmp_path_factory.mktemp("testdata")))


@pytest.mark.slow
def test_the_transform_fitted_now_has_the_golden_spec(rebuilt, golden_transform):
    assert load_spec(rebuilt["transform"]) == load_spec(golden_transform), REBUILD


@pytest.mark.slow
def test_the_transform_saved_now_has_the_golden_signature(rebuilt, golden_transform):
    now, golden = (_transform_function(path) for path in (rebuilt["transform"], golden_transform))
    assert (_inputs(now), _outputs(now)) == (_inputs(golden), _outputs(golden)), REBUILD


@pytest.mark.slow
def test_the_model_trained_now_has_the_golden_signature(rebuilt, golden_model):
    now, golden = (_serving(path) for path in (rebuilt["model"], golden_model))
    assert (_inputs(now), _outputs(now)) == (_inputs(golden), _outputs(golden)), REBUILD
