"""The store's side of the learning loop: submitted labels out, audit suspects into the queue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from model.errors import InvalidInput
from model.taxonomy import DutyEntry, Taxonomy
from serving.corrections import AUDIT_DUE_IN, enqueue_suspects, export_submitted
from serving.store import service
from serving.store.db import make_engine, make_sessionmaker
from serving.store.migrations import upgrade
from serving.store.service import Answer, QueueFilter, RoutedText

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
TAXONOMY = Taxonomy(
    name="tiny",
    categories=("城乡建设", "交通运输"),
    departments=("住建局", "交通局", "城管局"),
    entries=(DutyEntry("城乡建设", "违章建筑", "城管局", "5wd"),
             DutyEntry("城乡建设", "物业管理", "住建局", "3d"),
             DutyEntry("交通运输", "出租车", "交通局", "24h")),
)


def routing(category="城乡建设", subcategory="违章建筑", department="城管局", confidence=0.4,
            version="tiny-v1"):
    def head(label):
        return {"label": label, "confidence": confidence, "top": [{"label": label,
                                                                    "confidence": confidence}]}
    return {"category": head(category), "subcategory": head(f"{category}/{subcategory}"),
            "department": head(department), "duty": None, "decision": "review",
            "model_version": version}


@pytest.fixture
def sessions(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'huying.db'}")
    upgrade(engine)
    yield make_sessionmaker(engine)
    engine.dispose()


def test_export_has_only_submitted_answers_the_latest_per_complaint(sessions):
    received = T0 - timedelta(hours=3)
    with sessions() as s:
        service.log_routing(s, "req-1", [RoutedText("出租车绕路了", routing(), complaint_id="a",
                                                    received_at=received)],
                            actor="intake", now=T0)
        [a] = service.list_queue(s, now=T0).items
        b = service.enqueue_review(s, text="楼上违建", suggestion=routing(), reason="low_confidence",
                                   complaint_id="b", actor="intake", now=T0)
        c = service.enqueue_review(s, text="草稿而已", suggestion=routing(), reason="low_confidence",
                                   complaint_id="c", actor="intake", now=T0)
        service.submit_response(s, a.id, "li", Answer("correct", category="交通运输",
                                                      subcategory="出租车", department="交通局"),
                                TAXONOMY, now=T0 + MIN)
        service.submit_response(s, b.id, "wang", Answer("accept"), TAXONOMY, now=T0 + MIN)
        service.save_draft(s, c.id, "li", Answer("correct", department="住建局"), now=T0 + MIN)
        # a later final routing of b from the intake system wins over the officer's accept
        service.feedback(s, "b", Answer("correct", department="住建局"), TAXONOMY,
                         source="hotline", actor="intake-key", now=T0 + 2 * MIN)
        rows = export_submitted(s)
        since = export_submitted(s, since=T0 + 2 * MIN)
    assert [(r["complaint_id"], r["kind"], r["department"], r["source"]) for r in rows] == [
        ("a", "correct", "交通局", "review"), ("b", "correct", "住建局", "hotline")]
    a_row = rows[0]
    assert a_row["subcategory"] == "交通运输/出租车" and a_row["category"] == "交通运输"
    assert a_row["text"] == "出租车绕路了" and a_row["officer"] == "li"
    assert a_row["received_at"] == received and a_row["submitted_at"] == T0 + MIN
    assert a_row["model_version"] == "tiny-v1"
    assert [r["complaint_id"] for r in since] == ["b"]


def test_exported_rows_are_what_retraining_reads(sessions):
    from training.retrain import parse_corrections

    with sessions() as s:
        item = service.enqueue_review(s, text="物业不作为", suggestion=routing(),
                                      reason="low_confidence", complaint_id="x", actor="intake",
                                      now=T0)
        service.submit_response(s, item.id, "li", Answer("correct", subcategory="物业管理",
                                                         category="城乡建设"), TAXONOMY,
                                now=T0 + MIN)
        [correction] = parse_corrections(export_submitted(s))
    assert correction.complaint_id == "x" and correction.kind == "correct"
    assert correction.labels == {"category": "城乡建设", "subcategory": "城乡建设/物业管理",
                                 "department": "城管局"}  # the department kept from the suggestion
    assert correction.received_at == datetime(2026, 3, 2, 17, 0)  # naive China time, as datasets


def suspect(cid: str, text: str) -> dict:
    suggestion = routing("城乡建设", "物业管理", "住建局", confidence=0.8, version="label-audit")
    suggestion["audit"] = {"given": {"department": "交通局"}, "issues": []}
    return {"complaint_id": cid, "text": text, "suggestion": suggestion}


def test_audit_suspects_join_the_queue_behind_live_complaints(sessions):
    with sessions() as s:
        live = service.enqueue_review(s, text="今天的投诉", suggestion=routing(),
                                      reason="low_confidence", complaint_id="live", actor="intake",
                                      now=T0)
        answered = service.enqueue_review(s, text="已经处理", suggestion=routing(),
                                          reason="low_confidence", complaint_id="t2",
                                          actor="intake", now=T0)
        service.submit_response(s, answered.id, "li", Answer("accept"), TAXONOMY, now=T0)
        items = enqueue_suspects(s, [suspect("t1", "物业乱收费"), suspect("t2", "已经处理"),
                                     suspect("t3", "小区电梯坏了")], actor="cli:audit", now=T0)
        assert [i.complaint_id for i in items] == ["t1", "t3"]  # t2 was answered by a person
        assert {i.reason for i in items} == {"audit"}
        assert {i.due_at for i in items} == {T0 + AUDIT_DUE_IN}
        assert items[0].department == "住建局" and items[0].model_version == "label-audit"
        assert items[0].suggestion["audit"]["given"] == {"department": "交通局"}
        queue = service.list_queue(s, QueueFilter(), now=T0).items
        assert queue[0].id == live.id  # live complaints first
        again = enqueue_suspects(s, [suspect("t1", "物业乱收费")], actor="cli:audit", now=T0)
        assert [i.id for i in again] == [items[0].id]  # already waiting: the same item
        with pytest.raises(InvalidInput, match="AuditResult.to_dicts"):
            enqueue_suspects(s, [{"complaint_id": "t9"}], actor="cli:audit")
