"""The routing service behind POST /v1/route: validate each complaint, micro-batch, assemble.

Semantics of a batch request (documented in the OpenAPI schema too):
- The body must be an object with a `complaints` list of 1 to HUYING_MAX_COMPLAINTS items;
  anything else is refused whole (400 unreadable, 413 too large, 422 wrong shape).
- Each item is validated on its own. A bad item (missing id, blank or too long text, wrong
  types, an id repeated in the request) gets `{"index", "id", "error"}` in its result, the good
  items are routed: HTTP 200 with `errors` counting the bad ones. Results keep request order.
- If the model fails on one complaint, only that item carries a `routing_failed` error.

Extension point: `duplicates`, a DuplicateFinder (the similarity index) that fills each result's
`duplicates`. None by default, and then every `duplicates` is [].
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from pydantic import ValidationError

from model.router import Routing
from serving.batching import MicroBatcher
from serving.errors import InvalidBody, RoutingFailed, validation_detail
from serving.metrics import Metrics
from serving.schemas import (
    ComplaintIn,
    DuplicatePublic,
    ErrorDetail,
    RouteResponse,
    RouteResult,
    RoutingPublic,
)

log = logging.getLogger("huying.serving")


class DuplicateFinder(Protocol):
    """Finds registered complaints that each routed complaint repeats (the similarity index).

    Called in a worker thread with the valid complaints and their routings (each Routing has the
    model version and the embedding); returns one list of duplicates per complaint, in order.
    It may also register the complaints. An exception is logged and leaves `duplicates` empty.
    """

    def find(self, complaints: Sequence[ComplaintIn],
             routings: Sequence[Routing]) -> Sequence[Sequence[DuplicatePublic]]: ...


class RoutingService:
    """Turns a parsed /v1/route body into a RouteResponse."""

    def __init__(self, batcher: MicroBatcher, metrics: Metrics,
                 duplicates: DuplicateFinder | None = None):
        self.batcher = batcher
        self.metrics = metrics
        self.duplicates = duplicates

    async def route(self, body: Any, *, max_complaints: int, max_text_chars: int,
                    request_id: str, model_version: str) -> RouteResponse:
        raw_items = _complaints(body, max_complaints)
        results = [RouteResult(index=i) for i in range(len(raw_items))]
        valid: list[tuple[int, ComplaintIn]] = []
        seen: set[str] = set()
        context = {"max_text_chars": max_text_chars}
        for i, raw in enumerate(raw_items):
            results[i].id = _raw_id(raw)
            try:
                complaint = ComplaintIn.model_validate(raw, context=context)
            except ValidationError as exc:
                results[i].error = _item_error(i, validation_detail(exc.errors()))
                continue
            if complaint.id in seen:
                results[i].error = ErrorDetail(
                    code="duplicate_id", field=f"complaints[{i}].id",
                    message=f"complaints[{i}].id: id {complaint.id!r} appears earlier in this "
                            "request; give each complaint its own id")
                continue
            seen.add(complaint.id)
            valid.append((i, complaint))

        routed: list[tuple[int, ComplaintIn, Routing]] = []
        if valid:
            outcomes = await self.batcher.route([c.text for _, c in valid])
            for (i, complaint), outcome in zip(valid, outcomes, strict=True):
                if isinstance(outcome, RoutingFailed):
                    results[i].error = ErrorDetail(code=outcome.code, message=str(outcome),
                                                   field=f"complaints[{i}].text")
                else:
                    results[i].routing = RoutingPublic.of(outcome)
                    routed.append((i, complaint, outcome))
        if routed and self.duplicates is not None:
            await self._add_duplicates(routed, results)

        self.metrics.observe_routings(r for _, _, r in routed)
        for result in results:
            if result.error is not None:
                self.metrics.errors.labels(result.error.code).inc()
        versions = {r.model_version for _, _, r in routed}
        return RouteResponse(
            request_id=request_id,
            model_version=versions.pop() if len(versions) == 1 else model_version,
            routed=len(routed), errors=len(results) - len(routed), results=results)

    async def _add_duplicates(self, routed: list[tuple[int, ComplaintIn, Routing]],
                              results: list[RouteResult]) -> None:
        finder = self.duplicates
        if finder is None:
            return
        try:
            found = await asyncio.to_thread(finder.find, [c for _, c, _ in routed],
                                            [r for _, _, r in routed])
            for (i, _, _), dups in zip(routed, found, strict=True):
                results[i].duplicates = list(dups)
        except Exception:  # an optional extension must not cost the caller its routings
            log.exception("duplicate search failed; results carry no duplicates")
            self.metrics.errors.labels("duplicates_failed").inc()


def _complaints(body: Any, limit: int) -> list[Any]:
    if not isinstance(body, dict):
        raise InvalidBody(f"the body must be a JSON object like {{\"complaints\": [{{\"id\": "
                          f"\"1\", \"text\": \"...\"}}]}}, got a JSON {_json_type(body)}",
                          field="body")
    if "complaints" not in body:
        raise InvalidBody('the body has no "complaints" list; send {"complaints": [{"id": "1", '
                          '"text": "..."}]}', field="complaints", code="missing_field")
    items = body["complaints"]
    if not isinstance(items, list):
        raise InvalidBody(f"complaints must be a list of complaint objects, got a JSON "
                          f"{_json_type(items)}", field="complaints", code="wrong_type")
    if not items:
        raise InvalidBody(f"complaints is empty; send 1 to {limit} complaints",
                          field="complaints", code="no_complaints")
    if len(items) > limit:
        raise InvalidBody(f"{len(items)} complaints in one request; the limit is {limit} "
                          "(HUYING_MAX_COMPLAINTS): split them over several requests",
                          field="complaints", code="too_many_complaints")
    return items


def _raw_id(raw: Any) -> str | None:
    # Echo the caller's id even when the item is invalid, so they can match the error to it.
    value = raw.get("id") if isinstance(raw, dict) else None
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return text[:128]


def _item_error(index: int, detail: dict[str, Any]) -> ErrorDetail:
    inner = detail.get("field")
    field = f"complaints[{index}]" + ("" if inner in (None, "body") else f".{inner}")
    message = str(detail["message"])
    if inner and message.startswith(f"{inner}: "):
        message = message[len(inner) + 2:]
    if detail["code"] == "wrong_type" and inner in (None, "body"):
        message = 'each complaint must be a JSON object like {"id": "1", "text": "..."}'
    return ErrorDetail(code=str(detail["code"]), field=field, message=f"{field}: {message}")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array",
            dict: "object"}.get(type(value), type(value).__name__)
