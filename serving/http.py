"""HTTP concerns of the predictor that KServe's model server leaves open: a body size limit."""

import json


class BodySizeLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413 before the model sees it."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await self._reject(send)

    async def _reject(self, send) -> None:
        body = json.dumps(
            {"error": f"The request body is over {self.max_bytes} bytes; send fewer rows"}
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


def install_body_limit(max_bytes: int) -> None:
    """Adds :class:`BodySizeLimit` to KServe's app, once per process.

    KServe's HTTP workers (``--workers > 1``) are new processes that import the app afresh;
    each installs the limit when the model is unpickled into it.
    """
    from kserve import model_server

    app = model_server.app
    if not any(m.cls is BodySizeLimit for m in app.user_middleware):
        app.add_middleware(BodySizeLimit, max_bytes=max_bytes)
