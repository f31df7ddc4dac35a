"""A crash mid-correction loses nothing already submitted and leaves no partial rows."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from model.errors import Conflict
from serving.store import service
from serving.store.service import Answer, NewComplaint

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def two_claimed(store, make_routing, taxonomy):
    """Items a and b claimed by li; a already corrected and submitted, b with a saved draft."""
    with store.sessions() as s:
        a, b = (service.enqueue_review(s, text=t, reason="low_confidence",
                                       suggestion=make_routing(), complaint_id=t, actor="intake",
                                       now=T0) for t in ("a", "b"))
        service.claim(s, a.id, "li", now=T0)
        service.submit_response(s, a.id, "li", Answer("correct", department="住建局"), taxonomy,
                                now=T0)
        service.save_draft(s, b.id, "li", Answer("correct", department="住建"), now=T0)
    return a, b


def test_an_exception_mid_correction_rolls_back_every_write(store, two_claimed, taxonomy,
                                                            monkeypatch):
    a, b = two_claimed
    before = store.snapshot()
    from serving.store import audit, responses

    real_audit = audit.record_audit

    def audit_then_fail(session, actor, action, *args, **kwargs):
        real_audit(session, actor, action, *args, **kwargs)
        if action == "response.submitted":  # the item is done, the response written: now crash
            session.flush()
            raise RuntimeError("crash in the middle of the correction")

    monkeypatch.setattr(responses, "record_audit", audit_then_fail)
    with store.sessions() as s, pytest.raises(RuntimeError, match="crash"):
        service.submit_response(s, b.id, "li", Answer("correct", department="交通局"), taxonomy,
                                now=T0)
    assert store.snapshot() == before  # b: still claimed, its draft still a draft
    monkeypatch.undo()
    with store.sessions() as s:
        [label] = service.submitted_labels(s)
        assert (label.complaint_id, label.department) == ("a", "住建局")
        done = service.submit_response(s, b.id, "li", Answer("correct", department="交通局"),
                                       taxonomy, now=T0)  # and the officer can simply retry
        assert done.status == "submitted"


def test_a_failed_batch_registers_nothing(store):
    with store.sessions() as s:
        service.register_complaints(s, [NewComplaint("x", "已有投诉")], actor="intake", now=T0)
    before = store.snapshot()
    with store.sessions() as s, pytest.raises(Conflict, match="already registered: x"):
        service.register_complaints(s, [NewComplaint("y", "新投诉"), NewComplaint("x", "重复")],
                                    actor="intake", now=T0)
    assert store.snapshot() == before


_KILLED_MID_SUBMIT = """
import json, os, sys
from datetime import datetime, UTC
from sqlalchemy import event
from model.taxonomy import Taxonomy
from serving.store import service
from serving.store.db import make_engine, make_sessionmaker

url, item_id, taxonomy = sys.argv[1], int(sys.argv[2]), Taxonomy.from_dict(json.loads(sys.argv[3]))
session = make_sessionmaker(make_engine(url))()

@event.listens_for(session, "before_commit")
def die(s):
    s.flush()  # every row of the correction is in the database, uncommitted
    os._exit(3)  # the process dies: no rollback, no clean disconnect

service.submit_response(session, item_id, "li",
                        service.Answer("correct", department="交通局"), taxonomy,
                        now=datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
"""


def test_a_process_killed_mid_correction_loses_nothing(store, two_claimed, taxonomy):
    a, b = two_claimed
    before = store.snapshot()
    url = store.url.render_as_string(hide_password=False)
    script = textwrap.dedent(_KILLED_MID_SUBMIT)
    done = subprocess.run([sys.executable, "-c", script, url, str(b.id),
                           json.dumps(taxonomy.to_dict())], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    assert store.snapshot() == before
    with store.sessions() as s:
        assert [lab.complaint_id for lab in service.submitted_labels(s)] == ["a"]
        assert service.get_review_item(s, b.id).status == "claimed"
