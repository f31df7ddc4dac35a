"""The registry behind /v1/complaints: register (validate and route as /v1/route does, find
duplicates among the complaints registered before, store, log the routing, join the hot issue of
the best same-event duplicate or open one, index, offer the replies given to the same event),
find similar complaints, remove. The store is the truth; the similarity index
(serving/duplicates.py) follows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from serving.duplicates import DuplicatePolicy, DuplicateService, entry_of, query_of
from serving.errors import RoutingFailed
from serving.metrics import Metrics
from serving.routing import Routed, RoutingService
from serving.schemas import (
    ComplaintIn,
    ComplaintRemovedPublic,
    DuplicatePublic,
    ErrorDetail,
    RegisterResponse,
    SimilarResponse,
)
from serving.storage import run
from serving.store import service as store
from serving.store.tables import Complaint

log = logging.getLogger("huying.serving")


class ComplaintRegistry:
    """Registered complaints: the store (truth) and the similarity index (search), together."""

    def __init__(self, sessions: sessionmaker[Session], duplicates: DuplicateService,
                 routing: RoutingService):
        self.sessions = sessions
        self.duplicates = duplicates
        self.routing = routing
        self.metrics: Metrics = routing.metrics

    async def register(self, body: Any, *, max_complaints: int, max_text_chars: int,
                       request_id: str, model_version: str, actor: str) -> RegisterResponse:
        """Validate and route each complaint as /v1/route does, find its duplicates among those
        registered before it, then store the routed ones with their routing log and review items
        (one transaction; a 503 if it cannot be written), index them and add the replies of
        their same-event duplicates (serving/replies.py). Items that fail validation, routing,
        or are already registered get an error in their result; the others are registered."""
        batch = await self.routing.route_items(body, max_complaints=max_complaints,
                                               max_text_chars=max_text_chars)
        results, routed = batch.results, batch.routed
        repeats: dict[str, str | None] = {}  # the best same-event match: its hot issue is joined
        if routed:
            found = await asyncio.to_thread(self._find, routed)
            for r, dups in zip(routed, found, strict=True):
                results[r.index].duplicates = dups
                repeats[r.complaint.id] = next((d.id for d in dups if d.same_event), None)
        registration = await run(self.sessions, self._store, routed, repeats, request_id,
                                 actor) if routed else store.Registration(registered=[], taken=[])
        taken = set(registration.taken)
        for r in routed:
            if r.complaint.id in taken:
                self._fail(results[r.index], "already_registered", f"complaints[{r.index}].id",
                           f"complaints[{r.index}].id: complaint {r.complaint.id!r} is already "
                           "registered; DELETE /v1/complaints/{id} first or use a new id")
        stored = [r for r in routed if r.complaint.id not in taken]
        self.duplicates.add([entry_of(row, r.routing) for row, r
                             in zip(registration.registered, stored, strict=True)])
        # a complaint of this request that was not registered is nobody's duplicate
        for result in results:
            result.duplicates = [d for d in result.duplicates if d.id not in taken]
        await self.routing.add_replies(batch)
        n_ok = sum(r.error is None for r in results)
        return RegisterResponse(request_id=request_id,
                                model_version=batch.model_version(model_version),
                                routed=n_ok, errors=len(results) - n_ok,
                                registered=len(stored), results=results)

    def _find(self, routed: Sequence[Routed]) -> list[list[DuplicatePublic]]:
        """Duplicates among the complaints registered before (and earlier in this request)."""
        try:
            return self.duplicates.find([r.complaint for r in routed],
                                        [r.routing for r in routed], within_batch=True)
        except Exception:  # duplicates are a hint: their failure must not stop registration
            log.exception("duplicate search failed while registering; no duplicates returned")
            self.metrics.errors.labels("duplicates_failed").inc()
            return [[] for _ in routed]

    async def similar(self, complaint_id: str, *, policy: DuplicatePolicy) -> SimilarResponse:
        """Registered complaints similar to a registered one (never itself), received in the
        window before or after it."""
        row = await run(self.sessions, store.get_complaint, complaint_id)
        [outcome] = await self.routing.batcher.route([row.text])
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
        row = await run(self.sessions, self._remove, complaint_id, actor)
        self.duplicates.remove([row.id])
        return ComplaintRemovedPublic(id=row.id, removed=True, removed_at=row.removed_at)

    # the store, in worker threads
    @staticmethod
    def _store(session: Session, routed: Sequence[Routed], repeats: dict[str, str | None],
               request_id: str, actor: str) -> store.Registration:
        """Complaints, their routing log, review items and hot issues: one transaction (all or
        nothing)."""
        def label(r: Routed, head: str) -> str | None:
            prediction = r.routing.heads.get(head)
            return None if prediction is None else prediction.label

        return store.register_routed(session, request_id, [
            (store.NewComplaint(id=r.complaint.id, text=r.complaint.text,
                                channel=r.complaint.channel, location=r.complaint.location,
                                received_at=r.complaint.received_at,
                                category=label(r, "category"),
                                subcategory=label(r, "subcategory"),
                                department=label(r, "department"),
                                repeats=repeats.get(r.complaint.id),
                                time_limit=r.routing.duty.time_limit or None
                                if r.routing.duty else None), r.logged())
            for r in routed], actor=actor, model_version=routed[0].routing.model_version)

    @staticmethod
    def _remove(session: Session, complaint_id: str, actor: str) -> Complaint:
        store.get_complaint(session, complaint_id)  # NotFound also when already removed
        return store.remove_complaint(session, complaint_id, actor=actor)

    def _fail(self, result: Any, code: str, field_: str, message: str) -> None:
        """Turn a routed result into an error (the complaint is not registered)."""
        result.error = ErrorDetail(code=code, field=field_, message=message)
        result.routing = None
        result.duplicates = []
        self.metrics.errors.labels(code).inc()
