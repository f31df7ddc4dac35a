"""Instant replies (秒回): a routed complaint that repeats an answered event is offered the reply
already given, with its quality, so an officer can answer at once.

For each routed complaint, from its `same_event` duplicates (serving/duplicates.py), best first:

- `same_event`: the duplicate's own latest reply (a `replied` case event), if it has one;
- `hot_issue`: the latest replies of the other members of the duplicate's hot issue (a complaint
  joins the issue of the registered complaint it repeats; officers merge and split them), latest
  first.

Duplicates that are only similar (below the same-event threshold) offer nothing: a reply to
another event would be a wrong answer. A source complaint is offered once (through the best
duplicate, its own reply before its issue's), and so is a reply text (departments often answer a
hot issue's complaints with one text). Suggestions are ranked by the similarity of the
duplicate they came through, then `same_event` before `hot_issue`, then the latest reply; at
most MAX_REPLIES. Each carries its quality (model/reply_quality.py) as an answer to *this*
complaint: relevance to its text, and the source case's timeliness.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.orm import Session, sessionmaker

from model.errors import NotFound
from model.reply_quality import assess
from serving.schemas import DuplicatePublic, ReplyPublic, ReplyQualityPublic
from serving.store import service as store

MAX_REPLIES = 3


@dataclass(frozen=True)
class _Candidate:
    reply: store.StoredReply
    similarity: float
    via: Literal["same_event", "hot_issue"]

    def rank(self) -> tuple[float, bool, float, str]:
        return (-self.similarity, self.via != "same_event", -self.reply.replied_at.timestamp(),
                self.reply.complaint_id)


class ReplyFinder:
    """Reply suggestions from the store, for complaints and their duplicates."""

    def __init__(self, sessions: sessionmaker[Session], *, limit: int = MAX_REPLIES):
        self.sessions = sessions
        self.limit = limit

    def find(self, texts: Sequence[str],
             duplicates: Sequence[Sequence[DuplicatePublic]]) -> list[list[ReplyPublic]]:
        """Suggestions per complaint (its text and its duplicates), in order; one store read."""
        ids = sorted({d.id for dups in duplicates for d in dups if d.same_event})
        if not ids:
            return [[] for _ in texts]
        with self.sessions() as session:
            found = store.find_replies(session, ids)
        return [suggest(text, dups, found, limit=self.limit)
                for text, dups in zip(texts, duplicates, strict=True)]


def is_registered(session: Session, complaint_id: str) -> bool:
    try:
        store.get_complaint(session, complaint_id)
    except NotFound:
        return False
    return True


def for_registered(session: Session, complaint_id: str, text: str, *,
                   limit: int = MAX_REPLIES) -> list[ReplyPublic]:
    """The replies given to other complaints of a registered complaint's hot issue (it joined
    the issue of the complaint it repeats): what its review item offers the officer."""
    try:
        complaint = store.get_complaint(session, complaint_id)
    except NotFound:  # removed since it was queued
        return []
    if complaint.issue_id is None:
        return []
    found = store.issue_replies(session, [complaint.issue_id]).get(complaint.issue_id, [])
    out: list[ReplyPublic] = []
    seen: set[str] = set()
    for r in found:
        key = "".join(unicodedata.normalize("NFKC", r.reply).split())
        if r.complaint_id == complaint_id or key in seen:
            continue
        seen.add(key)
        out.append(_public(text, r, None, "hot_issue"))
        if len(out) >= limit:
            break
    return out


def _public(text: str, r: store.StoredReply, similarity: float | None,
            via: Literal["same_event", "hot_issue"]) -> ReplyPublic:
    quality = assess(text, r.reply, message_time=r.reported_at, reply_time=r.replied_at)
    return ReplyPublic(reply=r.reply, source_complaint_id=r.complaint_id, replied_at=r.replied_at,
                       department=r.department, similarity=similarity, via=via,
                       quality=ReplyQualityPublic(**quality.to_dict()))


def suggest(text: str, duplicates: Sequence[DuplicatePublic], found: store.Replies, *,
            limit: int = MAX_REPLIES) -> list[ReplyPublic]:
    """The replies `text` may be answered with, from its duplicates and what the store holds."""
    same_event = [d for d in duplicates if d.same_event]
    candidates: dict[str, _Candidate] = {}
    for d in same_event:  # their own replies first: a source is offered via same_event if it can
        own = found.by_complaint.get(d.id)
        if own is not None and d.id not in candidates:
            candidates[d.id] = _Candidate(own, d.similarity, "same_event")
    for d in same_event:
        issue = found.issue_of.get(d.id)
        for r in found.by_issue.get(issue, []) if issue is not None else []:
            if r.complaint_id not in candidates:
                candidates[r.complaint_id] = _Candidate(r, d.similarity, "hot_issue")
    out: list[ReplyPublic] = []
    seen: set[str] = set()
    for c in sorted(candidates.values(), key=_Candidate.rank):
        key = "".join(unicodedata.normalize("NFKC", c.reply.reply).split())
        if key in seen:
            continue
        seen.add(key)
        out.append(_public(text, c.reply, c.similarity, c.via))
        if len(out) >= limit:
            break
    return out
