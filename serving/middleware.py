"""Per-request context: a request id (X-Request-ID in and out) and request metrics by route."""

from __future__ import annotations

import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.batching import REQUEST_ARRIVED
from serving.metrics import Metrics

REQUEST_ID_HEADER = "x-request-id"
# A caller's id is kept (to trace a request across systems) only if it is short and plain.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


# Every response: no MIME sniffing, never framed (clickjacking), no referrer to other sites.
_SECURITY_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                     (b"referrer-policy", b"no-referrer"))
# HTML pages load only this origin's scripts and styles (the review page has no inline code).
_PAGE_CSP = (b"default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
             b"form-action 'self'; frame-ancestors 'none'")
_DOCS_CSP = _PAGE_CSP.replace(b"default-src 'self'", b"default-src 'self'; script-src 'self' "
                              b"'unsafe-inline'; style-src 'self' 'unsafe-inline'")


class RequestContextMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware): cheap, and it never buffers bodies."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        REQUEST_ARRIVED.set(time.monotonic())  # the queue deadline counts from here
        request_id = _incoming_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500  # if the app dies before answering, the server error handler sends a 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                headers.extend(_SECURITY_HEADERS)
                if any(k == b"content-type" and v.startswith(b"text/html") for k, v in headers):
                    docs = scope["path"] == "/docs"  # Swagger UI starts with an inline script
                    headers.append((b"content-security-policy", _DOCS_CSP if docs else _PAGE_CSP))
                message = {**message, "headers": headers}
            await send(message)

        root = scope.get("root_path", "")
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            # The route template (/v1/route), not the raw path: bounded label cardinality. A mount
            # (/static) has no route; routing then sets the scope's root_path to the mount's.
            mount = scope.get("root_path", "")[len(root):]
            route = getattr(scope.get("route"), "path", None) or mount or "unmatched"
            self.metrics.observe_request(scope["method"], route, status,
                                         time.perf_counter() - started)


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER.encode():
            text = value.decode("latin-1")
            return text if _SAFE_ID.match(text) else None
    return None
