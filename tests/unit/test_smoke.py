"""The smoke row of a version: made from the schema and training statistics the registry keeps,
and answered by the real penguins SavedModel."""

import json

import pytest

from components.rollout import smoke
from tests.loopback import JsonHandler, LoopbackServer
from tests.testdata import build as testdata


def test_typical_row_is_the_training_datas_mode_and_mean_without_the_label(
    penguins_registry_texts, penguins_splits
):
    import pandas as pd

    row = smoke.typical_row(*penguins_registry_texts)
    train = pd.read_parquet(penguins_splits["train"])
    assert testdata.LABEL not in row
    assert row["island"] == train["island"].mode()[0]
    assert row["bill_length_mm"] == pytest.approx(train["bill_length_mm"].mean(), rel=1e-6)
    assert row["year"] == round(train["year"].mean()) and isinstance(row["year"], int)


def test_the_real_model_answers_the_typical_row(penguins_registry_texts, golden_model):
    import tensorflow as tf

    row = smoke.typical_row(*penguins_registry_texts)
    serve = tf.saved_model.load(golden_model).signatures["serving_default"]
    specs = serve.structured_input_signature[1]
    assert set(specs) == set(row)  # Exactly the features the model is served.
    inputs = {
        name: tf.reshape(tf.constant([row[name]], dtype=spec.dtype), [1] * len(spec.shape))
        for name, spec in specs.items()
    }
    answer = serve(**inputs)
    assert answer["label"].numpy()[0].decode() in {"Adelie", "Chinstrap", "Gentoo"}


class _Answers(LoopbackServer):
    def __init__(self, status: int, body: str) -> None:
        self.status, self.body = status, body
        super().__init__()

    def _handler(self) -> type[JsonHandler]:
        server = self

        class Handler(JsonHandler):
            def do_POST(self):
                self._raw()
                data = server.body.encode()
                self.send_response(server.status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


@pytest.mark.parametrize(
    ("status", "body", "passed", "detail"),
    [
        (200, json.dumps({"predictions": [{"label": "Adelie"}]}), True, "answered 200"),
        (200, json.dumps({"outputs": [{"name": "label", "data": ["Adelie"]}]}), True, "200"),
        (500, '{"error": "servable not found"}', False, 'answered 500: {"error"'),
        (200, "<html>", False, "without JSON"),
        (200, json.dumps({"predictions": []}), False, "no prediction"),
    ],
)
def test_smoke_passes_only_on_a_prediction(status, body, passed, detail):
    with _Answers(status, body) as server:
        result = smoke.smoke_test(server.host + "/v1/models/m:predict", {"instances": [{}]})
    assert result.passed is passed and detail in result.detail
    assert result.status == status and result.seconds > 0


def test_smoke_of_a_server_that_does_not_answer_fails():
    with _Answers(200, "") as server:
        url = server.host
    result = smoke.smoke_test(url, {"instances": [{}]}, timeout=2)
    assert not result.passed and result.status is None and "no answer" in result.detail


def test_v2_body_names_each_feature_with_its_datatype():
    body = smoke.request_body({"island": "Biscoe", "year": 2008}, "v2")
    assert body == {
        "inputs": [
            {"name": "island", "shape": [1], "datatype": "BYTES", "data": ["Biscoe"]},
            {"name": "year", "shape": [1], "datatype": "FP32", "data": [2008]},
        ]
    }
