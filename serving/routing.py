"""The routing service behind POST /v1/route and POST /v1/complaints: validate each complaint,
micro-batch, log, assemble.

Semantics of a batch request (documented in the OpenAPI schema too):
- The body must be an object with a `complaints` list of 1 to HUYING_MAX_COMPLAINTS items;
  anything else is refused whole (400 unreadable, 413 too large, 422 wrong shape).
- Each item is validated on its own. A bad item (missing id, blank or too long text, wrong
  types, an id repeated in the request) gets `{"index", "id", "error"}` in its result, the good
  items are routed: HTTP 200 with `errors` counting the bad ones. Results keep request order.
- If the model fails on one complaint, only that item carries a `routing_failed` error.
- Every routed complaint is logged in the store (those decided `review` join the review queue)
  before the response is sent, exactly as the response shows it (one serialiser:
  `Routing.to_dict()`); if the log cannot be written the request fails with 503 (serving/storage.py):
  a `review` that no officer would ever see is worse than a retry.

Extension points: `duplicates`, a DuplicateFinder (the similarity index) that fills each result's
`duplicates`; `replies`, a ReplyFinder (serving/replies.py, from the store) that fills each
result's `replies` with the answers given to the same event (秒回). An exception in either is
logged and leaves them empty.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from model.router import Routing
from serving.batching import MicroBatcher
from serving.errors import InvalidBody, RoutingFailed, validation_detail
from serving.metrics import Metrics
from serving.replies import ReplyFinder
from serving.schemas import (
    ComplaintIn,
    DuplicatePublic,
    ErrorDetail,
    RouteResponse,
    RouteResult,
    RoutingPublic,
)
from serving.storage import run
from serving.store import service as store

log = logging.getLogger("huying.serving")
# The actor of the audit entries written when the model's decision puts an item in the queue.
ROUTER_ACTOR = "router"


class DuplicateFinder(Protocol):
    """Finds registered complaints that each routed complaint repeats (the similarity index).

    Called in a worker thread with the valid complaints and their routings (each Routing has the
    model version and the embedding); returns one list of duplicates per complaint, in order.
    """

    def find(self, complaints: Sequence[ComplaintIn],
             routings: Sequence[Routing]) -> Sequence[Sequence[DuplicatePublic]]: ...


@dataclass(frozen=True)
class Routed:
    """One valid complaint of a request and its routing; `index` is its place in the request."""

    index: int
    complaint: ComplaintIn
    routing: Routing

    def logged(self) -> store.RoutedText:
        """What the store logs for it."""
        c = self.complaint
        return store.RoutedText(text=c.text, routing=self.routing.to_dict(), complaint_id=c.id,
                                channel=c.channel, location=c.location,
                                received_at=c.received_at)


@dataclass
class RoutedBatch:
    """A request's results in request order (an error or a routing each) and its routed items."""

    results: list[RouteResult]
    routed: list[Routed]

    def model_version(self, default: str) -> str:
        versions = {r.routing.model_version for r in self.routed}
        return versions.pop() if len(versions) == 1 else default


class RoutingService:
    """Validates and routes a request's complaints; `route` also logs them (with `sessions`),
    finds their duplicates (with `duplicates`) and the replies they may be offered (with
    `replies`: by default read from the store of `sessions`)."""

    def __init__(self, batcher: MicroBatcher, metrics: Metrics,
                 duplicates: DuplicateFinder | None = None,
                 sessions: sessionmaker[Session] | None = None,
                 replies: ReplyFinder | None = None):
        self.batcher = batcher
        self.metrics = metrics
        self.duplicates = duplicates
        self.sessions = sessions
        self.replies = replies if replies is not None or sessions is None \
            else ReplyFinder(sessions)

    async def route(self, body: Any, *, max_complaints: int, max_text_chars: int,
                    request_id: str, model_version: str) -> RouteResponse:
        """POST /v1/route: validate, route, log, add duplicates."""
        batch = await self.route_items(body, max_complaints=max_complaints,
                                       max_text_chars=max_text_chars)
        if batch.routed and self.sessions is not None:
            await run(self.sessions, store.log_routing, request_id,
                      [r.logged() for r in batch.routed], actor=ROUTER_ACTOR)
        if batch.routed and self.duplicates is not None:
            await self._add_duplicates(self.duplicates, batch)
            await self.add_replies(batch)
        return RouteResponse(request_id=request_id, model_version=batch.model_version(model_version),
                             routed=len(batch.routed), errors=len(batch.results) - len(batch.routed),
                             results=batch.results)

    async def route_items(self, body: Any, *, max_complaints: int,
                          max_text_chars: int) -> RoutedBatch:
        """Validate each item and route the valid ones (nothing logged): the shared first half of
        /v1/route and /v1/complaints. Counts routings and item errors in the metrics."""
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

        routed: list[Routed] = []
        if valid:
            outcomes = await self.batcher.route([c.text for _, c in valid])
            for (i, complaint), outcome in zip(valid, outcomes, strict=True):
                if isinstance(outcome, RoutingFailed):
                    results[i].error = ErrorDetail(code=outcome.code, message=str(outcome),
                                                   field=f"complaints[{i}].text")
                else:
                    results[i].routing = RoutingPublic.of(outcome)
                    routed.append(Routed(i, complaint, outcome))
        self.metrics.observe_routings(r.routing for r in routed)
        for result in results:
            if result.error is not None:
                self.metrics.errors.labels(result.error.code).inc()
        return RoutedBatch(results=results, routed=routed)

    async def _add_duplicates(self, finder: DuplicateFinder, batch: RoutedBatch) -> None:
        try:
            found = await asyncio.to_thread(finder.find, [r.complaint for r in batch.routed],
                                            [r.routing for r in batch.routed])
            for r, dups in zip(batch.routed, found, strict=True):
                batch.results[r.index].duplicates = list(dups)
        except Exception:  # an optional extension must not cost the caller its routings
            log.exception("duplicate search failed; results carry no duplicates")
            self.metrics.errors.labels("duplicates_failed").inc()


    async def add_replies(self, batch: RoutedBatch) -> None:
        """Fill `replies` of each routed result without an error from its duplicates (found
        before); a failure is logged and leaves them empty."""
        if self.replies is None:
            return
        routed = [r for r in batch.routed if batch.results[r.index].error is None]
        if not any(d.same_event for r in routed for d in batch.results[r.index].duplicates):
            return
        try:
            found = await asyncio.to_thread(self.replies.find, [r.complaint.text for r in routed],
                                            [batch.results[r.index].duplicates for r in routed])
            for r, replies in zip(routed, found, strict=True):
                batch.results[r.index].replies = list(replies)
        except Exception:  # a suggestion must not cost the caller its routings
            log.exception("reply lookup failed; results carry no replies")
            self.metrics.errors.labels("replies_failed").inc()


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
