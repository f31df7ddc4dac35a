"""Reading a JSON request body: size-limited while streaming, strict UTF-8, clear 4xx errors.

Handlers read their body through `read_json` (not FastAPI's body parsing) so that the API key is
checked before the body is read, a huge body is cut off at the limit instead of buffered whole,
and every failure names the problem: 413 too large, 400 not UTF-8 / not JSON / empty.
The Content-Type is not checked: whatever it says, the body must be JSON (curl -d sends
`application/x-www-form-urlencoded` by default, and intake systems should not fail on that).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from starlette.requests import ClientDisconnect

from serving.errors import BadRequest, PayloadTooLarge


async def read_json(request: Request, max_bytes: int) -> Any:
    """The parsed JSON body of `request`, at most `max_bytes` long."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BadRequest(f"Content-Length {declared[:40]!r} is not a number",
                             field="Content-Length", code="invalid_header") from None
        if size > max_bytes:
            raise _too_large(size, max_bytes)
    chunks, total = [], 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > max_bytes:  # Content-Length may be absent (chunked) or wrong
                raise _too_large(None, max_bytes)
            chunks.append(chunk)
    except ClientDisconnect:
        raise BadRequest("the client disconnected while sending the body", field="body",
                         code="client_disconnected") from None
    body = b"".join(chunks)
    if not body.strip():
        raise BadRequest('the body is empty; send JSON such as {"complaints": '
                         '[{"id": "1", "text": "..."}]}', field="body", code="empty_body")
    try:
        text = body.decode("utf-8-sig")  # tolerate a byte-order mark, as Windows tools add one
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the body is not valid UTF-8 (byte {body[exc.start]:#04x} at position "
                         f"{exc.start}); encode the JSON as UTF-8", field="body",
                         code="invalid_utf8") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc.msg} at line {exc.lineno}, column "
                         f"{exc.colno}", field="body", code="invalid_json") from None
    except (ValueError, RecursionError) as exc:  # integers over 4300 digits, nesting too deep
        raise BadRequest(f"the body is not JSON this server accepts: {exc}", field="body",
                         code="invalid_json") from None


def _too_large(size: int | None, limit: int) -> PayloadTooLarge:
    what = f"the body has {size} bytes" if size is not None else "the body is larger"
    return PayloadTooLarge(f"{what}; the limit is {limit} bytes (HUYING_MAX_BODY_BYTES): send "
                           "fewer complaints per request", field="body")
