"""The served model: a ``kserve.Model`` over a SavedModel the training pipeline exported.

It speaks KServe's V1 protocol and the Open Inference Protocol (V2, REST and gRPC), validates
every request against the signature, and runs each request as one batch through
``serving_default``. When it follows the latest version, a watcher loads a newly pushed version
beside the current one and swaps it in; requests in flight finish on the model they started on.
"""

import asyncio
import functools
import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf
from kserve import InferOutput, InferRequest, InferResponse, Model
from kserve.errors import InvalidInput

from components import constants, layout
from serving.config import ServingConfig
from serving.http import install_body_limit
from serving.metrics import (
    ERROR,
    INVALID,
    OK,
    SHADOW_LOG_PREFIX,
    register_metrics,
    register_shadow_metrics,
    request_metrics,
)
from serving.payload import (
    NUMBER,
    STRING,
    BadRequest,
    Columns,
    Feature,
    columns_from_instances,
    columns_from_tensors,
    v1_predictions,
)
from serving.prediction_log import SHADOW, Prediction, PredictionLog
from serving.shadow import Shadow

logger = logging.getLogger(__name__)


class ModelNotFound(Exception):
    """No loadable model where the source points."""


@dataclass(frozen=True)
class ModelSource:
    """Where the model comes from.

    Either a registry folder in TensorFlow Serving's layout (``<root>/<name>/<version>/``,
    :mod:`components.layout`) with a fixed ``version`` or the latest, or ``model_dir``: a
    SavedModel, or a folder of numeric version folders (KServe's storage initializer puts the
    model in ``/mnt/models``).
    """

    registry: str | None = None
    name: str | None = None
    version: int | None = None
    model_dir: str | None = None

    def __str__(self) -> str:
        version = "latest" if self.version is None else f"version {self.version}"
        return f"{self._versions_root()} ({version})"

    @property
    def follows_latest(self) -> bool:
        """True when a newer version should replace the served one."""
        return self.version is None

    def _versions_root(self) -> str:
        if self.model_dir:
            return self.model_dir
        return os.path.join(self.registry or "", self.name or "")

    def resolve(self) -> tuple[int | None, str]:
        """The version to serve and its folder.

        Raises:
            ModelNotFound: Nothing loadable is there.
        """
        root = self._versions_root()
        if self.model_dir and os.path.isfile(os.path.join(root, layout.SAVED_MODEL_FILE)):
            return None, root
        if not os.path.isdir(root):
            raise ModelNotFound(f"{root!r} does not exist")
        versions = layout.versions(root)
        if not versions:
            raise ModelNotFound(
                f"{root!r} holds no version folder with a {layout.SAVED_MODEL_FILE}"
            )
        version = versions[-1] if self.version is None else self.version
        if version not in versions:
            raise ModelNotFound(f"version {version} is not in {root!r}; it has {versions}")
        return version, os.path.join(root, str(version))


@dataclass(frozen=True)
class LoadedModel:
    """One loaded version: its signature and what it takes and returns."""

    version: int | None
    path: str
    signature: Any
    features: dict[str, Feature]
    outputs: dict[str, tf.TensorSpec]

    @functools.cached_property
    def feature_kinds(self) -> dict[str, str]:
        """Each feature's kind (``number`` or ``string``), as the prediction log takes them."""
        return {name: feature.kind for name, feature in self.features.items()}

    def run(self, columns: Columns) -> dict[str, np.ndarray]:
        """One call of ``serving_default`` on whole columns."""
        tensors = {name: tf.constant(values) for name, values in columns.items()}
        return {name: value.numpy() for name, value in self.signature(**tensors).items()}


def load_saved_model(version: int | None, path: str) -> LoadedModel:
    """Loads a SavedModel and reads its serving signature."""
    signature = tf.saved_model.load(path).signatures[constants.SERVING_SIGNATURE]
    inputs = signature.structured_input_signature[1]
    features = {
        name: Feature(name, STRING if spec.dtype == tf.string else NUMBER)
        for name, spec in sorted(inputs.items())
    }
    return LoadedModel(version, path, signature, features, dict(signature.structured_outputs))


_V2_DATATYPE = {tf.float32: "FP32", tf.string: "BYTES", tf.int64: "INT64"}


class ServedModel(Model):
    """A pipeline-exported model behind KServe's V1 and V2 protocols."""

    def __init__(self, name: str, source: ModelSource, config: ServingConfig | None = None) -> None:
        # return_response_headers: predict gets the response's headers, to return the request id.
        super().__init__(name, return_response_headers=True)
        config = config or ServingConfig()
        self.source = source
        self.max_rows = config.max_rows
        self.poll_seconds = config.poll_seconds
        self.max_body_bytes = config.max_body_bytes
        self.config = config
        self._loaded: LoadedModel | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._log: PredictionLog | None = None
        self._shadow: Shadow | None = None

    def __getstate__(self) -> dict:
        # With --workers > 1 KServe spawns HTTP worker processes and pickles the model into
        # them. A loaded TensorFlow graph and threads do not pickle: each worker loads its own
        # model and writes its own prediction log files.
        state = self.__dict__.copy()
        state.update(_loaded=None, _stop=None, _watcher=None, _log=None, _shadow=None)
        return state

    @property
    def prediction_log(self) -> PredictionLog | None:
        """This process's prediction log writer, started on first use; None when off."""
        if self._log is None and self.config.prediction_log:
            self._log = PredictionLog(
                self.config.prediction_log,
                window_seconds=self.config.prediction_log_window_seconds,
                queue_requests=self.config.prediction_log_queue,
            )
            register_metrics(self._log)
        return self._log

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._stop = threading.Event()
        install_body_limit(self.max_body_bytes)
        if self.ready:
            # In a worker this runs before it can answer the parent's liveness pings; see
            # serving/workers.py for how long that may take.
            self.load()
            self.start()

    @property
    def loaded(self) -> LoadedModel:
        """The version being served."""
        if self._loaded is None:
            raise RuntimeError(f"model {self.name!r} is not loaded")
        return self._loaded

    def load(self) -> bool:
        """Loads the source's version; logs why not and stays unready when it cannot."""
        try:
            version, path = self.source.resolve()
            self._loaded = load_saved_model(version, path)
        except (ModelNotFound, OSError, KeyError, ValueError, tf.errors.OpError) as err:
            logger.error("Model %r is not ready: cannot load it: %s", self.name, err)
            self.ready = False
            return False
        logger.info("Model %r serving version %s from %s", self.name, version, path)
        _ = self.prediction_log  # started before the first request, not by it
        if self.config.shadow_version is not None and self._shadow is None:
            self._shadow = self._load_shadow(self.config.shadow_version)
        self.ready = True
        return True

    def _load_shadow(self, version: int) -> Shadow | None:
        """The shadow version, running; None (said why) when it does not load: the served
        version serves either way."""
        if not self.source.registry:
            logger.error("No shadow: --shadow-version needs --registry (the versions to load)")
            return None
        try:
            shadow_version, path = ModelSource(self.source.registry, self.name, version).resolve()
            candidate = load_saved_model(shadow_version, path)
        except (ModelNotFound, OSError, KeyError, ValueError, tf.errors.OpError) as err:
            logger.error("No shadow: version %s of %r does not load: %s", version, self.name, err)
            return None
        log = None
        if self.config.prediction_log:
            log = PredictionLog(
                self.config.prediction_log,
                window_seconds=self.config.prediction_log_window_seconds,
                queue_requests=self.config.prediction_log_queue,
                kind=SHADOW,
            )
            register_metrics(log, SHADOW_LOG_PREFIX)
        shadow = Shadow(
            candidate.run,
            version,
            self.name,
            log,
            self.config.shadow_queue,
            features=set(candidate.features),
        )
        register_shadow_metrics(shadow)
        logger.info("Model %r shadows version %s beside the served one", self.name, version)
        return shadow

    def start(self) -> None:
        """Starts the watcher that swaps in new versions, when following the latest."""
        if self.source.follows_latest and self._watcher is None:
            self._watcher = threading.Thread(
                target=self._watch, name="version-watcher", daemon=True
            )
            self._watcher.start()

    def stop(self) -> None:
        """Stops the watcher, and writes what the prediction log holds."""
        self._stop.set()
        # What was served first: a pod's grace period may end before the shadow's queue does.
        if self._log is not None:
            self._log.close()
        if self._shadow is not None:
            self._shadow.close(timeout=5.0)
            if self._shadow.log is not None:
                self._shadow.log.close()

    def _watch(self) -> None:
        failed: int | None = None
        while not self._stop.wait(self.poll_seconds):
            try:
                version, path = self.source.resolve()
            except ModelNotFound:
                continue
            current = self._loaded.version if self._loaded else None
            if version is None or version == failed or (current is not None and version <= current):
                continue
            try:
                self._loaded = load_saved_model(version, path)
            except (OSError, KeyError, ValueError, tf.errors.OpError) as err:
                failed = version
                logger.error(
                    "Keeping version %s: version %s does not load: %s", current, version, err
                )
                continue
            self.ready = True
            logger.info("Model %r now serves version %s (was %s)", self.name, version, current)

    def get_input_types(self) -> list[dict]:
        """V2 metadata of the inputs: one tensor per feature."""
        return [
            {"name": f.name, "datatype": f.v2_datatype, "shape": [-1]}
            for f in self.loaded.features.values()
        ]

    def get_output_types(self) -> list[dict]:
        """V2 metadata of the outputs."""
        return [
            {
                "name": name,
                "datatype": _V2_DATATYPE.get(spec.dtype, "BYTES"),
                "shape": [-1, *spec.shape[1:]],
            }
            for name, spec in sorted(self.loaded.outputs.items())
            if name != constants.OUTPUT_CLASSES
        ]

    async def predict(
        self,
        payload: dict | InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict | InferResponse:
        """Validates the request, runs it as one batch, answers in the request's protocol; logs
        what it answered when the prediction log is on. The request's id is the client's
        (``x-request-id``, ``ce-id``, or a V2 request's ``id``) or a new one, and comes back in
        the ``x-request-id`` response header."""
        model = self.loaded  # One version for the whole request, even if a swap happens now.
        started, outcome = time.perf_counter(), ERROR
        try:
            answer = await self._answer(model, payload, headers, response_headers)
            outcome = OK
            return answer
        except InvalidInput:
            outcome = INVALID
            raise
        finally:
            seconds = time.perf_counter() - started
            request_metrics().observe(self.name, model.version, outcome, seconds)

    async def _answer(
        self,
        model: LoadedModel,
        payload: dict | InferRequest,
        headers: dict[str, str] | None,
        response_headers: dict[str, str] | None,
    ) -> dict | InferResponse:
        request_id = _request_id(payload, headers)
        if response_headers is not None:
            response_headers[REQUEST_ID_HEADER] = request_id
        try:
            if isinstance(payload, InferRequest):
                tensors = [
                    (t.name, t.datatype, list(t.shape), _tensor_data(t)) for t in payload.inputs
                ]
                columns = columns_from_tensors(tensors, model.features, self.max_rows)
            else:
                columns = columns_from_instances(_json(payload), model.features, self.max_rows)
        except BadRequest as err:
            raise InvalidInput(str(err)) from err
        started = time.perf_counter()
        outputs = await asyncio.get_running_loop().run_in_executor(None, model.run, columns)
        latency_ms = (time.perf_counter() - started) * 1000
        log = self.prediction_log
        if log is not None:  # only queued here: the writer thread builds and writes the rows
            log.log(
                Prediction(
                    model=self.name,
                    version=model.version,
                    request_id=request_id,
                    answered=time.time(),
                    latency_ms=latency_ms,
                    features=columns,
                    feature_kinds=model.feature_kinds,
                    outputs=outputs,
                )
            )
        if self._shadow is not None:  # queued here; the shadow's thread runs it
            self._shadow.submit(request_id, columns, outputs)
        if isinstance(payload, InferRequest):
            return self._v2_response(payload, outputs, model.version, request_id)
        return {"predictions": v1_predictions(outputs)}

    def _v2_response(
        self,
        request: InferRequest,
        outputs: dict[str, np.ndarray],
        version: int | None,
        request_id: str,
    ) -> InferResponse:
        infer_outputs = []
        for name, value in sorted(outputs.items()):
            if name == constants.OUTPUT_CLASSES:
                continue
            datatype = "BYTES" if value.dtype == object else _V2_DATATYPE[tf.as_dtype(value.dtype)]
            output = InferOutput(name=name, shape=list(value.shape), datatype=datatype)
            # gRPC clients (tritonclient) read raw output contents; REST answers in JSON.
            output.set_data_from_numpy(value, binary_data=bool(request.from_grpc))
            infer_outputs.append(output)
        return InferResponse(
            model_name=self.name,
            infer_outputs=infer_outputs,
            response_id=request_id,
            # The version that computed the outputs: self.loaded may have been swapped since.
            model_version=None if version is None else str(version),
        )


# The header a client names its request with, and the server returns the id in.
REQUEST_ID_HEADER = "x-request-id"
# KServe's payload logger names each request's events with it (kserve pkg/logger).
CLOUDEVENT_ID_HEADER = "ce-id"


def _request_id(payload: Any, headers: dict[str, str] | None) -> str:
    """The client's id for the request, or a new one. KServe hands the headers over with
    lower-case names: Starlette's for REST (kserve/protocol/rest/v1_endpoints.py:80 in
    .venv-serving), gRPC metadata keys, which are lower-case by definition."""
    headers = headers or {}
    chosen = headers.get(REQUEST_ID_HEADER) or headers.get(CLOUDEVENT_ID_HEADER)
    if not chosen and isinstance(payload, InferRequest):
        chosen = payload.id
    return chosen or str(uuid.uuid4())


def _json(payload: Any) -> Any:
    # KServe hands over the raw body when the content type is not JSON (curl's default).
    if not isinstance(payload, bytes | str):
        return payload
    try:
        return json.loads(payload)
    except ValueError as err:
        raise BadRequest(f"The body is not JSON ({err}); send application/json") from err


def _tensor_data(tensor: Any) -> np.ndarray:
    try:
        return tensor.as_numpy()
    except (ValueError, TypeError) as err:
        raise BadRequest(
            f"input {tensor.name!r}: data does not fit datatype {tensor.datatype}: {err}"
        ) from err
