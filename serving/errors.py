"""Serving errors and the ONE place where every error becomes an HTTP response.

Every error body has the same shape, whatever raised it:

    {"error": {"code": "text_too_long", "message": "...", "field": "complaints[2].text",
               "request_id": "5f0c..."}}

Domain errors (model/errors.py) map by class in `_DOMAIN`; the serving errors below carry their
own status. Anything unexpected is a 500 with the request id and a log line, never a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import DataError as SQLDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from model.errors import (
    BundleError,
    Conflict,
    DataError,
    HuyingError,
    InvalidInput,
    NotFound,
    SimilarityIndexError,
    TaxonomyError,
)

log = logging.getLogger("huying.serving")


class ServingError(HuyingError):
    """An error of the HTTP layer with its status and a stable machine-readable code, given as
    class arguments: `class Forbidden(ServingError, status=403, code="forbidden")`."""

    status = 400
    code = "bad_request"

    def __init_subclass__(cls, *, status: int | None = None, code: str | None = None,
                          **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status = status
        if code is not None:
            cls.code = code

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.field = field
        self.headers = headers or {}
        if code is not None:
            self.code = code


class BadRequest(ServingError):
    """The body cannot be read at all: not UTF-8, not JSON, empty."""


class InvalidBody(ServingError, status=422, code="invalid_body"):
    """The JSON is readable but not the expected shape at all (not an object, no list)."""


class Unauthorized(ServingError, status=401, code="unauthorized"):
    """No API key, a malformed one, or one this server does not know."""

    def __init__(self, message: str):
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ServingError, status=403, code="forbidden"):
    """The key is valid, but its role may not use this endpoint."""


class PayloadTooLarge(ServingError, status=413, code="body_too_large"):
    """The body is larger than HUYING_MAX_BODY_BYTES."""


class ModelNotReady(ServingError, status=503, code="not_ready"):
    """No model is loaded, the server is starting or stopping, or (/readyz) the similarity index
    has not been built yet."""


class Misconfigured(ServingError, status=503, code="misconfigured"):
    """A server-side file (keys, bundles) is unusable: the operator must fix it, not the caller."""


class RetryLater(ServingError, status=503, code="unavailable"):
    """A 503 that passes by itself: the Retry-After header says in how many seconds to retry."""

    def __init__(self, message: str, retry_after_s: int = 1):
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


class Overloaded(RetryLater, code="overloaded"):
    """The routing queue is full: back off and retry (Retry-After says when)."""


class StoreUnavailable(RetryLater, code="store_unavailable"):
    """The database cannot be reached or stayed locked past its timeout: retry in a moment."""


class RoutingFailed(ServingError, status=500, code="routing_failed"):
    """The router raised on one complaint; reported per item, never for the whole request."""


# Most specific first: the first matching class decides.
_DOMAIN: tuple[tuple[type[HuyingError], int, str], ...] = (
    (InvalidInput, 422, "invalid_input"),
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (BundleError, 422, "bundle_invalid"),
    (TaxonomyError, 422, "taxonomy_invalid"),
    (DataError, 422, "invalid_data"),
    (SimilarityIndexError, 409, "index_conflict"),
    (HuyingError, 400, "bad_request"),
)


def error_detail(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, {"code", "message", "field"?}, headers) for any error."""
    if isinstance(exc, ServingError):
        return exc.status, _detail(exc.code, str(exc), exc.field), exc.headers
    if isinstance(exc, HuyingError):
        for cls, status, code in _DOMAIN:
            if isinstance(exc, cls):
                return status, _detail(code, str(exc), getattr(exc, "field", None)), {}
    if isinstance(exc, ValidationError | RequestValidationError):
        return 422, validation_detail(exc.errors()), {}
    if isinstance(exc, SQLDataError):  # e.g. a NUL character PostgreSQL cannot store or compare
        return 422, _detail("invalid_field", "a value in this request cannot be stored or "
                            "searched by the database (a NUL or other control character?); "
                            "send printable text"), {}
    return 500, _detail("internal_error", "an unexpected error occurred; it was logged with "
                        "this request id, please report it"), {}


def validation_detail(errors: Any) -> dict[str, Any]:
    """The first pydantic error as {"code", "message", "field"}; `field` like complaints[2].text."""
    first = list(errors)[0] if errors else {"loc": (), "msg": "invalid value", "type": "invalid"}
    field = field_path(first.get("loc", ()))
    kind = str(first.get("type", "invalid"))
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if kind == "missing":
        message = "this field is required"
    return _detail(validation_code(kind), f"{field}: {message}", field)


def validation_code(kind: str) -> str:
    """A stable error code for a pydantic error type (ours are already codes: empty_text, …)."""
    if kind == "missing":
        return "missing_field"
    if kind.endswith("_type"):
        return "wrong_type"
    if kind in _OWN_CODES:
        return kind
    return "invalid_field"


# Error types raised by the validators in serving/schemas/: passed through as codes.
_OWN_CODES = {"empty_text", "text_too_long", "invalid_id", "invalid_unicode", "invalid_field",
              "wrong_type", "received_at_out_of_range"}


def field_path(loc: Any) -> str:
    """('body', 'complaints', 2, 'text') → 'complaints[2].text'; the bare body is 'body'."""
    out = ""
    for p in loc:
        if p == "body":
            continue
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def _detail(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    detail: dict[str, Any] = {"code": code, "message": message}
    if field:
        detail["field"] = field
    return detail


def error_response(request: Request, exc: BaseException) -> JSONResponse:
    status, detail, headers = error_detail(exc)
    _count(request, detail["code"])
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        detail["request_id"] = request_id
    if status >= 500 and not isinstance(exc, ServingError):
        log.error("unhandled error on %s %s (request %s)", request.method, request.url.path,
                  request_id, exc_info=exc)
    return JSONResponse({"error": detail}, status_code=status, headers=headers)


def _http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    # Raised by Starlette itself: unknown path, wrong method.
    status = exc.status_code
    message = {404: f"no endpoint at {request.url.path}; see /docs for the API",
               405: f"{request.method} is not allowed on {request.url.path}; see /docs"}.get(
        status, str(exc.detail))
    code = {404: "not_found", 405: "method_not_allowed"}.get(status, "http_error")
    detail = _detail(code, message)
    _count(request, code)
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        detail["request_id"] = request_id
    return JSONResponse({"error": detail}, status_code=status, headers=exc.headers)


def _count(request: Request, code: str) -> None:
    services = getattr(request.app.state, "services", None)
    if services is not None:
        services.metrics.errors.labels(code).inc()


def install_error_handlers(app: FastAPI) -> None:
    """Register the mapping above on `app`: the only exception handlers in the service."""

    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        return error_response(request, exc)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, StarletteHTTPException):
            return _http_exception(request, exc)
        return error_response(request, exc)

    app.add_exception_handler(HuyingError, on_error)
    app.add_exception_handler(ValidationError, on_error)
    app.add_exception_handler(RequestValidationError, on_error)
    app.add_exception_handler(SQLDataError, on_error)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_error)
