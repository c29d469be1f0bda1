"""``mlops-log-sink``: receives the inference events KServe's payload logger sends and writes
them to the prediction log, in the layout ``mlops-serve --prediction-log`` writes.

    mlops-log-sink --log s3://mlpipeline/prediction-log [--port 8080] [--window-seconds 60]

KServe 0.15.2's agent (kserve/kserve@v0.15.2 pkg/logger) posts each request and each response as
a binary-mode CloudEvent, one POST per event, to the InferenceService's ``logger.url`` exactly as
configured, query string included (worker.go:86-88, :150): headers ``ce-id``, ``ce-type``
(``org.kubeflow.serving.inference.request`` or ``.response``, worker.go:38-39),
``ce-inferenceservicename``, ``ce-namespace``, ``ce-component``, ``ce-endpoint``, and the raw body.
What the sink does with what the agent does:

- The request and the response share ``ce-id`` (handler.go:140, :149, :184), and the response
  may arrive first (each event is its own goroutine, dispatcher.go:36-43): events are joined by
  (id, InferenceService, namespace, component) in either order.
- A response is sent only when the model answered 200 (handler.go:177, kserve/kserve#2722): a
  request whose response never comes was an error (or its event was lost). After
  ``--unanswered-seconds`` it is counted as ``unanswered`` and not logged: the log holds
  predictions, and error rates must come from the server's own metrics.
- The agent never retries, has no timeout and keeps unsent events in memory without bound
  (worker.go:152-166, sdk protocol.go:104-109; kserve/kserve#6167): the sink answers at once,
  before any parsing, and leaves the work to a background thread behind a bounded queue.
- The same id twice (a client re-sending its ``ce-id``) is counted as ``duplicate``.
- The model's name is the ``model`` query parameter of the URL (the InferenceService's name
  otherwise) and its version the ``version`` parameter, which the rollout step writes into each
  version's logger URL, so old pods and new pods name their own versions; a V2 response's
  ``model_version`` wins.
- The agent does not send the latency: the sink's rows have none.
- A rollout's smoke requests carry a ``Ce-Id`` starting with ``mlops-smoke-``, which the agent
  keeps as the event id: they are counted as ``smoke_test`` and not logged.

Late labels come over HTTP too: ``POST /v1/feedback/<model>`` with a JSON list of
``{"request_id", "label", "row"?}`` (the request id is the ``ce-id`` the client sent, or the one the
agent made, which KServe does not return to the client).
"""

import argparse
import dataclasses
import logging
import queue
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from components import constants
from serving import events
from serving import prediction_log as pl

logger = logging.getLogger(__name__)

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"

OUTCOMES = (
    "logged",  # joined and handed to the prediction log
    "unanswered",  # a request whose response never came (a model error, or a lost event)
    "unmatched_response",  # a response whose request never came
    "duplicate",  # an id seen already
    "malformed",  # not a KServe inference event (no ce-id, another ce-type)
    "not_a_prediction",  # a body that is not a V1/V2 prediction (metadata calls, binary data)
    "dropped",  # the sink's queue was full
    "smoke_test",  # a rollout's smoke request (ce-id constants.SMOKE_REQUEST_ID_PREFIX...)
)


@dataclasses.dataclass
class Event:
    """One inference event as the agent sent it."""

    id: str
    type: str
    service: str
    namespace: str
    component: str
    body: bytes
    model: str
    version: int | None
    received: float

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What joins a request and its response."""
        return (self.id, self.service, self.namespace, self.component)


class Joiner:
    """Joins requests and responses by :attr:`Event.key` and hands the pairs to a
    :class:`~serving.prediction_log.PredictionLog`; every event ends in one of
    :data:`OUTCOMES`, counted, each kind of problem said once.

    Args:
        log: Where joined predictions go.
        unanswered_seconds: How long a request waits for its response (and a response for its
            request).
        queue_events: Events the queue holds before the sink drops them.
        clock: Seconds since the epoch (a test's hook).
    """

    def __init__(
        self,
        log: pl.PredictionLog,
        unanswered_seconds: float = 300.0,
        queue_events: int = 100_000,
        clock: Any = time.time,
    ) -> None:
        self.log = log
        self.unanswered_seconds = unanswered_seconds
        self.counts = dict.fromkeys(OUTCOMES, 0)
        self._clock = clock
        self._queue: queue.Queue[Event | None] = queue.Queue(maxsize=queue_events)
        self._waiting: dict[tuple, tuple[float, Event | None, Event | None]] = {}
        self._done: dict[tuple, float] = {}
        self._kinds: dict[str, dict[str, str]] = {}
        self._said: set[str] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="log-sink-joiner", daemon=True)
        self._thread.start()

    def count(self, outcome: str, reason: str | None = None) -> None:
        """Counts one event's outcome; says ``reason`` once per outcome."""
        with self._lock:
            self.counts[outcome] += 1
        if reason and outcome not in self._said:
            self._said.add(outcome)
            logger.warning("Log sink: %s (%s); counting them as %r", reason, outcome, outcome)

    def put(self, event: Event) -> None:
        """Queues an event; never blocks (a full queue drops it, counted)."""
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.count("dropped", f"queue full ({self._queue.maxsize} events): dropping events")

    def close(self, timeout: float = 30.0) -> None:
        """Joins what is queued, counts what waits as unanswered or unmatched, and closes the
        prediction log."""
        self._queue.put(None)
        self._thread.join(timeout)
        self.log.close(timeout)

    def _run(self) -> None:
        while True:
            try:
                event = self._queue.get(timeout=1.0)
            except queue.Empty:
                event = False
            if event is None:
                self._expire(everything=True)
                return
            if event is not False:
                self._take(event)
            self._expire()

    def _take(self, event: Event) -> None:
        if event.key in self._done:
            self.count("duplicate", f"event id {event.id!r} seen again")
            return
        since, request, response = self._waiting.get(event.key, (self._clock(), None, None))
        if event.type == REQUEST_TYPE:
            if request is not None:
                self.count("duplicate", f"request id {event.id!r} seen twice")
                return
            request = event
        else:
            if response is not None:
                self.count("duplicate", f"response id {event.id!r} seen twice")
                return
            response = event
        if request is None or response is None:
            self._waiting[event.key] = (since, request, response)
            return
        self._waiting.pop(event.key, None)
        self._done[event.key] = self._clock()
        self._join(request, response)

    def _join(self, request: Event, response: Event) -> None:
        try:
            features, kinds = events.read_request(request.body)
            outputs, version = events.read_response(response.body)
        except events.NotAPrediction as err:
            self.count("not_a_prediction", f"an event body is {err}")
            self.count("not_a_prediction")  # both events of the pair
            return
        rows = {len(values) for values in (*features.values(), *outputs.values())}
        if len(rows) != 1:
            self.count("not_a_prediction", "a request and its response differ in rows")
            self.count("not_a_prediction")
            return
        known = self._kinds.setdefault(request.model, {})
        known.update(kinds)
        self.log.log(
            pl.Prediction(
                model=request.model,
                version=version if version is not None else request.version,
                request_id=request.id,
                answered=response.received,
                latency_ms=float("nan"),
                features={name: v for name, v in features.items() if name in known},
                feature_kinds={name: known[name] for name in features if name in known},
                outputs=outputs,
            )
        )
        self.count("logged")
        self.count("logged")

    def _expire(self, everything: bool = False) -> None:
        now = self._clock()
        for key, (since, request, _) in list(self._waiting.items()):
            if everything or now - since >= self.unanswered_seconds:
                del self._waiting[key]
                if request is not None:
                    self.count(
                        "unanswered",
                        "requests without a response: the model answered an error (KServe's "
                        "agent logs only 200s) or an event was lost",
                    )
                else:
                    self.count("unmatched_response", "responses whose request never came")
        for key, when in list(self._done.items()):
            if now - when >= self.unanswered_seconds:
                del self._done[key]


def build_app(joiner: Joiner, log_uri: str) -> Any:
    """The sink's HTTP app: events on ``POST /`` (any path but the ones below), labels on
    ``POST /v1/feedback/<model>``, ``GET /healthz``, ``GET /metrics``."""
    from fastapi import FastAPI, Request, Response
    from fastapi.responses import JSONResponse, PlainTextResponse

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/metrics")
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(render_metrics(joiner))

    @app.post("/v1/feedback/{model}")
    async def feedback(model: str, request: Request) -> JSONResponse:
        try:
            rows = pl.rows_of(await request.json())
        except (ValueError, TypeError, AttributeError) as err:
            message = f"send a JSON list of {{'request_id', 'label', 'row'?}}: {err}"
            return JSONResponse({"error": message}, status_code=400)
        if not rows:
            return JSONResponse({"stored": 0})
        try:
            pl.write_labels(log_uri, model, rows)
        except OSError as err:
            logger.error("Log sink: cannot store %d labels of %s: %s", len(rows), model, err)
            return JSONResponse({"error": f"cannot store the labels: {err}"}, status_code=503)
        return JSONResponse({"stored": len(rows)})

    @app.post("/{path:path}")
    async def event(path: str, request: Request) -> Response:
        headers = request.headers
        kind, event_id = headers.get("ce-type"), headers.get("ce-id")
        if not event_id or kind not in (REQUEST_TYPE, RESPONSE_TYPE):
            joiner.count("malformed", "events without ce-id or with another ce-type")
            return JSONResponse(
                {"error": f"not a KServe inference event (ce-id {event_id!r}, ce-type {kind!r})"},
                status_code=400,
            )
        if event_id.startswith(constants.SMOKE_REQUEST_ID_PREFIX):
            # A rollout checking a version answers, not traffic: monitoring must not see it.
            joiner.count("smoke_test", "rollout smoke requests (not logged)")
            return Response(status_code=200)
        service = headers.get("ce-inferenceservicename", "")
        version = request.query_params.get("version")
        joiner.put(
            Event(
                id=event_id,
                type=kind,
                service=service,
                namespace=headers.get("ce-namespace", ""),
                component=headers.get("ce-component", ""),
                body=await request.body(),
                model=request.query_params.get("model") or service or "unknown",
                version=int(version) if version and version.isdigit() else None,
                received=time.time(),
            )
        )
        return Response(status_code=200)

    return app


def render_metrics(joiner: Joiner) -> str:
    """The sink's counts in Prometheus' text format."""
    lines = [
        "# HELP mlops_log_sink_events_total Inference events received, by outcome.",
        "# TYPE mlops_log_sink_events_total counter",
    ]
    for outcome, count in joiner.counts.items():
        lines.append(f'mlops_log_sink_events_total{{outcome="{outcome}"}} {count}')
    counts = joiner.log.counts
    lines += [
        "# HELP mlops_prediction_log_rows_total Predicted rows handed to the prediction log.",
        "# TYPE mlops_prediction_log_rows_total counter",
    ]
    for outcome in ("written", "dropped", "lost"):
        lines.append(
            f'mlops_prediction_log_rows_total{{outcome="{outcome}"}} {getattr(counts, outcome)}'
        )
    return "\n".join(lines) + "\n"


def _exit(*_: object) -> None:
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mlops-log-sink``."""
    parser = argparse.ArgumentParser(prog="mlops-log-sink", description=__doc__.splitlines()[0])
    parser.add_argument("--log", required=True, help="the prediction log: a folder or s3://, gs://")
    parser.add_argument("--host", default="0.0.0.0", help="the address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="the HTTP port")
    parser.add_argument(
        "--window-seconds", type=float, default=60.0, help="the longest a row waits to be written"
    )
    parser.add_argument(
        "--unanswered-seconds",
        type=float,
        default=300.0,
        help="how long a request waits for its response before it counts as unanswered",
    )
    parser.add_argument(
        "--queue-events", type=int, default=100_000, help="events queued before the sink drops"
    )
    args = parser.parse_args(argv)
    import uvicorn

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
    )
    try:
        log = pl.PredictionLog(args.log, window_seconds=args.window_seconds)
    except (OSError, ValueError) as err:
        print(f"error: cannot open the prediction log {args.log!r}: {err}", file=sys.stderr)
        return 1
    joiner = Joiner(log, args.unanswered_seconds, args.queue_events)
    logger.info("Log sink writing to %s, listening on %s:%d", args.log, args.host, args.port)
    # uvicorn shuts down on SIGTERM, then raises the signal again with the handler it found
    # (uvicorn 0.30.6 server.py:311-328, in .venv-serving): ours ends the process through the
    # finally below, which writes what the sink still holds; the default one would kill it first.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, _exit)
    try:
        # KServe's agent keeps idle connections for 90 s (Go's default transport) and never
        # retries a POST sent on one the server just closed (pkg/logger/worker.go:151-153):
        # keep them open longer than it does.
        uvicorn.run(
            build_app(joiner, args.log),
            host=args.host,
            port=args.port,
            log_level="warning",
            timeout_keep_alive=120,
        )
    finally:
        joiner.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
