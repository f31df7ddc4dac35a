"""HTTP handlers, one module per area; each is thin: validate, authorize, call a service, return."""

from __future__ import annotations

from typing import Any

from serving.schemas import ErrorPublic


def json_body(schema: str, examples: dict[str, Any] | None = None) -> dict[str, Any]:
    """`openapi_extra` documenting a JSON body that the handler reads itself (serving/body.py)."""
    content: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{schema}"}}
    if examples:
        content["examples"] = examples
    return {"requestBody": {"required": True, "content": {"application/json": content}}}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for error statuses, all with the ErrorPublic body."""
    what = {400: "Unreadable body (not UTF-8, not JSON, empty)", 401: "Missing or unknown API key",
            403: "The key's role may not do this", 404: "Not found", 409: "Conflict",
            413: "Body over HUYING_MAX_BODY_BYTES", 422: "Valid JSON of the wrong shape",
            503: "No model loaded, or overloaded (see Retry-After)"}
    return {s: {"model": ErrorPublic, "description": what.get(s, "Error")} for s in statuses}
