"""The HTTP server of the health API: stdlib `ThreadingHTTPServer` on a daemon thread.

With a bearer token configured, every endpoint but `/health` (liveness probes carry no credentials,
and it tells nothing but "alive") answers 401 unless the request has `Authorization: Bearer <token>`.
The token is compared in constant time and never written anywhere: not in responses, not in logs
(request lines are logged at debug level; headers never are).
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from pydantic import BaseModel

from ray_cdc.observability import metrics
from ray_cdc.observability.errors import HealthApiError
from ray_cdc.observability.models import ErrorBody, ReadyReport
from ray_cdc.observability.openapi import document
from ray_cdc.observability.view import PipelineView
from ray_cdc.secrets import redact

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/health"})
JSON = "application/json"

Reply = tuple[int, str, bytes]


def _json(status: int, body: BaseModel | dict) -> Reply:
    data = body.model_dump_json() if isinstance(body, BaseModel) else json.dumps(body)
    return status, JSON, data.encode()


def _error(status: HTTPStatus, detail: str) -> Reply:
    return _json(status, ErrorBody(error=status.phrase.lower(), detail=detail))


def _ready(view: PipelineView) -> Reply:
    report: ReadyReport = view.ready()
    return _json(HTTPStatus.OK if report.ready else HTTPStatus.SERVICE_UNAVAILABLE, report)


def routes(view: PipelineView) -> dict[str, Callable[[], Reply]]:
    return {
        "/health": lambda: _json(HTTPStatus.OK, view.health()),
        "/ready": lambda: _ready(view),
        "/status": lambda: _json(HTTPStatus.OK, view.status()),
        "/metrics": lambda: (HTTPStatus.OK, metrics.CONTENT_TYPE, view.metrics()),
        "/openapi.json": lambda: _json(HTTPStatus.OK, document()),
    }


def authorized(header: str | None, token: str | None) -> bool:
    if token is None:
        return True
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


class HealthApi:
    """`start()` binds and serves in the background; `address` is then the bound (host, port)."""

    def __init__(self, view: PipelineView, host: str, port: int, token: str | None = None):
        self._routes = routes(view)
        self._host, self._port, self._token = host, port, token
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        return self._server.server_address[:2]

    def start(self) -> tuple[str, int]:
        try:
            self._server = ThreadingHTTPServer((self._host, self._port), self._handler())
        except OSError as exc:
            raise HealthApiError(f"cannot serve the health API on {self._host}:{self._port} "
                                 f"(observability.host/port; port 0 takes any free port): {exc.strerror}") from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="ray-cdc-health-api", daemon=True)
        self._thread.start()
        host, port = self.address
        log.info("health API listening on http://%s:%d (%s)", host, port,
                 "bearer token required except on /health" if self._token else "no token")
        return host, port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self._send(*api.answer(urlsplit(self.path).path, self.headers.get("Authorization")))

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                if status == HTTPStatus.UNAUTHORIZED:
                    self.send_header("WWW-Authenticate", 'Bearer realm="ray_cdc"')
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args):
                log.debug("health API: " + format, *args)

        return Handler

    def answer(self, path: str, authorization: str | None) -> Reply:
        if path not in OPEN_PATHS and not authorized(authorization, self._token):
            return _error(HTTPStatus.UNAUTHORIZED, "this endpoint needs 'Authorization: Bearer <token>' "
                                                   "(observability.bearer_token)")
        route = self._routes.get(path)
        if route is None:
            return _error(HTTPStatus.NOT_FOUND, f"no endpoint {path}; see /openapi.json")
        try:
            return route()
        except Exception as exc:  # noqa: BLE001 - one failing figure must not take the server down
            log.error("health API: %s failed: %s", path, redact(f"{type(exc).__name__}: {exc}"))
            return _error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__} while answering {path}")
