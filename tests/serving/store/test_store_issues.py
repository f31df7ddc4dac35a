"""Hot issues in the store: a repeat joins its complaint's issue; merge and split, audited,
all or nothing; the reports of a period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from model.errors import Conflict, InvalidInput, NotFound
from serving.store import service
from serving.store.service import NewComplaint

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _register(s, *complaints: NewComplaint) -> dict[str, int]:
    service.register_complaints(s, list(complaints), actor="intake", now=T0)
    return {c.id: service.get_complaint(s, c.id).issue_id for c in complaints}


def test_a_repeat_joins_the_issue_of_the_complaint_it_repeats(store):
    with store.sessions() as s:
        issues = _register(s, NewComplaint("a", "丽发新城搅拌站噪音", department="生态环境局"),
                           NewComplaint("b", "丽发新城搅拌站夜间施工", repeats="a"),
                           NewComplaint("c", "路灯不亮"),
                           NewComplaint("d", "又是搅拌站", repeats="missing"))
        assert issues["a"] == issues["b"] != issues["c"]
        assert issues["d"] not in (issues["a"], issues["c"])  # an unknown repeat opens one
        issue, members = service.get_issue(s, issues["a"])
        assert [m.id for m in members] == ["a", "b"] and members[0].department == "生态环境局"
        service.remove_complaint(s, "c", actor="intake")
        [e] = service.register_complaints(s, [NewComplaint("e", "路灯还是不亮", repeats="c")],
                                          actor="intake")
        assert e.issue_id != issues["c"]  # a removed complaint is nobody's issue


def test_merge_moves_every_member_and_the_merged_issue_points_to_the_survivor(store):
    with store.sessions() as s:
        issues = _register(s, NewComplaint("a", "x"), NewComplaint("b", "y"),
                           NewComplaint("c", "z", repeats="b"))
        a, b = issues["a"], issues["b"]
        kept = service.merge_issues(s, b, a, actor="officer-1", now=T0)
        assert kept.id == a
        assert [m.id for m in service.get_issue(s, a)[1]] == ["a", "b", "c"]
        merged, members = service.get_issue(s, b)
        assert merged.merged_into == a and members == []
        [d] = service.register_complaints(s, [NewComplaint("d", "w", repeats="c")],
                                          actor="intake")
        assert d.issue_id == a
        trail = service.audit_trail(s, "hot_issue", b)
        assert [(t.action, t.actor, t.before["complaint_ids"], t.after) for t in trail] == [
            ("hot_issue.merged", "officer-1", ["b", "c"], {"complaint_ids": [],
                                                          "merged_into": a})]
        with pytest.raises(Conflict, match=f"merged into {a}"):
            service.merge_issues(s, b, a, actor="officer-1")
        with pytest.raises(InvalidInput, match="itself"):
            service.merge_issues(s, a, a, actor="officer-1")
        with pytest.raises(NotFound):
            service.merge_issues(s, a, 999_999, actor="officer-1")


def test_split_moves_the_chosen_members_into_a_new_issue(store):
    with store.sessions() as s:
        issues = _register(s, NewComplaint("a", "x"), NewComplaint("b", "y", repeats="a"),
                           NewComplaint("c", "z", repeats="a"))
        a = issues["a"]
        new = service.split_issue(s, a, ["c"], actor="officer-2", now=T0)
        assert [m.id for m in service.get_issue(s, a)[1]] == ["a", "b"]
        assert [m.id for m in service.get_issue(s, new.id)[1]] == ["c"]
        [entry] = service.audit_trail(s, "hot_issue", new.id)
        assert entry.after == {"complaint_ids": ["c"], "merged_into": None, "split_from": a}
        assert service.audit_trail(s, "hot_issue", a)[-1].after["split_into"] == new.id


@pytest.mark.parametrize("ids, problem", [([], "give 1 to"), (["a", "a"], "repeat"),
                                          (["a", "zz"], "not complaints of hot issue"),
                                          (["a", "b"], "leave at least one")])
def test_a_bad_split_is_refused_and_changes_nothing(store, ids, problem):
    with store.sessions() as s:
        issues = _register(s, NewComplaint("a", "x"), NewComplaint("b", "y", repeats="a"))
        before = store.snapshot()
        with pytest.raises(InvalidInput, match=problem):
            service.split_issue(s, issues["a"], ids, actor="officer-2")
        assert store.snapshot() == before


def test_reports_of_a_period_and_a_district(store):
    with store.sessions() as s:
        service.register_complaints(s, [
            NewComplaint("old", "龙华区噪音", received_at=T0 - timedelta(days=40)),
            NewComplaint("in", "噪音", location="海口市龙华区滨海大道", received_at=T0),
            NewComplaint("text", "龙华区金贸路噪音 50%_", received_at=T0),
            NewComplaint("other", "噪音", location="美兰区", received_at=T0),
        ], actor="intake", now=T0)
        since, until = T0 - timedelta(days=30), T0 + timedelta(days=1)
        assert [c.id for c in service.reports_between(s, since, until)] == ["in", "other", "text"]
        assert [c.id for c in service.reports_between(s, since, until, "龙华区")] == ["in", "text"]
        assert [c.id for c in service.reports_between(s, since, until, "50%_")] == ["text"]
        assert service.reports_between(s, since, until, "龙华区_") == []  # no wildcard
