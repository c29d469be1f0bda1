"""mlops-serve as a real process on loopback, hit by real clients: V1 with requests, V2 with
tritonclient over HTTP and gRPC."""

import concurrent.futures

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.slow


def _v1(server, body, **kwargs):
    return requests.post(
        f"{server.http}/v1/models/penguins:predict", json=body, timeout=30, **kwargs
    )


def test_v1_readiness(server):
    response = requests.get(f"{server.http}/v1/models/penguins", timeout=5)
    assert response.json() == {"name": "penguins", "ready": True}


def test_v1_predictions_equal_the_saved_models_outputs(server, trained, expected):
    response = _v1(server, {"instances": trained["rows"]})
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert [p["label"] for p in predictions] == [label.decode() for label in expected["label"]]
    probabilities = np.array(
        [[p["probabilities"][c] for c in ("Adelie", "Chinstrap", "Gentoo")] for p in predictions]
    )
    np.testing.assert_allclose(probabilities, expected["probabilities"], rtol=1e-5, atol=1e-7)


def _triton_inputs(module, rows):
    inputs = []
    for name in sorted(rows[0]):
        values = [row[name] for row in rows]
        if isinstance(next((v for v in values if v is not None), ""), str):
            data = np.array([("" if v is None else v).encode() for v in values], dtype=object)
            tensor = module.InferInput(name, [len(rows)], "BYTES")
        else:
            data = np.array([np.nan if v is None else v for v in values], dtype=np.float32)
            tensor = module.InferInput(name, [len(rows)], "FP32")
        tensor.set_data_from_numpy(
            data
        )  # binary tensors over HTTP, as tritonclient sends by default
        inputs.append(tensor)
    return inputs


def test_v2_http_infer_equals_the_saved_model(server, trained, expected):
    client = httpclient.InferenceServerClient(server.http.removeprefix("http://"))
    assert client.is_server_ready() and client.is_model_ready("penguins")
    result = client.infer("penguins", _triton_inputs(httpclient, trained["rows"]))
    np.testing.assert_allclose(
        result.as_numpy("probabilities"), expected["probabilities"], rtol=1e-5, atol=1e-7
    )
    assert result.as_numpy("label").tolist() == [label.decode() for label in expected["label"]]


def test_v2_grpc_infer_equals_the_saved_model(server, trained, expected):
    client = grpcclient.InferenceServerClient(server.grpc)
    assert client.is_model_ready("penguins")
    result = client.infer("penguins", _triton_inputs(grpcclient, trained["rows"]))
    np.testing.assert_allclose(
        result.as_numpy("probabilities"), expected["probabilities"], rtol=1e-5, atol=1e-7
    )
    assert result.as_numpy("label").tolist() == expected["label"].tolist()


def test_v2_metadata_lists_inputs_with_datatypes(server):
    metadata = httpclient.InferenceServerClient(
        server.http.removeprefix("http://")
    ).get_model_metadata("penguins")
    inputs = {tensor["name"]: tensor for tensor in metadata["inputs"]}
    assert inputs["island"]["datatype"] == "BYTES"
    assert inputs["body_mass_g"]["datatype"] == "FP32"
    assert inputs["body_mass_g"]["shape"] == [-1]
    assert {tensor["name"] for tensor in metadata["outputs"]} == {"label", "probabilities"}


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"instances": []}, 400, "is empty"),
        ({"instances": [{"island": "Dream"}]}, 400, "missing feature(s)"),
        ({"rows": []}, 400, '"instances"'),
    ],
)
def test_bad_v1_requests_are_4xx_with_the_problem(server, body, status, message):
    response = _v1(server, body)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_wrong_type_and_unknown_feature_name_the_feature(server, trained):
    row = dict(trained["rows"][0], body_mass_g="heavy")
    assert "'body_mass_g' takes a number" in _v1(server, {"instances": [row]}).json()["error"]
    row = dict(trained["rows"][0], wingspan=3)
    response = _v1(server, {"instances": [row]})
    assert response.status_code == 400 and "unknown feature(s) wingspan" in response.json()["error"]


def test_malformed_json_is_400(server):
    response = requests.post(
        f"{server.http}/v1/models/penguins:predict",
        data=b"{not json",
        headers={"content-type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400


def test_oversize_payload_is_413(server, trained):
    response = _v1(server, {"instances": trained["rows"] * 100})
    assert response.status_code == 413
    assert "over 200000 bytes" in response.json()["error"]


def test_bad_v2_datatype_is_a_client_error(server, trained):
    client = httpclient.InferenceServerClient(server.http.removeprefix("http://"))
    inputs = _triton_inputs(httpclient, trained["rows"][:1])
    bad = httpclient.InferInput("island", [1], "FP32")
    bad.set_data_from_numpy(np.array([1.0], np.float32))
    inputs = [bad if tensor.name() == "island" else tensor for tensor in inputs]
    with pytest.raises(InferenceServerException, match="datatype FP32 does not fit"):
        client.infer("penguins", inputs)


def test_server_keeps_serving_after_bad_requests(server, trained):
    for body in ({"instances": []}, {"instances": [{"x": 1}]}, {"instances": "no"}):
        assert 400 <= _v1(server, body).status_code < 500
    assert _v1(server, {"instances": trained["rows"][:2]}).status_code == 200


def test_concurrent_clients_get_answers(server, trained):
    rows = trained["rows"][:4]

    def call(_):
        return _v1(server, {"instances": rows}).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(call, range(64)))
    assert statuses == [200] * 64
