"""What the API stand-ins share: a threaded HTTP server on a free loopback port, started and
stopped as a context manager, and a JSON request handler."""

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class JsonHandler(BaseHTTPRequestHandler):
    """A request handler that answers JSON and keeps the test output clean."""

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _raw(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))


class LoopbackServer:
    """Serves ``self._handler()`` on 127.0.0.1 while used as a context manager."""

    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handler(self) -> type[JsonHandler]:
        raise NotImplementedError

    @property
    def host(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()


def api_now() -> str:
    """A timestamp as the Kubernetes API writes one."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def api_status(code: int, reason: str, message: str) -> dict[str, Any]:
    """A failed request's ``Status`` body, as the Kubernetes API answers one."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": reason,
        "message": message,
        "code": code,
    }
