"""Early warnings in the store: added once per (kind, key, day), listed, acknowledged (audited)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from model.errors import Conflict, NotFound
from serving.store.audit import current_time, record_audit
from serving.store.db import write_transaction
from serving.store.tables import EarlyWarning


@dataclass(frozen=True)
class NewWarning:
    kind: str
    key: str
    day: date
    observed: float
    evidence: dict[str, Any]
    department: str | None = None
    expected: float | None = None
    p_value: float | None = None


def add_warnings(session: Session, new: Sequence[NewWarning], *, actor: str,
                 now: datetime | None = None) -> list[EarlyWarning]:
    """Store the warnings not stored yet (all in one transaction); the ones added."""
    now = current_time(now)
    added = []
    with write_transaction(session):
        for w in new:
            if session.scalars(select(EarlyWarning.id).where(
                    EarlyWarning.kind == w.kind, EarlyWarning.key == w.key,
                    EarlyWarning.day == w.day)).first() is not None:
                continue
            row = EarlyWarning(kind=w.kind, key=w.key, day=w.day, department=w.department,
                               observed=w.observed, expected=w.expected, p_value=w.p_value,
                               evidence=w.evidence, created_at=now)
            session.add(row)
            session.flush()
            record_audit(session, actor, "warning.raised", row, None, warning_state(row), now)
            added.append(row)
    return added


def list_warnings(session: Session, since: date, until: date, *, kind: str | None = None,
                  department: str | None = None, status: str = "all") -> list[EarlyWarning]:
    """Warnings about days in [since, until], newest day first."""
    query = select(EarlyWarning).where(EarlyWarning.day >= since, EarlyWarning.day <= until)
    if kind:
        query = query.where(EarlyWarning.kind == kind)
    if department:
        query = query.where(EarlyWarning.department == department)
    if status == "open":
        query = query.where(EarlyWarning.acknowledged_at.is_(None))
    elif status == "acknowledged":
        query = query.where(EarlyWarning.acknowledged_at.is_not(None))
    return list(session.scalars(query.order_by(EarlyWarning.day.desc(), EarlyWarning.id)))


def acknowledge(session: Session, warning_id: int, *, actor: str, note: str | None = None,
                now: datetime | None = None) -> EarlyWarning:
    now = current_time(now)
    with write_transaction(session):
        row = session.scalars(select(EarlyWarning).where(EarlyWarning.id == warning_id)
                              .with_for_update()).first()
        if row is None:
            raise NotFound(f"warning {warning_id} does not exist")
        if row.acknowledged_at is not None:
            raise Conflict(f"warning {warning_id} was acknowledged by {row.acknowledged_by} at "
                           f"{row.acknowledged_at.isoformat()}")
        before = warning_state(row)
        row.acknowledged_by, row.acknowledged_at, row.note = actor, now, note
        session.flush()
        record_audit(session, actor, "warning.acknowledged", row, before, warning_state(row), now)
        return row


def warning_state(w: EarlyWarning) -> dict[str, Any]:
    return {"kind": w.kind, "key": w.key, "day": w.day.isoformat(), "department": w.department,
            "observed": w.observed, "expected": w.expected,
            "acknowledged_by": w.acknowledged_by,
            "acknowledged_at": w.acknowledged_at.isoformat() if w.acknowledged_at else None,
            "note": w.note}
