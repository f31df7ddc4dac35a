"""Registered complaints: register, look up, remove; the similarity index is rebuilt from these."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from model.errors import Conflict, InvalidInput, NotFound
from model.normalize import text_hash
from serving.store import service
from serving.store.service import NewComplaint, RoutedText

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_register_look_up_remove_and_register_again(store):
    with store.sessions() as s:
        rows = service.register_complaints(s, [
            NewComplaint("c1", "小区噪音扰民", channel="hotline", location="龙华区",
                         received_at=T0),
            NewComplaint("c2", "路灯不亮"),
        ], actor="intake", model_version="tiny-v1", now=T0)
        assert [r.id for r in rows] == ["c1", "c2"]
        c1 = service.get_complaint(s, "c1")
        assert (c1.text_hash, c1.channel, c1.location, c1.received_at, c1.registered_at) == (
            text_hash("小区噪音扰民"), "hotline", "龙华区", T0, T0)
        with pytest.raises(Conflict, match="already registered: c1"):
            service.register_complaints(s, [NewComplaint("c1", "again")], actor="intake")
        removed = service.remove_complaint(s, "c1", actor="intake", now=T0)
        assert removed.removed and removed.removed_at == T0
        assert service.remove_complaint(s, "c1", actor="intake").removed_at == T0  # idempotent
        with pytest.raises(NotFound, match="removed"):
            service.get_complaint(s, "c1")
        assert service.get_complaint(s, "c1", include_removed=True).removed
        assert [c.id for c in service.registered_complaints(s)] == ["c2"]
        [again] = service.register_complaints(s, [NewComplaint("c1", "新的文本")], actor="intake")
        assert not again.removed and again.text == "新的文本"
        assert {c.id for c in service.registered_complaints(s)} == {"c1", "c2"}
        with pytest.raises(NotFound):
            service.remove_complaint(s, "nope", actor="intake")


def test_bad_batches_are_refused(store):
    with store.sessions() as s:
        with pytest.raises(InvalidInput, match="repeat") as err:
            service.register_complaints(s, [NewComplaint("a", "x"), NewComplaint("a", "y")],
                                        actor="intake")
        assert err.value.field == "id"
        with pytest.raises(InvalidInput) as err:
            service.register_complaints(s, [NewComplaint("b", "")], actor="intake")
        assert err.value.field == "text"
    assert store.rows("complaints") == []


def _routed(cid: str, routing: dict, text: str = "小区噪音扰民") -> tuple[NewComplaint, RoutedText]:
    return NewComplaint(cid, text), RoutedText(text, routing, complaint_id=cid)


def test_registration_logs_and_queues_in_the_same_transaction(store, make_routing):
    with store.sessions() as s:
        result = service.register_routed(s, "req-1", [
            _routed("a", make_routing(decision="review")),
            _routed("b", make_routing(decision="auto"))],
            actor="intake", now=T0)
    assert [r.id for r in result.registered] == ["a", "b"] and result.taken == []
    assert [r["complaint_id"] for r in store.rows("routing_log")] == ["a", "b"]
    assert [r["complaint_id"] for r in store.rows("review_items")] == ["a"]


def test_registration_is_all_or_nothing(store, make_routing, monkeypatch):
    """A failure writing the routing log (here: an overflowing due date) stores nothing: no
    complaint is left registered without its log and review item."""
    with store.sessions() as s:
        service.register_routed(s, "req-0", [_routed("old", make_routing())], actor="intake",
                                now=T0)
    before = store.snapshot()

    def overflow(*args, **kwargs):
        raise OverflowError("date value out of range")

    monkeypatch.setattr("serving.store.queue.due_date", overflow)
    with store.sessions() as s, pytest.raises(OverflowError):
        service.register_routed(s, "req-1", [_routed("x", make_routing()),
                                             _routed("y", make_routing(decision="review"))],
                                actor="intake", now=T0)
    assert store.snapshot() == before


def test_an_id_taken_meanwhile_skips_only_that_complaint(store, make_routing):
    with store.sessions() as s:
        service.register_routed(s, "req-0", [_routed("race", make_routing())], actor="i", now=T0)
        result = service.register_routed(s, "req-1", [
            _routed("race", make_routing()), _routed("good", make_routing(decision="review"))],
            actor="i", now=T0)
    assert result.taken == ["race"] and [r.id for r in result.registered] == ["good"]
    logged = [r["complaint_id"] for r in store.rows("routing_log")]
    assert logged == ["race", "good"]  # the second "race" routing is not logged


def test_concurrent_registrations_of_one_id_keep_every_other_item(store, make_routing):
    """Two requests [race-N, good-N-side] at once: exactly one registers race-N, and both
    good items are registered (before: the loser's whole request failed with Conflict)."""
    rounds = 8
    outcomes: list[service.Registration] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    for n in range(rounds):
        barrier = threading.Barrier(2)

        def register(side: str, n: int = n, barrier: threading.Barrier = barrier) -> None:
            try:
                with store.sessions() as s:
                    barrier.wait()
                    result = service.register_routed(s, f"req-{n}-{side}", [
                        _routed(f"race-{n}", make_routing()),
                        _routed(f"good-{n}-{side}", make_routing())], actor=side)
                with lock:
                    outcomes.append(result)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=register, args=(side,)) for side in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    registered = sorted(r.id for o in outcomes for r in o.registered)
    assert registered == sorted([f"race-{n}" for n in range(rounds)]
                                + [f"good-{n}-{side}" for n in range(rounds) for side in "ab"])
    assert sorted(i for o in outcomes for i in o.taken) == [f"race-{n}" for n in range(rounds)]


def test_complaint_changes_read_the_audit_log_in_order_and_refetch_gaps(store):
    from datetime import UTC, datetime

    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    with store.sessions() as s:
        start = service.last_change(s)
        service.register_complaints(s, [service.NewComplaint("a", "路灯不亮"),
                                        service.NewComplaint("b", "噪音扰民")],
                                    actor="intake", now=t0)
        service.remove_complaint(s, "a", actor="intake", now=t0)
        changes = service.complaint_changes(s, start)
        assert (changes.registered, changes.removed) == (["a", "b"], ["a"])
        assert changes.seen == sorted(changes.seen) and service.last_change(s) == changes.seen[-1]
        # an id seen missing is asked for again with the newer ones
        again = service.complaint_changes(s, changes.seen[-1], also=[changes.seen[0]])
        assert again.seen == [changes.seen[0]] and again.registered == ["a"]
