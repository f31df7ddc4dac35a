"""Every change is in the audit log, written with it; the log itself cannot be edited."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from serving.store import service
from serving.store.service import Answer, NewComplaint

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _history(store, taxonomy, make_routing):
    with store.sessions() as s:
        service.register_complaints(s, [NewComplaint("c1", "噪音扰民")], actor="intake", now=T0)
        item = service.enqueue_review(s, text="噪音扰民", reason="audit", complaint_id="c1",
                                      suggestion=make_routing(), actor="auditor", now=T0)
        service.claim(s, item.id, "li", now=T0)
        service.save_draft(s, item.id, "li", Answer("accept"), now=T0)
        service.discard(s, item.id, "li", now=T0)
        service.submit_response(s, item.id, "wang", Answer("correct", department="住建局"),
                                taxonomy, now=T0)
        service.feedback(s, "c1", Answer("correct", department="交通局"), taxonomy,
                         source="12345-hotline", actor="intake-key", now=T0)
        service.remove_complaint(s, "c1", actor="intake", now=T0)
        return item


def test_every_change_is_audited(store, taxonomy, make_routing):
    item = _history(store, taxonomy, make_routing)
    assert [(r["actor"], r["action"]) for r in store.rows("audit_log")] == [
        ("intake", "complaint.registered"),
        ("auditor", "review_item.enqueued"),
        ("li", "review_item.claimed"),
        ("li", "response.draft_saved"),
        ("li", "review_item.released"),
        ("li", "response.discarded"),
        ("wang", "review_item.done"),
        ("wang", "response.submitted"),
        ("intake-key", "response.feedback"),
        ("intake", "complaint.removed"),
    ]
    with store.sessions() as s:
        trail = service.audit_trail(s, "review_item", item.id)
    assert [e.action for e in trail] == ["review_item.enqueued", "review_item.claimed",
                                         "review_item.released", "review_item.done"]
    done = trail[-1]
    assert done.before["status"] == "open" and done.after["status"] == "done"
    assert done.after["claimed_by"] == "wang" and done.at == T0


@pytest.mark.parametrize("statement", [
    "UPDATE audit_log SET actor = 'someone else'",
    "DELETE FROM audit_log",
    "TRUNCATE audit_log",
])
def test_the_audit_log_cannot_be_edited(store, taxonomy, make_routing, statement):
    if statement.startswith("TRUNCATE") and store.backend == "sqlite":
        pytest.skip("SQLite has no TRUNCATE (DELETE covers it)")
    _history(store, taxonomy, make_routing)
    before = store.rows("audit_log")
    with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as c:
        c.execute(text(statement))
    assert store.rows("audit_log") == before


def test_the_service_has_no_way_to_change_the_audit_log():
    from serving.store import audit, complaints, queue, responses

    for module in (audit, complaints, queue, responses):
        source = inspect.getsource(module)
        assert "update(AuditLog" not in source and "delete(" not in source, module.__name__
    public = [n for n, f in vars(service).items() if inspect.isfunction(f)]
    assert public and not [n for n in public if "audit" in n and n != "audit_trail"]
