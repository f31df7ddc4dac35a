"""Claims are exclusive: eight officers at once never get the same item; claims expire."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from model.errors import Conflict, NotFound
from serving.store import service
from serving.store.service import QueueFilter, RoutedText

OFFICERS = 8
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _fill_queue(store, make_routing, n: int) -> list[int]:
    routed = [RoutedText(f"投诉 {i}", make_routing(confidence=0.3 + (i % 7) / 20),
                         complaint_id=f"c{i}", received_at=T0 - timedelta(minutes=i))
              for i in range(n)]
    with store.sessions() as s:
        service.log_routing(s, "bulk", routed, actor="intake", now=T0)
        return [i.id for i in service.list_queue(s, limit=500, now=T0).items]


def _claimed_in_audit(store) -> Counter[str]:
    return Counter(r["object_id"] for r in store.rows("audit_log")
                   if r["action"] == "review_item.claimed")


def test_eight_officers_claiming_at_once_never_share_an_item(store, make_routing):
    ids = _fill_queue(store, make_routing, 80)
    barrier = threading.Barrier(OFFICERS)
    lock, in_flight, most_in_flight = threading.Lock(), [0], [0]

    def claim_next(s, officer):
        with lock:
            in_flight[0] += 1
            most_in_flight[0] = max(most_in_flight[0], in_flight[0])
        try:
            return service.claim_next(s, officer, now=T0)
        finally:
            with lock:
                in_flight[0] -= 1

    def officer(k: int) -> list[int]:
        got = []
        with store.sessions() as s:  # each officer: own session, own connection
            barrier.wait()
            while (item := claim_next(s, f"officer-{k}")) is not None:
                assert item.claimed_by == f"officer-{k}"
                got.append(item.id)
        return got

    with ThreadPoolExecutor(OFFICERS) as pool:
        per_officer = list(pool.map(officer, range(OFFICERS)))
    claimed = [i for got in per_officer for i in got]
    assert len(claimed) == len(set(claimed)) == len(ids)
    assert set(claimed) == set(ids)
    assert most_in_flight[0] > 1  # claims really overlapped (SQLite may still serve one officer
    # many times in a row: its busy handler is not fair, which costs waiting, never exclusivity)
    holders = {r["id"]: r["claimed_by"] for r in store.rows("review_items")}
    for k, got in enumerate(per_officer):
        assert all(holders[i] == f"officer-{k}" for i in got)
    assert set(_claimed_in_audit(store).values()) == {1}


def test_eight_officers_claiming_the_same_item_one_wins(store, make_routing):
    [item_id, *_] = _fill_queue(store, make_routing, 3)
    barrier = threading.Barrier(OFFICERS)

    def officer(k: int) -> str:
        with store.sessions() as s:
            barrier.wait()
            try:
                return service.claim(s, item_id, f"officer-{k}", now=T0).claimed_by or ""
            except Conflict:
                return "conflict"

    with ThreadPoolExecutor(OFFICERS) as pool:
        outcomes = list(pool.map(officer, range(OFFICERS)))
    assert outcomes.count("conflict") == OFFICERS - 1
    [winner] = [o for o in outcomes if o != "conflict"]
    holders = {r["id"]: r["claimed_by"] for r in store.rows("review_items")}
    assert holders[item_id] == winner
    assert _claimed_in_audit(store) == {str(item_id): 1}


def test_claims_expire_and_holders_can_renew(store, make_routing):
    [a, b] = _fill_queue(store, make_routing, 2)
    ttl = timedelta(minutes=10)
    with store.sessions() as s:
        service.claim(s, a, "li", ttl=ttl, now=T0)
        with pytest.raises(Conflict, match="claimed by li"):
            service.claim(s, a, "wang", now=T0 + timedelta(minutes=5))
        renewed = service.claim(s, a, "li", ttl=ttl, now=T0 + timedelta(minutes=8))
        assert renewed.claim_expires_at == T0 + timedelta(minutes=18)
        # after expiry the item is free again, listed as open, and the next claim may take it
        later = T0 + timedelta(minutes=19)
        assert [i.id for i in service.list_queue(s, now=later).items] == [a, b]
        assert service.claim_next(s, "wang", now=later).id == a
        with pytest.raises(Conflict, match="claimed by wang"):
            service.discard(s, a, "li", now=later)


def test_claiming_missing_or_done_items(store, make_routing, taxonomy):
    [a] = _fill_queue(store, make_routing, 1)
    with store.sessions() as s:
        with pytest.raises(NotFound):
            service.claim(s, 999, "li", now=T0)
        service.submit_response(s, a, "li", service.Answer("accept"), taxonomy, now=T0)
        with pytest.raises(Conflict, match="already done"):
            service.claim(s, a, "wang", now=T0)
        assert service.claim_next(s, "wang", now=T0) is None
        assert service.list_queue(s, QueueFilter(status="done"), now=T0).total == 1
