"""Idempotency keys: a write retried with the same `Idempotency-Key` is answered, not repeated.

A client that sent a write and got no answer (a replica killed, a timeout) cannot know whether it
happened. With a key it resends the same request, to any replica: if the first one committed, it
gets the first answer again; if not, the write happens now. As in Stripe's API:

- a key belongs to one caller (the API key's id) and one request: the same key with another
  method, path or body is refused (InvalidInput), never silently answered;
- the key's row is inserted *before* the write, in the write's own transaction, and filled with
  the answer after it: a crash keeps both or neither, and a concurrent retry waits on the row
  (PostgreSQL's unique index; SQLite's single writer) and then replays the committed answer;
- an error is not remembered (nothing was written), nor a write that wrote nothing and answers
  None (claim-next with no free item), so a retry runs again;
- keys older than `KEEP` are forgotten: a key reused after that is a new request.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from model.errors import InvalidInput
from serving.store.audit import current_time
from serving.store.db import write_transaction
from serving.store.tables import IdempotencyKey

KEEP = timedelta(hours=24)


@dataclass(frozen=True)
class RequestKey:
    """One caller's key for one request (`request`: method and path; `body`: its JSON)."""

    actor: str
    key: str
    request: str
    body: Any

    @property
    def fingerprint(self) -> str:
        canonical = json.dumps(self.body, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()


def once(session: Session, rk: RequestKey, write: Callable[[Session], dict[str, Any] | None],
         *, now: datetime | None = None) -> tuple[dict[str, Any] | None, bool]:
    """`write(session)`'s answer, or the stored answer of the first request with this key:
    (answer, replayed). `write` runs inside this transaction and returns a JSON object, or None
    when it wrote nothing."""
    now = current_time(now)
    for attempt in (1, 2):
        try:
            with write_transaction(session):
                row = session.get(IdempotencyKey, (rk.actor, rk.key))
                if row is not None and row.created_at < now - KEEP:
                    session.delete(row)
                    session.flush()
                    row = None
                if row is not None:
                    return _replay(row, rk), True
                session.add(IdempotencyKey(actor=rk.actor, key=rk.key, request=rk.request,
                                           fingerprint=rk.fingerprint, created_at=now))
                session.flush()  # waits here while a concurrent request holds the same key
                answer = write(session)
                mine = (IdempotencyKey.actor == rk.actor, IdempotencyKey.key == rk.key)
                if answer is None:
                    session.execute(delete(IdempotencyKey).where(*mine))
                else:
                    session.execute(update(IdempotencyKey).where(*mine).values(answer=answer))
                session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at
                                                             < now - KEEP))
                return answer, False
        except IntegrityError:
            if attempt == 2:
                raise
            # a concurrent request with this key committed first: replay its answer
    raise AssertionError("unreachable")


def _replay(row: IdempotencyKey, rk: RequestKey) -> dict[str, Any]:
    if row.request != rk.request or row.fingerprint != rk.fingerprint:
        raise InvalidInput(f"Idempotency-Key {rk.key!r} was used for another request "
                           f"({row.request}); use a new key for a new request",
                           field="Idempotency-Key")
    if row.answer is None:  # only possible if a write returned nothing: a bug, not a retry
        raise InvalidInput(f"Idempotency-Key {rk.key!r} has no stored answer",
                           field="Idempotency-Key")
    return row.answer

