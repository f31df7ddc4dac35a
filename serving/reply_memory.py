"""The reply memory: answered messages registered as complaints, each with its official reply
posted as a `replied` case event, so that later complaints about the same event are offered it
(serving/replies.py). It seeds a demo from the Teddy Cup messages with replies
(messages-with-replies-fj4.jsonl: id, user, time, title, text, reply, reply_time).

    messages, bad = answered_messages(rows, zone=ZoneInfo("Asia/Shanghai"))
    report = await seed(services, messages, progress=bar.update)   # a started app's Services

Everything goes through the code paths the HTTP API uses: `ComplaintRegistry.register` (validated
and routed as POST /v1/complaints: stored with its routing log — a `review` decision joins the
review queue —, joined to the hot issue of the earlier complaint it repeats, added to the
similarity index, which is saved with the app and reconciled with the store when a server
starts) and `serving.cases.post` (checked as POST /v1/complaints/{id}/events). Messages are
registered oldest first, so each finds the earlier ones it repeats. Seeding is idempotent: an id
already registered is not registered again, and its reply event (one id per message) is
recorded once, so an interrupted run can simply be run again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from model.errors import Conflict, DataError, InvalidInput, NotFound
from serving import cases
from serving.deps import Services
from serving.errors import validation_detail
from serving.schemas import CaseEventIn, RegisterResponse
from serving.storage import run
from serving.store.tables import Complaint

ID_PREFIX = "fj4-"
ACTOR = "seed:replies"
BATCH = 32  # complaints per registration: one micro-batch of the router
TIME_FORMATS = ("%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M",
                "%Y/%m/%d", "%Y-%m-%d")


@dataclass(frozen=True)
class AnsweredMessage:
    """One message and its reply, ready to seed; `line` is where it is in the file."""

    line: int
    id: str
    text: str
    received_at: datetime
    reply: str
    replied_at: datetime


@dataclass
class SeedReport:
    registered: int = 0
    skipped: int = 0  # already registered before this run
    replies: int = 0  # reply events recorded by this run
    failed: list[tuple[int, str]] = field(default_factory=list)  # (line, why)


def answered_messages(rows: Iterable[tuple[int, Any]], *, zone: tzinfo,
                      prefix: str = ID_PREFIX
                      ) -> tuple[list[AnsweredMessage], list[tuple[int, str]]]:
    """The rows (line, parsed JSON) that make answered messages, and (line, why) for the others.
    Times without a zone are `zone`'s; the text is `title。text`."""
    good, bad = [], []
    seen: dict[str, int] = {}
    for line, row in rows:
        try:
            message = _message(line, row, zone, prefix)
        except ValueError as exc:
            bad.append((line, str(exc)))
            continue
        if message.id in seen:
            bad.append((line, f"id {message.id!r} repeats line {seen[message.id]}"))
            continue
        seen[message.id] = line
        good.append(message)
    return good, bad


def _message(line: int, row: Any, zone: tzinfo, prefix: str) -> AnsweredMessage:
    if not isinstance(row, Mapping):
        raise ValueError("each line must be a JSON object with id, time, title, text, reply, "
                         "reply_time")
    raw_id = row.get("id")
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or not str(raw_id).strip():
        raise ValueError("`id` is missing or empty")
    title, text = (_string(row, k) for k in ("title", "text"))
    if not (title or text):
        raise ValueError(f"message {raw_id}: `title` and `text` are both empty")
    reply = _string(row, "reply")
    if not reply:
        raise ValueError(f"message {raw_id}: `reply` is empty: nothing to offer")
    received, replied = _time(row, "time", zone), _time(row, "reply_time", zone)
    if replied < received:
        raise ValueError(f"message {raw_id}: reply_time {row['reply_time']!r} is before its "
                         f"time {row['time']!r}")
    return AnsweredMessage(line=line, id=f"{prefix}{str(raw_id).strip()}",
                           text=f"{title}。{text}" if title and text else title or text,
                           received_at=received, reply=reply, replied_at=replied)


def _string(row: Mapping[str, Any], key: str) -> str:
    value = row.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"`{key}` must be a string, got {type(value).__name__}")
    return (value or "").strip()


def _time(row: Mapping[str, Any], key: str, zone: tzinfo) -> datetime:
    value = row.get(key)
    text = value.strip() if isinstance(value, str) else ""
    for fmt in TIME_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=zone)
        except ValueError:
            continue
    raise ValueError(f"`{key}` {value!r} is not a time like 2019/4/25 9:32:09")


async def seed(services: Services, messages: Sequence[AnsweredMessage], *, batch: int = BATCH,
               progress: Callable[[int], object] | None = None,
               on_registered: Callable[[Sequence[AnsweredMessage], RegisterResponse], object]
               | None = None) -> SeedReport:
    """Register the messages not registered yet (oldest first) and record their replies.

    `on_registered` sees each registration's messages and response (their duplicates and the
    replies they were offered, from the messages before them). A message's reply is recorded
    after its batch is registered: the later messages of that batch are not offered it."""
    if services.complaints is None or services.store is None:
        raise DataError("seeding needs the store: set HUYING_DATABASE_URL")
    registry, sessions = services.complaints, services.store.sessions
    taxonomy = services.slot.current().bundle.taxonomy
    report = SeedReport()
    ordered = sorted(messages, key=lambda m: (m.received_at, m.id))
    for start in range(0, len(ordered), batch):
        chunk = ordered[start:start + batch]
        known = await run(sessions, _registered, [m.id for m in chunk])
        new = [m for m in chunk if m.id not in known]
        report.skipped += len(chunk) - len(new)
        refused: set[str] = set()
        if new:
            response = await registry.register(
                {"complaints": [{"id": m.id, "text": m.text,
                                 "received_at": m.received_at.isoformat()} for m in new]},
                max_complaints=len(new), max_text_chars=services.settings.max_text_chars,
                request_id=f"seed-{uuid.uuid4().hex}",
                model_version=services.slot.current().version, actor=ACTOR)
            for m, result in zip(new, response.results, strict=True):
                if result.error is not None:
                    refused.add(m.id)
                    report.failed.append((m.line, f"{m.id}: {result.error.message}"))
            report.registered += response.registered
            if on_registered is not None:
                on_registered(new, response)
        for m in chunk:
            if m.id not in refused and await _post_reply(sessions, m, taxonomy, report):
                report.replies += 1
        if progress is not None:
            progress(len(chunk))
    return report


async def _post_reply(sessions: Any, m: AnsweredMessage, taxonomy: Any,
                      report: SeedReport) -> bool:
    """Record the message's reply; True if this call recorded it (False: recorded before, or
    refused, which `report.failed` then says)."""
    try:
        event = CaseEventIn.model_validate({"event_id": f"{m.id}-reply", "kind": "replied",
                                            "at": m.replied_at.isoformat(), "reply": m.reply})
        posted = await run(sessions, cases.post, m.id, event, taxonomy, actor=ACTOR)
    except ValidationError as exc:
        report.failed.append((m.line, f"{m.id}: reply refused: "
                                      f"{validation_detail(exc.errors())['message']}"))
        return False
    except (InvalidInput, Conflict, NotFound) as exc:  # e.g. a case closed by someone else
        report.failed.append((m.line, f"{m.id}: reply refused: {exc}"))
        return False
    return not posted.replayed


def _registered(session: Session, ids: Sequence[str]) -> set[str]:
    return set(session.scalars(select(Complaint.id).where(Complaint.id.in_(list(ids)),
                                                          Complaint.removed.is_(False))))
