"""Replies in the store: the latest reply per complaint, per hot issue latest first, never
those of removed complaints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from serving.store import service
from serving.store.service import NewComplaint, NewEvent

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _reply(s, complaint_id: str, n: int, hours: float, text: str) -> None:
    service.post_event(s, complaint_id, NewEvent(f"{complaint_id}-{n}", "replied",
                                                 T0 + timedelta(hours=hours),
                                                 department="住建局", reply=text),
                       actor="cases", now=T0 + timedelta(days=1))


def test_latest_reply_per_complaint_and_per_issue_latest_first(store):
    with store.sessions() as s:
        service.register_complaints(s, [
            NewComplaint("a", "丽发新城搅拌站噪音", received_at=T0),
            NewComplaint("b", "丽发新城搅拌站夜间施工", repeats="a", received_at=T0),
            NewComplaint("c", "又是搅拌站", repeats="a", received_at=T0),
            NewComplaint("d", "路灯不亮", received_at=T0)], actor="intake", now=T0)
        _reply(s, "a", 0, 1, "已责令整改")
        service.post_event(s, "a", NewEvent("a-r", "closed", T0 + timedelta(hours=2)),
                           actor="cases", now=T0 + timedelta(days=1))
        service.post_event(s, "a", NewEvent("a-o", "reopened", T0 + timedelta(hours=3)),
                           actor="cases", now=T0 + timedelta(days=1))
        _reply(s, "a", 1, 4, "已停工")  # answered again: the newer reply supersedes
        _reply(s, "b", 0, 2, "已核实")
        _reply(s, "c", 0, 5, "已处理")

        latest = service.latest_replies(s, ["a", "b", "d", "missing"])
        assert {k: v.reply for k, v in latest.items()} == {"a": "已停工", "b": "已核实"}
        assert latest["a"].department == "住建局" and latest["a"].reported_at == T0
        assert latest["a"].replied_at == T0 + timedelta(hours=4)

        issue = service.get_complaint(s, "a").issue_id
        found = service.find_replies(s, ["a", "d"])
        assert found.issue_of == {"a": issue, "d": service.get_complaint(s, "d").issue_id}
        assert [r.complaint_id for r in found.by_issue[issue]] == ["c", "a", "b"]
        assert set(found.by_issue) == {issue}  # d's issue has no reply
        assert found.by_complaint["a"].reply == "已停工" and "d" not in found.by_complaint
        assert [r.complaint_id for r in service.issue_replies(s, [issue], per_issue=2)[issue]] \
            == ["c", "a"]

        service.remove_complaint(s, "c", actor="intake")
        assert [r.complaint_id for r in service.find_replies(s, ["b"]).by_issue[issue]] == [
            "a", "b"]
        service.remove_complaint(s, "a", actor="intake")
        assert service.latest_replies(s, ["a"]) == {}
        after = service.find_replies(s, ["a", "b"])
        assert "a" not in after.issue_of and after.by_complaint["b"].reply == "已核实"
        assert service.find_replies(s, []) == service.Replies()
