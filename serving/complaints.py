"""The registry behind /v1/complaints: register (validate and route as /v1/route does, find
duplicates among the complaints registered before, store, log the routing, index), find similar
complaints, remove. The store is the truth; the similarity index (serving/duplicates.py) follows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from model.router import Routing
from serving.batching import MicroBatcher
from serving.duplicates import DuplicatePolicy, DuplicateService, entry_of, query_of
from serving.errors import RoutingFailed, StoreUnavailable
from serving.metrics import Metrics
from serving.routing import RoutingService
from serving.schemas import (
    ComplaintIn,
    ComplaintRemovedPublic,
    DuplicatePublic,
    ErrorDetail,
    RegisterResponse,
    SimilarResponse,
)
from serving.store import service as store
from serving.store.tables import Complaint

log = logging.getLogger("huying.serving")
T = TypeVar("T")


async def _in_thread(fn: Callable[..., T], /, *args: Any) -> T:
    """A store call in a worker thread; an unreachable or locked database is a 503."""
    try:
        return await asyncio.to_thread(fn, *args)
    except OperationalError as exc:
        log.error("store unavailable: %s", exc)
        raise StoreUnavailable("the database is unavailable or busy; retry in a moment") from exc


class _Capture:
    """A DuplicateFinder that remembers what was routed, so the registry can store and index it."""

    def __init__(self, duplicates: DuplicateService, metrics: Metrics):
        self.duplicates = duplicates
        self.metrics = metrics
        self.routed: dict[str, tuple[ComplaintIn, Routing]] = {}

    def find(self, complaints: Sequence[ComplaintIn],
             routings: Sequence[Routing]) -> list[list[DuplicatePublic]]:
        self.routed = {c.id: (c, r) for c, r in zip(complaints, routings, strict=True)}
        try:  # found before the complaints themselves are added
            return self.duplicates.find(complaints, routings, within_batch=True)
        except Exception:  # duplicates are a hint: their failure must not stop registration
            log.exception("duplicate search failed while registering; no duplicates returned")
            self.metrics.errors.labels("duplicates_failed").inc()
            return [[] for _ in complaints]


class ComplaintRegistry:
    """Registered complaints: the store (truth) and the similarity index (search), together."""

    def __init__(self, sessions: sessionmaker[Session], duplicates: DuplicateService,
                 metrics: Metrics):
        self.sessions = sessions
        self.duplicates = duplicates
        self.metrics = metrics

    async def register(self, body: Any, *, batcher: MicroBatcher, max_complaints: int,
                       max_text_chars: int, request_id: str, model_version: str,
                       actor: str) -> RegisterResponse:
        """Validate and route each complaint as /v1/route does, find its duplicates among those
        registered before it, then store the routed ones (one transaction), log their routings
        and index them. Items that fail validation, routing, or are already registered get an
        error in their result; the others are registered."""
        capture = _Capture(self.duplicates, self.metrics)
        routed = await RoutingService(batcher, self.metrics, capture).route(
            body, max_complaints=max_complaints, max_text_chars=max_text_chars,
            request_id=request_id, model_version=model_version)
        results = routed.results
        candidates = [i for i, r in enumerate(results)
                      if r.routing is not None and r.id in capture.routed]
        chosen = [capture.routed[str(results[i].id)] for i in candidates]
        registration = await _in_thread(self._store, chosen, request_id, actor) if chosen \
            else store.Registration(registered=[], taken=[])
        taken = set(registration.taken)
        for i in candidates:
            if results[i].id in taken:
                self._fail(results[i], "already_registered", f"complaints[{i}].id",
                           f"complaints[{i}].id: complaint {results[i].id!r} is already "
                           "registered; DELETE /v1/complaints/{id} first or use a new id")
        stored = [(c, r) for c, r in chosen if c.id not in taken]
        self.duplicates.add([entry_of(row, routing) for row, (_, routing)
                             in zip(registration.registered, stored, strict=True)])
        # a complaint of this request that was not registered is nobody's duplicate
        unregistered = set(capture.routed) - {c.id for c, _ in stored}
        for r in results:
            r.duplicates = [d for d in r.duplicates if d.id not in unregistered]
        n_ok = sum(r.error is None for r in results)
        return RegisterResponse(request_id=request_id, model_version=routed.model_version,
                                routed=n_ok, errors=len(results) - n_ok,
                                registered=len(stored), results=results)

    async def similar(self, complaint_id: str, *, batcher: MicroBatcher,
                      policy: DuplicatePolicy) -> SimilarResponse:
        """Registered complaints similar to a registered one (never itself), received in the
        window before or after it."""
        row = await _in_thread(self._get, complaint_id)
        [outcome] = await batcher.route([row.text])
        if isinstance(outcome, RoutingFailed):
            raise outcome
        query = replace(query_of(ComplaintIn(id=row.id, text=row.text, channel=row.channel,
                                             location=row.location), outcome),
                        time=row.received_at or row.registered_at)
        [found] = await asyncio.to_thread(self.duplicates.search, [query], policy,
                                          both_ways=True)
        return SimilarResponse(id=row.id, model_version=outcome.model_version,
                               window_days=policy.window.total_seconds() / 86400,
                               duplicates=found)

    async def remove(self, complaint_id: str, *, actor: str) -> ComplaintRemovedPublic:
        """Mark the complaint removed in the store, then drop it from the index."""
        row = await _in_thread(self._remove, complaint_id, actor)
        self.duplicates.remove([row.id])
        return ComplaintRemovedPublic(id=row.id, removed=True, removed_at=row.removed_at)

    # the store, in worker threads
    def _store(self, chosen: Sequence[tuple[ComplaintIn, Routing]], request_id: str,
               actor: str) -> store.Registration:
        """Complaints, their routing log and review items: one transaction (all or nothing)."""
        with self.sessions() as session:
            return store.register_routed(session, request_id, [
                (store.NewComplaint(id=c.id, text=c.text, channel=c.channel,
                                    location=c.location, received_at=c.received_at),
                 store.RoutedText(text=c.text, routing=r, complaint_id=c.id, channel=c.channel,
                                  location=c.location, received_at=c.received_at))
                for c, r in chosen], actor=actor, model_version=chosen[0][1].model_version)

    def _get(self, complaint_id: str) -> Complaint:
        with self.sessions() as session:
            return store.get_complaint(session, complaint_id)

    def _remove(self, complaint_id: str, actor: str) -> Complaint:
        with self.sessions() as session:
            store.get_complaint(session, complaint_id)  # NotFound also when already removed
            return store.remove_complaint(session, complaint_id, actor=actor)


    def _fail(self, result: Any, code: str, field_: str, message: str) -> None:
        """Turn a routed result into an error (the complaint is not registered)."""
        result.error = ErrorDetail(code=code, field=field_, message=message)
        result.routing = None
        result.duplicates = []
        self.metrics.errors.labels(code).inc()
